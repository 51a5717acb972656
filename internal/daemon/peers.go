package daemon

import (
	"errors"
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
