package daemon

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
)

// peerOutcome is what became of a ban another node asked for.
type peerOutcome uint8

const (
	peerApplied   peerOutcome = iota
	peerKnown                 // already in force here, as long or longer
	peerAllowed               // allowlisted or never-ban here: refused
	peerGood                  // a known-good client here: refused
	peerMalformed             // the engine refused it for another reason
)

// peerBan enforces a ban decided elsewhere (a fleet peer, a feed), with d's
// Origin naming who: the engine refuses allowlisted and never-ban targets
// as for a manual ban, and a known-good client is refused here; a prefix
// ban carves out the local good clients like any other. The one way in
// for other nodes' bans.
func (d *Daemon) peerBan(dec event.Decision) peerOutcome {
	e := d.currentPipe().Engine
	now := time.Now()
	if dec.Target.IsSingleIP() && e.IsKnownGood(dec.Target.Addr(), now) {
		return peerGood
	}
	if cur, ok := e.Banned(dec.Target.Addr(), now); ok && cur.Target == dec.Target &&
		(cur.Duration <= 0 || (dec.Duration > 0 && !cur.End().Before(dec.End()))) {
		return peerKnown
	}
	dec, err := e.Ban(dec)
	if err != nil {
		if errors.Is(err, engine.ErrAllowlisted) || errors.Is(err, engine.ErrNeverBan) {
			return peerAllowed
		}
		return peerMalformed
	}
	d.apply.submit([]event.Decision{dec})
	return peerApplied
}

// peerUnban lifts the ban of exactly target that origin (a fleet peer, a
// feed) put in force here, for reason; a ban of target from anyone else,
// or of a wider prefix, is left. It reports whether one was lifted.
func (d *Daemon) peerUnban(ctx context.Context, target netip.Prefix, origin, reason string) (bool, error) {
	cur, ok := d.currentPipe().Engine.Banned(target.Addr(), time.Now())
	if !ok || cur.Target != target || cur.Origin != origin {
		return false, nil
	}
	if _, err := d.unbanFrom(ctx, target, reason); err != nil {
		return false, err
	}
	return true, nil
}
