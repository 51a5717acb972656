package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// offender is an address's recent ban history.
type offender struct {
	bans ring
}

// banLocked records a ban of target at t, lengthened for repeat offenders,
// and appends the decision to out; none when the history already holds a
// ban of target at that second: that is the same ban, decided again on log
// lines read a second time (after a restart, see snapshot.go).
func (e *Engine) banLocked(out []event.Decision, target netip.Prefix, t time.Time, base time.Duration, scenario, reason, jail string) []event.Decision {
	key := keyOfPrefix(target)
	o, pos := e.offenders.lookup(key)
	if pos.found && o.bans.has(toStamp(t)) && !e.otherBanAt(target, t, jail) {
		e.stats.Repeated++
		return out
	}
	dur, scenario, reason := e.escalate(key, o, pos, t, base, scenario, reason)
	if dur < 0 {
		dur = 0 // Permanent: the Decision's "until revoked"
	}
	d := event.Decision{
		Target:   target,
		Action:   event.Ban,
		Start:    t,
		Duration: dur,
		Scenario: scenario,
		Reason:   reason,
		Jail:     jail,
		Origin:   "local",
	}
	k, keep := activeKey{prefixKey: key}, true
	if ji := e.jailIndex(jail); ji >= 0 {
		e.jails[ji].banned++
		if j := &e.jails[ji]; target.IsSingleIP() && scenario != "recidive" && len(j.Ports) > 0 {
			// Ports that could not be interned have no id (see
			// keyOfDecision): the table does not keep the ban.
			d.Ports, k.ports, keep = j.Ports, j.ports, j.ports != 0
		}
	}
	if keep {
		e.putActive(k, d)
	}
	e.stats.Decisions++
	if e.log.Enabled(context.Background(), slog.LevelDebug) {
		e.log.Debug("ban", "addr", target.String(), "scenario", scenario, "duration_s", int64(dur.Seconds()), "jail", jail)
	}
	return append(out, d)
}

// otherBanAt reports whether target holds a ban in force, other than the
// one jail would make now (another jail's with other ports, or a
// whole-host one), that started at t's second: the history's ban at that
// second is that one, and this ban no repeat of it.
func (e *Engine) otherBanAt(target netip.Prefix, t time.Time, jail string) bool {
	mine := uint16(0)
	if ji := e.jailIndex(jail); ji >= 0 && target.IsSingleIP() {
		mine = e.jails[ji].ports
	}
	s := toStamp(t)
	k := keyOfPrefix(target)
	for id := range e.portSets.Len() {
		if uint16(id) == mine {
			continue
		}
		if b, ok := e.active.get(activeKey{k, uint16(id)}); ok && toStamp(time.Unix(0, b.start)) == s {
			return true
		}
	}
	return false
}

// escalate applies ban-time escalation and recidive to a new ban and
// records it in the target's history o, found at pos of the offenders.
func (e *Engine) escalate(key prefixKey, o offender, pos place, t time.Time, base time.Duration, scenario, reason string) (time.Duration, string, string) {
	now := toStamp(t)
	prior := 0
	if w := e.cfg.Escalation.Window; w > 0 {
		prior = o.bans.within(stampBefore(t, w))
	}
	recent := 0
	if rc := &e.cfg.Recidive; rc.Bans > 0 {
		recent = o.bans.within(stampBefore(t, rc.Window))
	}
	o.bans.add(now, 1, 1)
	e.offenders.store(key, o, pos)

	dur := base
	if base < 0 {
		return Permanent, scenario, reason // nothing is longer, nor made shorter
	}
	if prior > 0 && e.cfg.Escalation.Factor > 1 {
		f := math.Pow(e.cfg.Escalation.Factor, float64(prior))
		if scaled := float64(base) * f; scaled < float64(e.cfg.Escalation.Max) {
			dur = time.Duration(scaled)
		} else {
			dur = max(e.cfg.Escalation.Max, base)
		}
		reason = e.why().s(reason).s("; ban ").n(prior + 1).s(" within ").d(e.cfg.Escalation.Window).String()
	}
	if rc := &e.cfg.Recidive; rc.Bans > 0 && recent+1 >= rc.Bans && longer(rc.BanTime, dur) != dur {
		return rc.BanTime, "recidive", e.why().s("banned ").n(recent + 1).s(" times within ").d(rc.Window).s("; ").s(reason).String()
	}
	return dur, scenario, reason
}

// Ban records a ban decided outside the engine (the CLI, a peer) and returns
// it as recorded. It refuses allowlisted targets.
func (e *Engine) Ban(d event.Decision) (event.Decision, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d.Target = normPrefix(d.Target)
	if err := e.checkAllowed(d.Target); err != nil {
		return d, err
	}
	if d.Action == 0 {
		d.Action = event.Ban
	}
	if d.Start.IsZero() {
		d.Start = e.now
	}
	e.setActive(d)
	e.stats.Decisions++
	return d, nil
}

func normPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			bits = 0
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), bits)
	}
	return p.Masked()
}

// ErrAllowlisted is returned when asked to ban an allowlisted target.
var ErrAllowlisted = errors.New("target is allowlisted")

// ErrNeverBan is returned when asked to ban a target that covers an
// address that must never be banned (see event.NeverBan).
var ErrNeverBan = errors.New("target covers addresses that are never banned")

func (e *Engine) checkAllowed(p netip.Prefix) error {
	if e.cfg.Allow != nil && e.cfg.Allow.Overlaps(p) {
		return fmt.Errorf("%s: %w", p, ErrAllowlisted)
	}
	if n, never := e.neverBan(p); never {
		return fmt.Errorf("%s overlaps %s: %w", p, n, ErrNeverBan)
	}
	return nil
}

// exempt reports whether a is allowlisted or never banned.
func (e *Engine) exempt(a netip.Addr) bool {
	return e.neverBanAddr(a) || (e.cfg.Allow != nil && e.cfg.Allow.Contains(a))
}

// neverBanAddr is neverBan for one address, event.NeverBanAddr's quick
// test first: the check every event makes.
func (e *Engine) neverBanAddr(a netip.Addr) bool {
	if _, never := event.NeverBanAddr(a); !never {
		return false
	}
	_, never := e.neverBan(event.AddrPrefix(a))
	return never
}

// neverBan is event.NeverBan, with loopback left out when BanLoopback.
func (e *Engine) neverBan(p netip.Prefix) (netip.Prefix, bool) {
	n, never := event.NeverBan(p)
	if never && e.cfg.BanLoopback && (n == event.Loopback4 || n == event.Loopback6) && n.Contains(p.Addr()) && n.Bits() <= p.Bits() {
		return netip.Prefix{}, false
	}
	return n, never
}

// Unban removes an active decision and forgets the target's recent
// failures. It reports whether the target was banned.
func (e *Engine) Unban(p netip.Prefix) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p = normPrefix(p)
	ok := e.dropActive(p)
	for id := 1; id < e.portSets.Len(); id++ {
		if e.dropKey(activeKey{keyOfPrefix(p), uint16(id)}) {
			ok = true
		}
	}
	if p.IsSingleIP() {
		for ji := range e.jails {
			e.tracked.del(keyOf(p.Addr(), ji))
		}
	} else {
		e.prefixes.del(keyOfPrefix(p))
	}
	return ok
}
