package engine

import (
	"math"
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
// entry stays in the heap until popped and is skipped then. The heap
// orders small pointer-free entries that point into bans: reordering the
// bans themselves, strings and all, took the garbage collector's write
// barriers at every swap while it ran.
type pendingBans struct {
	heap pendingHeap
	bans []pendingBan // indexed by the heap's entries; free slots are zero
	free []int32      // free slots of bans
	// by is target → seq of its live entry: a table like the engine's
	// others (a Go map hashed the 17-byte key generically: 2% of replay's
	// instructions under a flood), never full, so it never evicts.
	by    *boundedMap[prefixKey, uint64]
	seq   uint64
	limit int // past it, a deferred ban is due at once (see deferBan)
}

func newPendingBans(maxTracked int) pendingBans {
	// The index grows with the heap: past limit a ban is due at once, but
	// it is indexed until flushed.
	by := newBoundedMap[prefixKey](math.MaxInt32, hashPrefixKey, func(*uint64) stamp { return 0 })
	return pendingBans{by: by, limit: max(maxTracked/10, 1024)}
}

// pendingEntry is a pendingBan's place in the heap.
type pendingEntry struct {
	at   int64 // due in Unix nanoseconds
	seq  uint64
	slot int32 // in pendingBans.bans
}

// push adds b to the heap.
func (p *pendingBans) push(b pendingBan) {
	var slot int32
	if n := len(p.free); n > 0 {
		slot, p.free = p.free[n-1], p.free[:n-1]
	} else {
		slot = int32(len(p.bans))
		p.bans = append(p.bans, pendingBan{})
	}
	p.bans[slot] = b
	p.heap.push(pendingEntry{at: b.due.UnixNano(), seq: b.seq, slot: slot})
}

// pop removes and returns the ban due first.
func (p *pendingBans) pop() pendingBan {
	x := p.heap.pop()
	b := p.bans[x.slot]
	p.bans[x.slot] = pendingBan{} // drop the strings it holds
	p.free = append(p.free, x.slot)
	return b
}

// live calls f for each ban in the heap that was not cancelled, in heap order.
func (p *pendingBans) live(f func(pendingBan)) {
	for _, x := range p.heap {
		if b := p.bans[x.slot]; p.by.slot(keyOfPrefix(b.target)) == b.seq {
			f(b)
		}
	}
}

// pendingHeap is a binary min-heap by (at, seq), written out rather than
// through container/heap, whose interface boxes every entry pushed or
// popped: an allocation per deferred ban under a flood.
type pendingHeap []pendingEntry

func (h pendingHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *pendingHeap) push(x pendingEntry) {
	*h = append(*h, x)
	for i := len(*h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			break
		}
		(*h)[i], (*h)[parent] = (*h)[parent], (*h)[i]
		i = parent
	}
}

func (h *pendingHeap) pop() pendingEntry {
	old := *h
	top := old[0]
	last := len(old) - 1
	old[0] = old[last]
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

// deferBan schedules a ban after the grace period. The caller has checked
// that none is pending for target (isPending), before writing the reason.
// With no grace configured, or too many pending, the ban takes effect at
// the next flush.
func (e *Engine) deferBan(target netip.Prefix, t time.Time, base time.Duration, scenario, reason, jail string) {
	due := t.Add(e.cfg.KnownGood.Grace)
	if e.pending.by.len() >= e.pending.limit {
		due = t
	}
	e.deferAt(target, due, base, scenario, reason, jail)
}

// deferAt schedules a ban of target at due.
func (e *Engine) deferAt(target netip.Prefix, due time.Time, base time.Duration, scenario, reason, jail string) {
	p := &e.pending
	p.seq++
	p.by.put(keyOfPrefix(target), p.seq)
	p.push(pendingBan{target: target, due: due, base: base, scenario: scenario, reason: reason, jail: jail, seq: p.seq})
}

// isPending reports whether a ban of target is pending.
func (e *Engine) isPending(target netip.Prefix) bool {
	_, ok := e.pending.by.get(keyOfPrefix(target))
	return ok
}

// cancelPending drops a pending ban of addr.
func (e *Engine) cancelPending(addr netip.Addr) {
	e.pending.by.del(keyOfPrefix(event.AddrPrefix(addr)))
}

// flushPending appends to out the pending bans due at now, as decisions
// each starting at its due time, in due order.
func (e *Engine) flushPending(out []event.Decision, now time.Time) []event.Decision {
	p := &e.pending
	for nowNS := now.UnixNano(); len(p.heap) > 0 && p.heap[0].at <= nowNS; {
		b := p.pop()
		i, ok := p.by.find(keyOfPrefix(b.target))
		if !ok || p.by.slots[i].v != b.seq {
			continue
		}
		p.by.deleteAt(i)
		if e.bannedFor(b.target.Addr(), e.jailIndex(b.jail), b.due) {
			continue
		}
		out = e.banLocked(out, b.target, b.due, b.base, b.scenario, b.reason, b.jail)
	}
	return out
}

// Pending returns the number of deferred bans.
func (e *Engine) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pending.by.len()
}
