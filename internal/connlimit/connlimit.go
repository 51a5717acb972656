// Package connlimit bounds the connections a server keeps open, so that
// idle or hostile peers cannot take every file descriptor (and with them
// the daemon's log files and control socket) or lock other peers out.
//
// A Limiter wraps a net.Listener: a connection over its total, over its
// share of a process-wide Budget, or over its per-address limit is closed
// as soon as it is accepted, and counted; the server never sees it.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Budget is the number of descriptors every limited listener of a process
// may hold together: the process's limit less a reserve for log files, the
// store, the firewall and the control socket. It is safe for concurrent
// use; a nil *Budget is unlimited.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a Budget of n descriptors.
func NewBudget(n int) *Budget { return &Budget{max: int64(n)} }

// Max is the budget's size.
func (b *Budget) Max() int {
	if b == nil {
		return 0
	}
	return int(b.max)
}

// Used is how much of it is taken now.
func (b *Budget) Used() int {
	if b == nil {
		return 0
	}
	return int(b.used.Load())
}

func (b *Budget) take() bool {
	if b == nil {
		return true
	}
	if b.used.Add(1) > b.max {
		b.used.Add(-1)
		return false
	}
	return true
}

func (b *Budget) give() {
	if b != nil {
		b.used.Add(-1)
	}
}

// Limiter bounds one server's connections. The zero value limits nothing.
type Limiter struct {
	// Max bounds the connections open at once; 0: no bound of its own.
	Max int
	// PerAddr bounds the connections from one address (an IPv6 /64) at
	// once; 0: none. Unix socket peers have no address and are not bound.
	PerAddr int
	// Budget is shared with the process's other listeners; nil: none.
	Budget *Budget

	mu     sync.Mutex
	open   int
	byAddr map[netip.Prefix]int

	full, perAddr atomic.Uint64
}

// Stats counts a Limiter's connections.
type Stats struct {
	Open         int    `json:"open"`          // open now
	RejectedFull uint64 `json:"rejected_full"` // closed at once: Max or the Budget reached
	RejectedAddr uint64 `json:"rejected_addr"` // closed at once: PerAddr reached for their address
}

// Stats returns the counters.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	open := l.open
	l.mu.Unlock()
	return Stats{Open: open, RejectedFull: l.full.Load(), RejectedAddr: l.perAddr.Load()}
}

// Listen wraps inner: its Accept returns only connections within the
// limits, and closing one gives its place back.
func (l *Limiter) Listen(inner net.Listener) net.Listener {
	return &listener{Listener: inner, l: l}
}

type listener struct {
	net.Listener
	l *Limiter
}

// Accept accepts until a connection fits the limits; errors are inner's.
func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc, ok := ln.l.admit(c); ok {
			return lc, nil
		}
		c.Close()
	}
}

// key is the address a peer is counted under: its /32, or its IPv6 /64
// (one host hands out a /64 to itself at will).
func key(c net.Conn) (netip.Prefix, bool) {
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p, true
}

func (l *Limiter) admit(c net.Conn) (net.Conn, bool) {
	k, keyed := key(c)
	keyed = keyed && l.PerAddr > 0
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Max > 0 && l.open >= l.Max {
		l.full.Add(1)
		return nil, false
	}
	if keyed && l.byAddr[k] >= l.PerAddr {
		l.perAddr.Add(1)
		return nil, false
	}
	if !l.Budget.take() {
		l.full.Add(1)
		return nil, false
	}
	l.open++
	if keyed {
		if l.byAddr == nil {
			l.byAddr = map[netip.Prefix]int{}
		}
		l.byAddr[k]++
	}
	return &conn{Conn: c, l: l, key: k, keyed: keyed}, true
}

func (l *Limiter) release(c *conn) {
	l.Budget.give()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if c.keyed {
		if l.byAddr[c.key]--; l.byAddr[c.key] <= 0 {
			delete(l.byAddr, c.key)
		}
	}
}

// conn gives its place back once, at its first Close.
type conn struct {
	net.Conn
	l     *Limiter
	key   netip.Prefix
	keyed bool
	once  sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}
