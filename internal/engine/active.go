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
	// toStamp(time.Unix(0, b.start).Add(b.dur)) in whole seconds, without
	// building the times (eviction asks it of every ban it samples).
	sec, ns := b.start/1e9, b.start%1e9
	if ns < 0 {
		sec, ns = sec-1, ns+1e9
	}
	sec += int64(b.dur / time.Second)
	if ns+int64(b.dur%time.Second) >= 1e9 {
		sec++
	}
	return clampStamp(sec - stampBase)
}

// in reports whether the ban is in force at t (as event.Decision.Active).
func (b *activeBan) in(t time.Time) bool {
	since := t.UnixNano() - b.start
	return since >= 0 && (b.dur <= 0 || since < int64(b.dur))
}

// maxNames bounds the interned scenario, jail and origin names, and the
// port lists of per-port bans; a name past it (only a hostile peer could
// make so many) is kept as "", a ban on ports past it only by the firewall
// and the store (see keyOfDecision).
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

// activeKey is an active decision's key: its target, and for a per-port
// ban of an address, the id of its ports (portSets); 0 for a whole-host
// ban. An address can have a whole-host ban and per-port bans of jails
// with different ports at once.
type activeKey struct {
	prefixKey
	ports uint16
}

func hashActiveKey(k activeKey) uint64 {
	h := hashPrefixKey(k.prefixKey)
	if k.ports != 0 {
		h ^= mix(uint64(k.ports) | 1<<40)
	}
	return h
}

func wholeKey(p netip.Prefix) activeKey { return activeKey{prefixKey: keyOfPrefix(p)} }

// internJailPorts gives each jail the id of its ports.
func (e *Engine) internJailPorts() {
	for i := range e.jails {
		id, _ := e.portSets.ID(e.jails[i].Ports)
		e.jails[i].ports = uint16(id)
	}
}

// jailIndex returns the index of the jail named name, or -1.
func (e *Engine) jailIndex(name string) int {
	// A few jails are looked through: an event's jail name is usually the
	// very string the jail was configured with, so each comparison is a
	// length or a pointer compared, where the map hashes the name.
	if len(e.jails) <= 8 {
		for i := range e.jails {
			if e.jails[i].Name == name {
				return i
			}
		}
		return -1
	}
	if i, ok := e.byName[name]; ok {
		return i
	}
	return -1
}

// keyOfDecision returns d's key in the active table; ok is false for a
// per-port ban whose ports could not be interned (the table then does not
// keep it: the firewall and the store do).
func (e *Engine) keyOfDecision(d event.Decision) (activeKey, bool) {
	k := wholeKey(d.Target)
	if len(d.Ports) == 0 || !d.Target.IsSingleIP() {
		return k, true
	}
	id, ok := e.portSets.ID(event.NormalizePorts(d.Ports))
	k.ports = uint16(id)
	return k, ok
}

func (e *Engine) setActive(d event.Decision) {
	if k, ok := e.keyOfDecision(d); ok {
		e.putActive(k, d)
	}
}

// putActive records d under k, its key.
func (e *Engine) putActive(k activeKey, d event.Decision) {
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

// dropActive drops the whole-host decision on p.
func (e *Engine) dropActive(p netip.Prefix) bool {
	return e.dropKey(wholeKey(p))
}

func (e *Engine) dropKey(k activeKey) bool {
	if k.ports == 0 {
		e.wide.Delete(k.prefix())
	}
	return e.active.del(k)
}

// forgetActive is the active table's eviction callback.
func (e *Engine) forgetActive(k activeKey, _ *activeBan) {
	if p := k.prefix(); !p.IsSingleIP() {
		e.wide.Delete(p)
	}
}

// activeAt reports whether the whole-host decision on exactly target is in
// force at t.
func (e *Engine) activeAt(target netip.Prefix, t time.Time) bool {
	return e.inForce(wholeKey(target), t)
}

func (e *Engine) inForce(k activeKey, t time.Time) bool {
	_, ok := e.activeIn(k, t)
	return ok
}

// activeIn returns the decision under k if it is in force at t.
func (e *Engine) activeIn(k activeKey, t time.Time) (activeBan, bool) {
	b, ok := e.active.get(k)
	return b, ok && b.in(t)
}

func (e *Engine) decisionOf(k activeKey, b activeBan) event.Decision {
	return event.Decision{
		Target:   k.prefix(),
		Action:   b.action,
		Start:    time.Unix(0, b.start),
		Duration: b.dur,
		Scenario: e.names.name(b.scenario),
		Jail:     e.names.name(b.jail),
		Origin:   e.names.name(b.origin),
		Ports:    e.portSets.List(uint32(k.ports)),
	}
}

// bannedFor reports whether addr is banned for the events of jail ji (-1:
// none): banned (see banOn), or banned on the jail's ports.
func (e *Engine) bannedFor(addr netip.Addr, ji int, t time.Time) bool {
	if _, _, ok := e.banOn(addr, t); ok {
		return true
	}
	if ji < 0 || e.jails[ji].ports == 0 {
		return false
	}
	return e.inForce(activeKey{keyOfPrefix(event.AddrPrefix(addr)), e.jails[ji].ports}, t)
}

// Banned reports whether addr is covered by an active whole-host decision
// at t, and which. Per-port bans do not count: the address still reaches
// the other services.
func (e *Engine) Banned(addr netip.Addr, t time.Time) (event.Decision, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bannedAt(addr.Unmap(), t)
}

// bannedAt is banOn's decision.
func (e *Engine) bannedAt(addr netip.Addr, t time.Time) (event.Decision, bool) {
	k, b, ok := e.banOn(addr, t)
	if !ok {
		return event.Decision{}, false
	}
	return e.decisionOf(k, b), true
}

// banOn finds the active whole-host ban of addr or of a prefix holding
// it. A good address (see good.go) is carved out of prefix bans. The
// prefixes are found in one longest-prefix-match lookup, whatever their
// number; the most specific is nearly always the ban in force, and the
// others holding addr are checked only when it is not (a ban that has
// ended but not yet left the table does not count).
func (e *Engine) banOn(addr netip.Addr, t time.Time) (activeKey, activeBan, bool) {
	self := event.AddrPrefix(addr)
	if b, ok := e.activeIn(wholeKey(self), t); ok {
		return wholeKey(self), b, true
	}
	if e.wide.Size() == 0 {
		return activeKey{}, activeBan{}, false
	}
	lpm, ok := e.wide.LookupPrefixLPM(self)
	if !ok || e.goodAt(addr, toStamp(t)).any() {
		return activeKey{}, activeBan{}, false
	}
	if b, ok := e.activeIn(wholeKey(lpm), t); ok {
		return wholeKey(lpm), b, true
	}
	for p := range e.wide.Supernets(lpm) {
		if p == lpm {
			continue
		}
		if b, ok := e.activeIn(wholeKey(p), t); ok {
			return wholeKey(p), b, true
		}
	}
	return activeKey{}, activeBan{}, false
}

// Active returns the decisions in force at t, sorted by start, per-port
// bans with their Ports. Their Reason is empty: the engine does not keep
// it (see active.go).
func (e *Engine) Active(t time.Time) []event.Decision {
	ds, _ := e.Recent(t, "", -1)
	return ds
}

// Recent returns the n decisions in force at t that started last (all of
// them for n < 0), only jail's unless jail is "", sorted as Active sorts
// them; and how many are in force (of jail). Listing the latest few of a
// flood's hundreds of thousands of bans costs a walk of the table, not a
// decision each.
func (e *Engine) Recent(t time.Time, jail string, n int) ([]event.Decision, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ji, all := uint16(0), jail == ""
	if !all {
		i, ok := e.names.idx[jail]
		if !ok {
			return nil, 0
		}
		ji = i
	}
	// With n >= 0, es is a min-heap on start holding the n latest so far.
	var es []recentBan
	total := 0
	e.active.each(func(k activeKey, b *activeBan) {
		if !b.in(t) || (!all && b.jail != ji) {
			return
		}
		total++
		switch {
		case n < 0 || len(es) < n:
			es = append(es, recentBan{k, *b})
			if n >= 0 {
				siftUp(es, len(es)-1)
			}
		case n > 0 && b.start > es[0].b.start:
			es[0] = recentBan{k, *b}
			siftDown(es, 0)
		}
	})
	ds := make([]event.Decision, len(es))
	for i, x := range es {
		ds[i] = e.decisionOf(x.k, x.b)
	}
	slices.SortFunc(ds, func(a, b event.Decision) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		if c := strings.Compare(a.Target.String(), b.Target.String()); c != 0 {
			return c
		}
		return strings.Compare(event.FormatPorts(a.Ports), event.FormatPorts(b.Ports))
	})
	return ds, total
}

// recentBan is an active ban as Recent collects them.
type recentBan struct {
	k activeKey
	b activeBan
}

// siftUp and siftDown keep h a min-heap on start.
func siftUp(h []recentBan, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].b.start <= h[i].b.start {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func siftDown(h []recentBan, i int) {
	for {
		m := i
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < len(h) && h[c].b.start < h[m].b.start {
				m = c
			}
		}
		if m == i {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// JailCounts is what fail2ban-client's "status JAIL" tells of a jail.
type JailCounts struct {
	Name    string
	Failing int    // addresses with failures counted within the jail's findtime
	Failed  uint64 // failures reported by the jail's events since start
	Banned  uint64 // bans decided for the jail since start
	Active  int    // the jail's decisions in force
}

// JailCounts returns the counts of every jail at t, in the jails' order.
// Counting the failing addresses walks the tracked table: a few
// milliseconds at a million keys, for a status request.
func (e *Engine) JailCounts(t time.Time) []JailCounts {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]JailCounts, len(e.jails))
	since := make([]stamp, len(e.jails))
	for i, j := range e.jails {
		out[i] = JailCounts{Name: j.Name, Failed: j.failed, Banned: j.banned}
		since[i] = stampBefore(t, j.FindTime)
	}
	e.tracked.each(func(k addrKey, r *ring) {
		if ji := int(k.jail); ji < len(out) && r.count(since[ji], e.jails[ji].per) > 0 {
			out[ji].Failing++
		}
	})
	e.active.each(func(_ activeKey, b *activeBan) {
		if !b.in(t) {
			return
		}
		if ji, ok := e.byName[e.names.name(b.jail)]; ok {
			out[ji].Active++
		}
	})
	return out
}
