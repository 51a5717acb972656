// Package insight summarises attacks for people: it counts failures and
// bans per hour by country, autonomous system, network, user name,
// service and scenario (Counter, flushed into the store's hourly
// aggregates), and builds reports from those aggregates, of one store or
// of several merged (Build), rendered as text, JSON or CSV.
package insight

import (
	"net/netip"
	"strconv"
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
// the store as hourly rows. Events cost one map update under a lock; where
// each address is, and which network it is in, is worked out at Flush,
// once per address and hour, off the event path.
//
// Memory is bounded: past MaxEntries distinct (hour, jail, key) entries
// between two flushes, an event counts in its jail's total only, and
// Dropped says how often that happened.
type Counter struct {
	MaxEntries int // 0: DefaultMaxEntries

	mu      sync.Mutex
	entries int
	counts  map[entry][2]int64 // failures, bans
	dropped uint64
}

// entry is one thing counted. For failures by address, addr is set and
// dim is empty: Flush turns it into country, ASN and prefix rows.
type entry struct {
	hour int64 // unix seconds of the hour's start
	jail string
	dim  string
	key  string
	addr netip.Prefix // an address (as /32, /128) or a banned prefix
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
	c.add(entry{hour: hour, jail: ev.Jail, dim: store.DimTotal}, failures, n)
	if ev.Addr.IsValid() {
		c.add(entry{hour: hour, jail: ev.Jail, addr: event.AddrPrefix(ev.Addr)}, failures, n)
	}
	if ev.User != "" {
		c.add(entry{hour: hour, jail: ev.Jail, dim: store.DimUser, key: clip(ev.User)}, failures, n)
	}
	if ev.Service != "" {
		c.add(entry{hour: hour, jail: ev.Jail, dim: store.DimService, key: clip(ev.Service)}, failures, n)
	}
	c.add(entry{hour: hour, jail: ev.Jail, dim: store.DimKind, key: ev.Kind.String()}, failures, n)
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
		hour := d.Start.Truncate(time.Hour).Unix()
		c.add(entry{hour: hour, jail: d.Jail, dim: store.DimTotal}, bans, 1)
		c.add(entry{hour: hour, jail: d.Jail, addr: d.Target.Masked()}, bans, 1)
		c.add(entry{hour: hour, jail: d.Jail, dim: store.DimScenario, key: clip(d.Scenario)}, bans, 1)
	}
}

// add counts n in column col of e; the caller holds mu. A total is always
// counted; another entry only while there is room for it.
func (c *Counter) add(e entry, col, n int) {
	if c.counts == nil {
		c.counts = map[entry][2]int64{}
	}
	v, ok := c.counts[e]
	if !ok && e.dim != store.DimTotal {
		limit := c.MaxEntries
		if limit <= 0 {
			limit = DefaultMaxEntries
		}
		if c.entries >= limit {
			c.dropped++
			return
		}
	}
	if !ok {
		c.entries++
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
// starts counting afresh. Rows are in no particular order.
func (c *Counter) Flush(loc Locator) []store.HourlyRow {
	c.mu.Lock()
	counts := c.counts
	c.counts, c.entries = nil, 0
	c.mu.Unlock()
	if len(counts) == 0 {
		return nil
	}
	type rowKey struct {
		hour           int64
		jail, dim, key string
	}
	rows := map[rowKey]*store.HourlyRow{}
	put := func(hour int64, jail, dim, key, label string, v [2]int64) {
		k := rowKey{hour, jail, dim, key}
		r := rows[k]
		if r == nil {
			r = &store.HourlyRow{Hour: time.Unix(hour, 0).UTC(), Jail: jail, Dim: dim, Key: key}
			rows[k] = r
		}
		if label != "" {
			r.Label = label
		}
		r.Failures += v[failures]
		r.Bans += v[bans]
	}
	for e, v := range counts {
		if !e.addr.IsValid() {
			put(e.hour, e.jail, e.dim, e.key, "", v)
			continue
		}
		var info geo.Info
		if loc != nil {
			info = loc.Lookup(e.addr.Addr())
		}
		put(e.hour, e.jail, store.DimCountry, info.Country, "", v)
		put(e.hour, e.jail, store.DimASN, strconv.FormatUint(uint64(info.ASN), 10), info.Org, v)
		put(e.hour, e.jail, store.DimPrefix, Network(e.addr).String(), "", v)
	}
	out := make([]store.HourlyRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	return out
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
