// Package insight summarises attacks for people: it counts failures and
// bans per hour by country, autonomous system, network, user name,
// service and scenario (Counter, flushed into the store's hourly
// aggregates), and builds reports from those aggregates, of one store or
// of several merged (Build), rendered as text, JSON or CSV.
package insight

import (
	"cmp"
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
// Dropped says how often that happened. An entry is 48 bytes with one
// pointer (its key's text, copied out of the log line that carried it).
type Counter struct {
	MaxEntries int // 0: DefaultMaxEntries

	mu      sync.Mutex
	entries int
	counts  map[entry][2]int64 // failures, bans
	jails   map[string]uint16  // jail name -> index in names; reset by Flush
	names   []string
	dropped uint64
}

// dim is what an entry counts by; dimAddr is an address, or a banned
// prefix, that Flush turns into country, ASN and network rows.
type dim uint8

const (
	dimTotal dim = iota
	dimAddr
	dimUser
	dimService
	dimKind
	dimScenario
	// Flush's rows of an address (dimAddr) entry.
	dimCountry
	dimASN
	dimNetwork
)

var dimNames = [...]string{
	dimTotal: store.DimTotal, dimUser: store.DimUser, dimService: store.DimService,
	dimKind: store.DimKind, dimScenario: store.DimScenario,
	dimCountry: store.DimCountry, dimASN: store.DimASN, dimNetwork: store.DimPrefix,
}

// entry is one thing counted: key is set for user names, services, kinds
// and scenarios, addr (and bits, v6) for dimAddr.
type entry struct {
	hour int64 // unix seconds of the hour's start
	key  string
	addr [16]byte
	jail uint16
	dim  dim
	bits uint8
	v6   bool
}

const (
	failures = 0
	bans     = 1
)

// Observe counts n occurrences of ev if it is a failure.
func (c *Counter) Observe(ev event.Event, n int) {
	if n <= 0 || !ev.Kind.Failure() {
		return
	}
	hour := ev.Time.Truncate(time.Hour).Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := entry{hour: hour, jail: c.jail(ev.Jail)}
	c.add(e, failures, n)
	if ev.Addr.IsValid() {
		c.add(e.at(event.AddrPrefix(ev.Addr)), failures, n)
	}
	if ev.User != "" {
		c.add(e.by(dimUser, clip(ev.User)), failures, n)
	}
	if ev.Service != "" {
		c.add(e.by(dimService, clip(ev.Service)), failures, n)
	}
	c.add(e.by(dimKind, ev.Kind.String()), failures, n)
}

// Decided counts the bans among ds, in the hour each starts. A Trap
// decision (the address is sent to the trap instead of dropped) counts as
// a ban: it stops the attacker all the same.
func (c *Counter) Decided(ds []event.Decision) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range ds {
		if (d.Action != event.Ban && d.Action != event.Trap) || !d.Target.IsValid() {
			continue
		}
		e := entry{hour: d.Start.Truncate(time.Hour).Unix(), jail: c.jail(d.Jail)}
		c.add(e, bans, 1)
		c.add(e.at(d.Target.Masked()), bans, 1)
		c.add(e.by(dimScenario, clip(d.Scenario)), bans, 1)
	}
}

// by returns e's hour and jail counted by key in dimension d.
func (e entry) by(d dim, key string) entry {
	e.dim, e.key = d, key
	return e
}

// at returns e's hour and jail counted by address or prefix p.
func (e entry) at(p netip.Prefix) entry {
	a := p.Addr().Unmap()
	e.dim, e.addr, e.v6 = dimAddr, a.As16(), a.Is6()
	e.bits = uint8(p.Bits())
	return e
}

func (e entry) prefix() netip.Prefix {
	a := netip.AddrFrom16(e.addr)
	if !e.v6 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, int(e.bits))
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

// add counts n in column col of e; the caller holds mu. A total is always
// counted; another entry only while there is room for it.
func (c *Counter) add(e entry, col, n int) {
	if c.counts == nil {
		c.counts = map[entry][2]int64{}
	}
	v, ok := c.counts[e]
	if !ok {
		if e.dim != dimTotal {
			limit := c.MaxEntries
			if limit <= 0 {
				limit = DefaultMaxEntries
			}
			if c.entries >= limit {
				c.dropped++
				return
			}
		}
		c.entries++
		// A key read from a log line must not keep the whole line alive.
		e.key = strings.Clone(e.key)
	}
	v[col] += int64(n)
	c.counts[e] = v
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
// An address entry adds to three rows, and under a flood most entries are
// addresses: rows are summed under compact keys (an AS by number, a
// network as a prefix) and their text is made once per row as it is read,
// so a flush of a full Counter costs a fraction of the memory the Counter
// holds.
func (c *Counter) FlushSeq(loc Locator) iter.Seq[store.HourlyRow] {
	c.mu.Lock()
	counts, names := c.counts, c.names
	c.counts, c.entries, c.jails, c.names = nil, 0, nil, nil
	c.mu.Unlock()
	if len(counts) == 0 {
		return nil
	}
	sums := map[rowKey][2]int64{}
	orgs := map[uint32]string{} // AS number -> organisation, from loc
	add := func(k rowKey, v [2]int64) {
		s := sums[k]
		s[failures] += v[failures]
		s[bans] += v[bans]
		sums[k] = s
	}
	for e, v := range counts {
		k := rowKey{hour: e.hour, jail: e.jail}
		if e.dim != dimAddr {
			k.dim, k.key = e.dim, e.key
			add(k, v)
			continue
		}
		p := e.prefix()
		var info geo.Info
		if loc != nil {
			info = loc.Lookup(p.Addr())
		}
		k.dim, k.key = dimCountry, info.Country
		add(k, v)
		k.dim, k.key, k.asn = dimASN, "", info.ASN
		add(k, v)
		if info.Org != "" {
			orgs[info.ASN] = info.Org
		}
		k.dim, k.asn, k.net = dimNetwork, 0, Network(p)
		add(k, v)
	}
	rows := make([]rowSum, 0, len(sums))
	for k, v := range sums {
		rows = append(rows, rowSum{k, v})
	}
	slices.SortFunc(rows, func(a, b rowSum) int {
		return cmp.Or(cmp.Compare(a.k.hour, b.k.hour), strings.Compare(names[a.k.jail], names[b.k.jail]),
			strings.Compare(dimNames[a.k.dim], dimNames[b.k.dim]), strings.Compare(a.k.key, b.k.key),
			cmp.Compare(a.k.asn, b.k.asn), a.k.net.Addr().Compare(b.k.net.Addr()), cmp.Compare(a.k.net.Bits(), b.k.net.Bits()))
	})
	return func(yield func(store.HourlyRow) bool) {
		for _, x := range rows {
			k := x.k
			r := store.HourlyRow{Hour: time.Unix(k.hour, 0).UTC(), Jail: names[k.jail], Dim: dimNames[k.dim], Key: k.key, Failures: x.v[failures], Bans: x.v[bans]}
			switch k.dim {
			case dimASN:
				r.Key, r.Label = strconv.FormatUint(uint64(k.asn), 10), orgs[k.asn]
			case dimNetwork:
				r.Key = k.net.String()
			}
			if !yield(r) {
				return
			}
		}
	}
}

// rowKey is an hourly row's key while a flush sums the rows.
type rowKey struct {
	hour int64
	net  netip.Prefix
	key  string // a user name, service, kind, scenario or country
	asn  uint32
	jail uint16
	dim  dim
}

// rowSum is a row's key and its counts.
type rowSum struct {
	k rowKey
	v [2]int64
}

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
