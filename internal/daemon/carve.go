package daemon

import (
	"context"
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/firewall"
)

// Carver lets addresses through prefix bans: good clients (addresses that
// logged in, delivering mail relays) inside a banned network keep working.
// Every backend in package firewall is one; the semantics are documented
// there. An enforcer that is not leaves prefix bans covering good clients.
type Carver interface {
	Carve(ctx context.Context, cs []firewall.CarveOut) error
	Uncarve(ctx context.Context, addrs []netip.Addr) error
}

// carveRecordCap bounds the record of carve-outs the kernel holds.
const carveRecordCap = 100_000

// carves decides when a good client's carve-out needs a kernel write.
//
// A client logging in many times a day must not cost a netlink write per
// login: the record keeps, per address, the end the kernel holds and the
// end wanted. A login refreshes the kernel entry only when it has less than
// half the wanted time left; otherwise it only moves the wanted end, and
// the periodic sweep writes it when the kernel's end comes within half the
// remaining wanted time, so a carve-out never ends before its good client's
// TTL does. Each address is written at most about once per half TTL.
//
// The record holds at most carveRecordCap addresses; beyond that, ended
// ones are dropped and then an arbitrary eighth, which are written again at
// their next login (until then their carve-out may end up to half a TTL
// early).
type carves struct {
	mu      sync.Mutex
	rec     map[netip.Addr]carveRec
	pending []firewall.CarveOut // for the kernel stage
}

// carveRec holds Unix nanoseconds: the end the kernel holds, the end wanted.
type carveRec struct{ kernel, want int64 }

// good records that addr is a good client until until, as of now, and
// reports whether a kernel write was queued.
func (c *carves) good(addr netip.Addr, until, now time.Time) bool {
	if !addr.IsValid() || !until.After(now) {
		return false
	}
	addr = addr.Unmap().WithZone("")
	u, n := until.UnixNano(), now.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rec == nil {
		c.rec = map[netip.Addr]carveRec{}
	}
	r, ok := c.rec[addr]
	if ok && r.kernel-n >= (u-n)/2 {
		r.want = max(r.want, u)
		c.rec[addr] = r
		return false
	}
	if len(c.pending) >= carveRecordCap {
		return false // the kernel stage is far behind; the next login retries
	}
	if !ok && len(c.rec) >= carveRecordCap {
		c.evict(n)
	}
	c.rec[addr] = carveRec{kernel: u, want: max(r.want, u)}
	c.pending = append(c.pending, firewall.CarveOut{Addr: addr, Until: until})
	return true
}

// evict makes room in a full record. The caller holds mu.
func (c *carves) evict(now int64) {
	maps.DeleteFunc(c.rec, func(_ netip.Addr, r carveRec) bool { return r.kernel <= now && r.want <= now })
	if len(c.rec) < carveRecordCap {
		return
	}
	n := len(c.rec) / 8
	for a := range c.rec {
		if n == 0 {
			break
		}
		delete(c.rec, a)
		n--
	}
}

// sweep queues the refreshes the kernel's entries need by now (see carves)
// and forgets the carve-outs that have ended; it reports whether it queued
// any.
func (c *carves) sweep(now time.Time) bool {
	n := now.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	queued := false
	for a, r := range c.rec {
		switch {
		case r.want <= n:
			delete(c.rec, a)
		case r.want > r.kernel && r.kernel-n < (r.want-n)/2 && len(c.pending) < carveRecordCap:
			r.kernel = r.want
			c.rec[a] = r
			c.pending = append(c.pending, firewall.CarveOut{Addr: a, Until: time.Unix(0, r.want)})
			queued = true
		}
	}
	return queued
}

// take returns the queued kernel writes.
func (c *carves) take() []firewall.CarveOut {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := c.pending
	c.pending = nil
	return cs
}

// failed forgets the records of carve-outs the kernel refused, so that the
// next login writes them again.
func (c *carves) failed(cs []firewall.CarveOut) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, co := range cs {
		delete(c.rec, co.Addr)
	}
}
