package engine

import (
	"container/heap"
	"net/netip"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// A ban decided on a tightened threshold (user spray, surge, a suspect
// network) waits out a grace period before it takes effect: if the address
// logs in meanwhile, it was a person who mistyped while an attack was on,
// and the ban is dropped. Bans on the full per-address threshold and prefix
// bans are never deferred.

// pendingBan is a deferred ban.
type pendingBan struct {
	target   netip.Prefix
	due      time.Time // when it takes effect; also its Start
	base     time.Duration
	scenario string
	reason   string
	jail     string
	seq      uint64 // order of deferral, for ties and lazy deletion
}

// pendingBans is a heap by due time with an index by target; a cancelled
// entry stays in the heap until popped and is skipped then.
type pendingBans struct {
	heap  pendingHeap
	by    map[netip.Prefix]uint64 // target → seq of its live entry
	seq   uint64
	limit int
}

type pendingHeap []pendingBan

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(pendingBan)) }
func (h *pendingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// deferBan schedules a ban after the grace period, unless one is pending
// for the target already. With no grace configured, or too many pending,
// the ban takes effect at the next flush.
func (e *Engine) deferBan(target netip.Prefix, t time.Time, base time.Duration, scenario, reason, jail string) {
	p := &e.pending
	if p.by == nil {
		p.by = map[netip.Prefix]uint64{}
		p.limit = max(e.cfg.MaxTracked/10, 1024)
	}
	if _, ok := p.by[target]; ok {
		return
	}
	due := t.Add(e.cfg.KnownGood.Grace)
	if len(p.by) >= p.limit {
		due = t
	}
	p.seq++
	p.by[target] = p.seq
	heap.Push(&p.heap, pendingBan{target: target, due: due, base: base, scenario: scenario, reason: reason, jail: jail, seq: p.seq})
}

// cancelPending drops a pending ban of addr.
func (e *Engine) cancelPending(addr netip.Addr) {
	if e.pending.by != nil {
		delete(e.pending.by, event.AddrPrefix(addr))
	}
}

// flushPending turns the pending bans due at now into decisions, each
// starting at its due time, in due order.
func (e *Engine) flushPending(now time.Time) []event.Decision {
	p := &e.pending
	var out []event.Decision
	for len(p.heap) > 0 && !p.heap[0].due.After(now) {
		b := heap.Pop(&p.heap).(pendingBan)
		if seq, ok := p.by[b.target]; !ok || seq != b.seq {
			continue
		}
		delete(p.by, b.target)
		if _, banned := e.bannedAt(b.target.Addr(), b.due); banned {
			continue
		}
		out = append(out, e.banLocked(b.target, b.due, b.base, b.scenario, b.reason, b.jail))
	}
	return out
}

// Pending returns the number of deferred bans.
func (e *Engine) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending.by)
}
