// Package insight summarises attacks for people: it counts failures and
// bans per hour by country, autonomous system, network, user name,
// service and scenario (Counter, flushed into the store's hourly
// aggregates), and builds reports from those aggregates, of one store or
// of several merged (Build), rendered as text, JSON or CSV.
package insight

import (
	"cmp"
	"encoding/binary"
	"iter"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/geo"
	"github.com/rampart-dev/rampart/internal/store"
)

// Locator says where an address is. *geo.Watched and *geo.DB are
// Locators; nil means nowhere known.
type Locator interface {
	Lookup(netip.Addr) geo.Info
}

// DefaultMaxEntries bounds what a Counter holds between two flushes.
const DefaultMaxEntries = 200_000

// Counter counts failures and bans in memory until Flush hands them to
// the store as hourly rows. Events cost one map update per dimension under
// a lock; where each address is, and which network it is in, is worked
// out at Flush, once per address and hour, off the event path.
//
// Memory is bounded: past MaxEntries distinct (hour, jail, key) entries
// between two flushes, an event counts in its jail's total only, and
// Dropped says how often that happened. Under a flood nearly every entry
// is an address, so addresses have a map of their own with a key of 24
// bytes and no pointer; the other keys (user names, services, kinds,
// scenarios) are few, each with its text copied out of the log line that
// carried it. Both are tallies: counting an entry already there hashes its
// key once.
type Counter struct {
	MaxEntries int // 0: DefaultMaxEntries

	mu      sync.Mutex
	entries int
	keyed   tally[keyedEntry]
	addrs   tally[addrEntry]
	jails   map[string]uint16 // jail name -> index in names; reset by Flush
	names   []string
	fixed   []fixedEntries // by jail index; reset by Flush
	dropped uint64
}

// fixedEntries remembers where a jail's total, service and kind entries of
// one hour are in keyed: a flood's failures in a jail share them, and
// looking each up hashes its key (three of the five lookups an event
// took). at holds -1 for an entry not counted: no service, or no room,
// which stays so until Flush; at[0] (the total, always counted) is -1
// while nothing is remembered.
type fixedEntries struct {
	hour    int32
	kind    event.Kind
	service string
	at      [3]int32
}

// counts are an entry's failures and bans.
type counts [2]int64

const (
	failures = 0
	bans     = 1
)

func (v *counts) add(w counts) {
	v[failures] += w[failures]
	v[bans] += w[bans]
}

// tally holds counts by key: the map gives a key's place in a slice, so
// counting a key already there is one lookup, where a map of counts takes
// a lookup and a store, each hashing the key.
type tally[K comparable] struct {
	at map[K]int32 // key -> index in v
	v  []counts
}

// find returns k's counts, or nil when k is not there.
func (t *tally[K]) find(k K) *counts {
	if i, ok := t.at[k]; ok {
		return &t.v[i]
	}
	return nil
}

// insert adds k, not there yet, with counts v, and returns its place in v.
func (t *tally[K]) insert(k K, v counts) int32 {
	if t.at == nil {
		t.at = map[K]int32{}
	}
	i := int32(len(t.v))
	t.at[k] = i
	t.v = append(t.v, v)
	return i
}

// dim is what a row counts by.
type dim uint8

const (
	dimTotal dim = iota
	dimUser
	dimService
	dimKind
	dimScenario
	// Flush's rows of an address entry (besides its network's, which
	// Flush sums apart: see netSum).
	dimCountry
	dimASN
)

var dimNames = [...]string{
	dimTotal: store.DimTotal, dimUser: store.DimUser, dimService: store.DimService,
	dimKind: store.DimKind, dimScenario: store.DimScenario,
	dimCountry: store.DimCountry, dimASN: store.DimASN,
}

// keyedEntry is one thing counted by text (key is "" for a total).
type keyedEntry struct {
	key  string
	hour int32 // hours since the Unix epoch
	jail uint16
	dim  dim
}

// addrEntry is one address, or banned prefix, counted: Flush turns it
// into country, AS and network rows.
type addrEntry struct {
	addr [16]byte
	hour int32
	jail uint16
	bits uint8
	v6   bool
}

func hourOf(t time.Time) int32 { return int32(t.Truncate(time.Hour).Unix() / 3600) }

// at returns the entry of prefix p in hour and jail.
func at(hour int32, jail uint16, p netip.Prefix) addrEntry {
	a := p.Addr().Unmap()
	return addrEntry{addr: a.As16(), hour: hour, jail: jail, bits: uint8(p.Bits()), v6: a.Is6()}
}

func (e addrEntry) prefix() netip.Prefix { return prefixFrom16(e.addr, e.v6, e.bits) }

// prefixFrom16 returns the prefix of bits at address a (16 bytes, IPv4 in
// its mapped form unless v6).
func prefixFrom16(a [16]byte, v6 bool, bits uint8) netip.Prefix {
	addr := netip.AddrFrom16(a)
	if !v6 {
		addr = addr.Unmap()
	}
	return netip.PrefixFrom(addr, int(bits))
}

// Observe counts n occurrences of ev if it is a failure.
func (c *Counter) Observe(ev event.Event, n int) {
	if n <= 0 || !ev.Kind.Failure() {
		return
	}
	hour := hourOf(ev.Time)
	v := counts{failures: int64(n)}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := keyedEntry{hour: hour, jail: c.jail(ev.Jail)}
	c.addFixed(e, ev.Service, ev.Kind, v)
	if ev.Addr.IsValid() {
		c.addAddr(at(hour, e.jail, event.AddrPrefix(ev.Addr)), v)
	}
	if ev.User != "" {
		c.addKeyed(e.by(dimUser, clip(ev.User)), v)
	}
}

// addFixed counts v in e's total and in its service's and kind's entries;
// the caller holds mu.
func (c *Counter) addFixed(e keyedEntry, service string, kind event.Kind, v counts) {
	for int(e.jail) >= len(c.fixed) {
		c.fixed = append(c.fixed, fixedEntries{at: [3]int32{-1, -1, -1}})
	}
	f := &c.fixed[e.jail]
	if f.hour == e.hour && f.kind == kind && f.service == service && f.at[0] >= 0 {
		for k, i := range f.at {
			switch {
			case i >= 0:
				c.keyed.v[i].add(v)
			case k == 1 && service == "":
			default:
				c.dropped++ // as room would have counted it
			}
		}
		return
	}
	*f = fixedEntries{hour: e.hour, kind: kind, service: strings.Clone(service), at: [3]int32{-1, -1, -1}}
	f.at[0] = c.addKeyed(e, v)
	if service != "" {
		f.at[1] = c.addKeyed(e.by(dimService, clip(service)), v)
	}
	f.at[2] = c.addKeyed(e.by(dimKind, kind.String()), v)
}

// Decided counts the bans among ds, in the hour each starts. A Trap
// decision (the address is sent to the trap instead of dropped) counts as
// a ban: it stops the attacker all the same.
func (c *Counter) Decided(ds []event.Decision) {
	v := counts{bans: 1}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range ds {
		if (d.Action != event.Ban && d.Action != event.Trap) || !d.Target.IsValid() {
			continue
		}
		e := keyedEntry{hour: hourOf(d.Start), jail: c.jail(d.Jail)}
		c.addKeyed(e, v)
		c.addAddr(at(e.hour, e.jail, d.Target.Masked()), v)
		c.addKeyed(e.by(dimScenario, clip(d.Scenario)), v)
	}
}

// by returns e's hour and jail counted by key in dimension d.
func (e keyedEntry) by(d dim, key string) keyedEntry {
	e.dim, e.key = d, key
	return e
}

// jail returns name's index in c.names; the caller holds mu.
func (c *Counter) jail(name string) uint16 {
	if i, ok := c.jails[name]; ok {
		return i
	}
	if len(c.names) > 1<<16-1 {
		return 0 // more jail names than any configuration has: counted in the first
	}
	if c.jails == nil {
		c.jails = map[string]uint16{}
	}
	i := uint16(len(c.names))
	name = strings.Clone(name)
	c.jails[name] = i
	c.names = append(c.names, name)
	return i
}

// addKeyed counts v for e and returns its place in keyed, or -1 when it
// is not counted; the caller holds mu. A total is always counted; another
// entry only while there is room for it.
func (c *Counter) addKeyed(e keyedEntry, v counts) int32 {
	if i, ok := c.keyed.at[e]; ok {
		c.keyed.v[i].add(v)
		return i
	}
	if e.dim != dimTotal && !c.room() {
		return -1
	}
	// A key read from a log line must not keep the whole line alive.
	e.key = strings.Clone(e.key)
	return c.keyed.insert(e, v)
}

// addAddr counts v for e while there is room; the caller holds mu.
func (c *Counter) addAddr(e addrEntry, v counts) {
	if p := c.addrs.find(e); p != nil {
		p.add(v)
		return
	}
	if c.room() {
		c.addrs.insert(e, v)
	}
}

// room takes a place for a new entry, or counts a drop when none is left.
func (c *Counter) room() bool {
	limit := c.MaxEntries
	if limit <= 0 {
		limit = DefaultMaxEntries
	}
	if c.entries >= limit {
		c.dropped++
		return false
	}
	c.entries++
	return true
}

// Dropped returns how many counts went to totals alone for want of room.
func (c *Counter) Dropped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Flush returns what was counted since the last Flush as hourly rows, with
// each address's country, AS and network from loc (which may be nil), and
// starts counting afresh. Rows are in the order of the store's key (hour,
// jail, dimension, key; ASes and networks by number), so that writing them
// touches the table's pages in order rather than at random.
func (c *Counter) Flush(loc Locator) []store.HourlyRow {
	if rows := c.FlushSeq(loc); rows != nil {
		return slices.Collect(rows)
	}
	return nil
}

// FlushSeq is Flush whose rows are made as they are read: a flood's flush
// then never holds all of them, with their text, at once. It returns nil
// when nothing was counted.
//
// Under a flood most entries are addresses, each adding to a country, an
// AS and a network row. Countries and ASes are few and summed in a map;
// networks are nearly as many as the addresses, so they are summed by
// sorting one compact record per address and merging neighbours, in place.
// Text is made once per row as it is read. A flush of a full Counter so
// takes less memory than the Counter holds.
func (c *Counter) FlushSeq(loc Locator) iter.Seq[store.HourlyRow] {
	c.mu.Lock()
	keyed, addrs, names := c.keyed, c.addrs, c.names
	c.keyed, c.addrs, c.entries, c.jails, c.names, c.fixed = tally[keyedEntry]{}, tally[addrEntry]{}, 0, nil, nil, nil
	c.mu.Unlock()
	if len(keyed.v)+len(addrs.v) == 0 {
		return nil
	}
	// rank orders jails by name, as the store's key does.
	rank := make([]uint16, len(names))
	byName := make([]int, len(names))
	for i := range byName {
		byName[i] = i
	}
	slices.SortFunc(byName, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	for r, i := range byName {
		rank[i] = uint16(r)
	}

	sums := make(map[rowKey]counts, len(keyed.v))
	for e, i := range keyed.at {
		sums[rowKey{hour: e.hour, jail: e.jail, dim: e.dim, key: e.key}] = keyed.v[i]
	}
	sum := func(k rowKey, v counts) {
		s := sums[k]
		s.add(v)
		sums[k] = s
	}
	orgs := map[uint32]string{} // AS number -> organisation, from loc
	nets := make([]netSum, 0, len(addrs.v))
	for e, i := range addrs.at {
		v := addrs.v[i]
		p := e.prefix()
		var info geo.Info
		if loc != nil {
			info = loc.Lookup(p.Addr())
		}
		sum(rowKey{hour: e.hour, jail: e.jail, dim: dimCountry, key: info.Country}, v)
		sum(rowKey{hour: e.hour, jail: e.jail, dim: dimASN, asn: info.ASN}, v)
		if info.Org != "" {
			orgs[info.ASN] = info.Org
		}
		nets = append(nets, newNetSum(at(e.hour, e.jail, Network(p)), v, rank))
	}
	slices.SortFunc(nets, func(a, b netSum) int { return a.compare(&b) })
	merged := nets[:0]
	for _, x := range nets {
		if last := len(merged) - 1; last >= 0 && merged[last].compare(&x) == 0 {
			merged[last].v.add(x.v)
			continue
		}
		merged = append(merged, x)
	}
	nets = merged

	rows := make([]rowSum, 0, len(sums))
	for k, v := range sums {
		rows = append(rows, rowSum{k, v})
	}
	slices.SortFunc(rows, func(a, b rowSum) int {
		return cmp.Or(cmp.Compare(a.k.hour, b.k.hour), cmp.Compare(rank[a.k.jail], rank[b.k.jail]),
			strings.Compare(dimNames[a.k.dim], dimNames[b.k.dim]), strings.Compare(a.k.key, b.k.key), cmp.Compare(a.k.asn, b.k.asn))
	})
	// A network row goes before a keyed one of its hour and jail when its
	// dimension's name sorts first.
	netFirst := func(n *netSum, r *rowSum) bool {
		return cmp.Or(cmp.Compare(n.hour, r.k.hour), cmp.Compare(rank[n.jail], rank[r.k.jail]),
			strings.Compare(store.DimPrefix, dimNames[r.k.dim])) < 0
	}
	return func(yield func(store.HourlyRow) bool) {
		i, j := 0, 0
		for i < len(rows) || j < len(nets) {
			var r store.HourlyRow
			if j < len(nets) && (i == len(rows) || netFirst(&nets[j], &rows[i])) {
				n := &nets[j]
				j++
				r = store.HourlyRow{Hour: hourTime(n.hour), Jail: names[n.jail], Dim: store.DimPrefix, Key: n.prefix().String(), Failures: n.v[failures], Bans: n.v[bans]}
			} else {
				k, v := rows[i].k, rows[i].v
				i++
				r = store.HourlyRow{Hour: hourTime(k.hour), Jail: names[k.jail], Dim: dimNames[k.dim], Key: k.key, Failures: v[failures], Bans: v[bans]}
				if k.dim == dimASN {
					r.Key, r.Label = strconv.FormatUint(uint64(k.asn), 10), orgs[k.asn]
				}
			}
			if !yield(r) {
				return
			}
		}
	}
}

func hourTime(h int32) time.Time { return time.Unix(int64(h)*3600, 0).UTC() }

// rowKey is the key of a row other than a network's while a flush sums
// the rows.
type rowKey struct {
	key  string // a user name, service, kind, scenario or country
	hour int32
	asn  uint32
	jail uint16
	dim  dim
}

// rowSum is a row's key and its counts.
type rowSum struct {
	k rowKey
	v counts
}

// netSum is a network row's key and its counts. The key is held as the
// three numbers it sorts by (see newNetSum), which a sort of a flood's
// networks compares far quicker than the fields.
type netSum struct {
	order  uint64 // hour, jail (by name), IPv6 or not
	hi, lo uint64 // the network's address, 16 bytes big-endian; an IPv4 address's bytes by textRank
	v      counts
	hour   int32
	jail   uint16
	bits   uint8
}

// newNetSum returns the row of network e with counts v; rank orders the
// jails by name. IPv4 networks sort before IPv6 ones, and among themselves
// as their text does ("1.2.3.0/24" < "10.0.0.0/24" < "9.0.0.0/24"): the
// order of the store's key, in which rows go into its table with far less
// work than in numeric order (a flood's 110,000 networks: 0.28-0.31 against
// 0.65-0.71 CPU-s in store's BenchmarkAddHourlyKeyOrder). IPv6 networks
// keep numeric order.
func newNetSum(e addrEntry, v counts, rank []uint16) netSum {
	order := uint64(uint32(e.hour)^1<<31)<<32 | uint64(rank[e.jail])<<16
	a := e.addr
	if e.v6 {
		order |= 1
	} else {
		mapIPv4(&a, &textRank)
	}
	return netSum{order: order, hi: binary.BigEndian.Uint64(a[:8]), lo: binary.BigEndian.Uint64(a[8:]),
		v: v, hour: e.hour, jail: e.jail, bits: e.bits}
}

func (a *netSum) compare(b *netSum) int {
	return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo), cmp.Compare(textRank[a.bits], textRank[b.bits]))
}

func (a *netSum) prefix() netip.Prefix {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	v6 := a.order&1 != 0
	if !v6 {
		mapIPv4(&b, &textByRank)
	}
	return prefixFrom16(b, v6, a.bits)
}

// mapIPv4 replaces each byte of the IPv4 address in a (its mapped form)
// by table's entry for it.
func mapIPv4(a *[16]byte, table *[256]byte) {
	for i := 12; i < 16; i++ {
		a[i] = table[a[i]]
	}
}

// textRank is each byte's place among the decimal texts of 0-255 in text
// order (0, 1, 10, 100, 101, ..., 109, 11, 110, ..., 99), and textByRank
// its inverse. Texts that share a start sort shorter first, as a dotted
// address's do: its '.' and '/' sort before any digit.
var textRank, textByRank = func() (rank, byRank [256]byte) {
	texts := make([]string, 256)
	for i := range texts {
		texts[i] = strconv.Itoa(i)
	}
	slices.Sort(texts)
	for r, t := range texts {
		n, _ := strconv.Atoi(t)
		rank[n], byRank[r] = byte(r), byte(n)
	}
	return rank, byRank
}()

// Network returns the network a target is counted in: an address's /24
// (IPv4) or /64 (IPv6), or the banned prefix itself when it is wider.
func Network(p netip.Prefix) netip.Prefix {
	bits := 24
	if p.Addr().Is6() {
		bits = 64
	}
	if p.Bits() <= bits {
		return p.Masked()
	}
	n, _ := p.Addr().Prefix(bits)
	return n
}

// clip bounds a key taken from a log line: 64 bytes are enough for a user
// name, and a hostile line must not make rows of any size.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	// Cut at a rune boundary.
	i := max
	for i > 0 && s[i]&0xc0 == 0x80 {
		i--
	}
	return s[:i]
}
