package engine

import (
	"net/netip"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Restore loads decisions that were active before a restart (from the store)
// and the ban history used for escalation. Decisions for allowlisted
// targets are dropped and returned so the caller can revoke them.
func (e *Engine) Restore(active []event.Decision, history []event.Decision) (dropped []event.Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range history {
		if d.Action != event.Ban {
			continue
		}
		key := keyOfPrefix(normPrefix(d.Target))
		o := e.offenders.slot(key)
		o.bans.add(toStamp(d.Start), 1, 1)
		e.offenders.put(key, o)
	}
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
