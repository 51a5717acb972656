package engine

import (
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
	at       int64     // due in Unix nanoseconds, set by push: cheaper to order by
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

// pendingHeap is a binary min-heap by (due, seq), written out rather than
// through container/heap, whose interface boxes every entry pushed or
// popped: an allocation per deferred ban under a flood.
type pendingHeap []pendingBan

func (h pendingHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *pendingHeap) push(b pendingBan) {
	b.at = b.due.UnixNano()
	*h = append(*h, b)
	for i := len(*h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			break
		}
		(*h)[i], (*h)[parent] = (*h)[parent], (*h)[i]
		i = parent
	}
}

func (h *pendingHeap) pop() pendingBan {
	old := *h
	top := old[0]
	last := len(old) - 1
	old[0] = old[last]
	old[last] = pendingBan{} // drop the strings it holds
	*h = old[:last]
	for i := 0; ; {
		l, r, min := 2*i+1, 2*i+2, i
		if l < last && h.less(l, min) {
			min = l
		}
		if r < last && h.less(r, min) {
			min = r
		}
		if min == i {
			break
		}
		(*h)[i], (*h)[min] = (*h)[min], (*h)[i]
		i = min
	}
	return top
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
	e.deferAt(target, due, base, scenario, reason, jail)
}

// deferAt schedules a ban of target at due.
func (e *Engine) deferAt(target netip.Prefix, due time.Time, base time.Duration, scenario, reason, jail string) {
	p := &e.pending
	if p.by == nil {
		p.by = map[netip.Prefix]uint64{}
		p.limit = max(e.cfg.MaxTracked/10, 1024)
	}
	p.seq++
	p.by[target] = p.seq
	p.heap.push(pendingBan{target: target, due: due, base: base, scenario: scenario, reason: reason, jail: jail, seq: p.seq})
}

// isPending reports whether a ban of target is pending.
func (e *Engine) isPending(target netip.Prefix) bool {
	_, ok := e.pending.by[target]
	return ok
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
		b := p.heap.pop()
		if seq, ok := p.by[b.target]; !ok || seq != b.seq {
			continue
		}
		delete(p.by, b.target)
		if _, banned := e.bannedFor(b.target.Addr(), e.jailIndex(b.jail), b.due); banned {
			continue
		}
		out = append(out, e.banLocked(b.target, b.due, b.base, b.scenario, b.reason, b.jail)...)
	}
	return out
}

// Pending returns the number of deferred bans.
func (e *Engine) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending.by)
}
