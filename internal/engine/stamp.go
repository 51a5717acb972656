package engine

import (
	"net/netip"
	"time"
)

// ringSize is how many failure times one tracked key keeps. A jail whose
// maxretry exceeds it records one slot per ceil(maxretry/ringSize) failures
// (see slotWeight), so memory per key stays fixed.
const ringSize = 8

// stamp is a time in whole seconds since stampBase, small enough that a
// tracked key's state holds no pointers and costs a few dozen bytes.
type stamp uint32

var stampBase = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

func toStamp(t time.Time) stamp { return clampStamp(t.Unix() - stampBase) }

// clampStamp is the stamp of s seconds after stampBase: 0 before it, the
// largest stamp past the last.
func clampStamp(s int64) stamp {
	switch {
	case s < 0:
		return 0
	case s > 1<<32-1:
		return 1<<32 - 1
	}
	return stamp(s)
}

// stampBefore is toStamp(t.Add(-d)), without building the time: every
// failure takes a window's start this way, and Add's handling of the
// monotonic reading costs more than the sum.
func stampBefore(t time.Time, d time.Duration) stamp {
	s := t.Unix() - stampBase - int64(d/time.Second)
	// The nanoseconds left, in (-1s, 2s): a second more or less.
	switch ns := int64(t.Nanosecond()) - int64(d%time.Second); {
	case ns < 0:
		s--
	case ns >= int64(time.Second):
		s++
	}
	return clampStamp(s)
}

func (s stamp) Time() time.Time { return time.Unix(int64(s)+stampBase, 0) }

// add returns s+d, at most the largest stamp.
func (s stamp) add(d stamp) stamp { return stamp(min(uint64(s)+uint64(d), 1<<32-1)) }

// after returns s+d for a window d; 0 (never) when d is not positive, as
// a table whose window is off keeps nothing by time.
func (s stamp) after(d time.Duration) stamp {
	if d <= 0 {
		return 0
	}
	return s.add(durStamp(d))
}

func durStamp(d time.Duration) stamp {
	s := d / time.Second
	if s > 1<<31 {
		s = 1 << 31
	}
	return stamp(s)
}

// addrKey identifies an address (as 16 bytes, IPv4 in its mapped form) in one jail.
type addrKey struct {
	addr [16]byte
	jail uint16
}

func keyOf(a netip.Addr, jail int) addrKey {
	return addrKey{addr: a.As16(), jail: uint16(jail)}
}

func (k addrKey) Addr() netip.Addr { return netip.AddrFrom16(k.addr).Unmap() }

// ring holds the times of the most recent failures of one key.
type ring struct {
	times   [ringSize]stamp
	n, head uint8 // slots in use; index of the oldest
	partial uint8 // failures counted toward the next slot (maxretry > ringSize)
	last    stamp // the latest failure: for expiry and eviction
}

// add records weight failures at t; per is the failures one slot stands for.
func (r *ring) add(t stamp, weight, per int) {
	r.last = t
	for range weight {
		r.partial++
		if int(r.partial) < per {
			continue
		}
		r.partial = 0
		if r.n < ringSize {
			r.times[(int(r.head)+int(r.n))%ringSize] = t
			r.n++
		} else {
			r.times[r.head] = t
			r.head = (r.head + 1) % ringSize
		}
	}
}

// has reports whether a slot holds exactly t.
func (r *ring) has(t stamp) bool {
	for i := range int(r.n) {
		if r.times[(int(r.head)+i)%ringSize] == t {
			return true
		}
	}
	return false
}

// within counts slots whose time is at or after since.
func (r *ring) within(since stamp) int {
	c := 0
	for i := range int(r.n) {
		if r.times[(int(r.head)+i)%ringSize] >= since {
			c++
		}
	}
	return c
}

// count estimates the failures since a time: exact when one slot stands for
// one failure, else the slots within the window plus the failures not yet
// filling a slot.
func (r *ring) count(since stamp, per int) int {
	c := r.within(since) * per
	if r.last >= since {
		c += int(r.partial)
	}
	return c
}
