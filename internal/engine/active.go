package engine

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// The engine remembers the decisions in force so that events of banned
// addresses are not counted again, a prefix is not banned twice, and the
// policy servers can answer "banned". A flood of unique addresses can make
// millions of them (user spray bans each address on its first failure), so
// this table is bounded like the others: at the cap, the decision that ends
// soonest among a few sampled goes. Forgetting one costs little: the kernel
// holds it until its timeout and the store keeps it, and if the address
// still gets through before then (another port, log lag) it is counted and
// banned again.
//
// An entry is 48 bytes without pointers. The decision's reason, free text
// of a hundred bytes, is not kept: the store has it (Daemon.Status reads it
// from there).

// activeBan is a decision in force, as the engine keeps it.
type activeBan struct {
	start    int64         // Unix nanoseconds
	dur      time.Duration // <= 0: until revoked
	scenario uint16        // indexes into Engine.names
	jail     uint16
	origin   uint16
	action   event.Action
}

// end is when the ban ends, for eviction: the soonest goes first.
func (b *activeBan) end() stamp {
	if b.dur <= 0 {
		return math.MaxUint32
	}
	return toStamp(time.Unix(0, b.start).Add(b.dur))
}

// in reports whether the ban is in force at t (as event.Decision.Active).
func (b *activeBan) in(t time.Time) bool {
	since := t.UnixNano() - b.start
	return since >= 0 && (b.dur <= 0 || since < int64(b.dur))
}

// maxNames bounds the interned scenario, jail and origin names; a name past
// it (only a hostile peer could make so many) is kept as "".
const maxNames = 1024

// nameTable interns the short strings of active decisions.
type nameTable struct {
	list []string
	idx  map[string]uint16
}

func (n *nameTable) id(s string) uint16 {
	if n.idx == nil {
		n.list, n.idx = []string{""}, map[string]uint16{"": 0}
	}
	if i, ok := n.idx[s]; ok {
		return i
	}
	if len(n.list) >= maxNames {
		return 0
	}
	i := uint16(len(n.list))
	n.list = append(n.list, s)
	n.idx[s] = i
	return i
}

func (n *nameTable) name(i uint16) string {
	if int(i) < len(n.list) {
		return n.list[i]
	}
	return ""
}

// prefix is the target a key stands for.
func (k prefixKey) prefix() netip.Prefix {
	a := netip.AddrFrom16(k.addr)
	bits := int(k.bits)
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits)
}

func (e *Engine) setActive(d event.Decision) {
	k := keyOfPrefix(d.Target)
	e.active.put(k, activeBan{
		start:    d.Start.UnixNano(),
		dur:      d.Duration,
		scenario: e.names.id(d.Scenario),
		jail:     e.names.id(d.Jail),
		origin:   e.names.id(d.Origin),
		action:   d.Action,
	})
	if !d.Target.IsSingleIP() {
		e.wide.Insert(d.Target)
	}
}

func (e *Engine) dropActive(p netip.Prefix) bool {
	e.wide.Delete(p)
	return e.active.del(keyOfPrefix(p))
}

// forgetActive is the active table's eviction callback.
func (e *Engine) forgetActive(k prefixKey, _ *activeBan) {
	if p := k.prefix(); !p.IsSingleIP() {
		e.wide.Delete(p)
	}
}

// activeAt returns the decision on exactly target if it is in force at t.
func (e *Engine) activeAt(target netip.Prefix, t time.Time) (event.Decision, bool) {
	k := keyOfPrefix(target)
	if b, ok := e.active.get(k); ok && b.in(t) {
		return e.decisionOf(k, b), true
	}
	return event.Decision{}, false
}

func (e *Engine) decisionOf(k prefixKey, b activeBan) event.Decision {
	return event.Decision{
		Target:   k.prefix(),
		Action:   b.action,
		Start:    time.Unix(0, b.start),
		Duration: b.dur,
		Scenario: e.names.name(b.scenario),
		Jail:     e.names.name(b.jail),
		Origin:   e.names.name(b.origin),
	}
}

// Banned reports whether addr is covered by an active decision at t, and which.
func (e *Engine) Banned(addr netip.Addr, t time.Time) (event.Decision, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bannedAt(addr.Unmap(), t)
}

// bannedAt looks for an active ban of addr or of a prefix holding it. A
// good address (see good.go) is carved out of prefix bans. The prefixes
// are found in one longest-prefix-match lookup, whatever their number;
// only when one holds addr are the bans holding it checked, most specific
// first (a ban that has ended but not yet left the table does not count).
func (e *Engine) bannedAt(addr netip.Addr, t time.Time) (event.Decision, bool) {
	if d, ok := e.activeAt(event.AddrPrefix(addr), t); ok {
		return d, true
	}
	if e.wide.Size() == 0 || !e.wide.Lookup(addr) || e.goodAt(addr, toStamp(t)).any() {
		return event.Decision{}, false
	}
	for p := range e.wide.Supernets(event.AddrPrefix(addr)) {
		if d, ok := e.activeAt(p, t); ok {
			return d, true
		}
	}
	return event.Decision{}, false
}

// Active returns the decisions in force at t, sorted by start. Their
// Reason is empty: the engine does not keep it (see active.go).
func (e *Engine) Active(t time.Time) []event.Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ds []event.Decision
	e.active.each(func(k prefixKey, b *activeBan) {
		if b.in(t) {
			ds = append(ds, e.decisionOf(k, *b))
		}
	})
	slices.SortFunc(ds, func(a, b event.Decision) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Target.String(), b.Target.String())
	})
	return ds
}
