package engine

import (
	"net/netip"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// RestoreBan counts a ban of target at t, from the store's history after a
// restart, for escalation and recidive. Bans are given oldest first: a
// target keeps its most recent ones.
func (e *Engine) RestoreBan(target netip.Prefix, t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := keyOfPrefix(normPrefix(target))
	o := e.offenders.slot(key)
	o.bans.add(toStamp(t), 1, 1)
	e.offenders.put(key, o)
}

// Restore loads decisions that were active before a restart (from the
// store). Decisions for allowlisted targets are dropped and returned so the
// caller can revoke them.
func (e *Engine) Restore(active []event.Decision) (dropped []event.Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range active {
		if d.Action != event.Ban {
			continue
		}
		d.Target = normPrefix(d.Target)
		if e.checkAllowed(d.Target) != nil {
			dropped = append(dropped, d)
			continue
		}
		e.setActive(d)
		if d.Start.After(e.now) {
			e.now = d.Start
		}
	}
	return dropped
}

// RestoreKnownGood remembers that addr logged in as user at t (from the
// store, after a restart). No carve-out is issued: the daemon restores
// the kernel's carve-outs from the store itself.
func (e *Engine) RestoreKnownGood(addr netip.Addr, user string, t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := addr.Unmap()
	e.rememberGood(a, normUser(user), toStamp(t))
	e.restoreGood(a)
}

// RestoreRelay remembers that addr delivered mail at t (from the store,
// after a restart), without issuing a carve-out (see RestoreKnownGood).
func (e *Engine) RestoreRelay(addr netip.Addr, t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := addr.Unmap()
	e.rememberRelay(a, toStamp(t), "")
	e.restoreGood(a)
}
