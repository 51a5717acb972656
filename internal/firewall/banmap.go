package firewall

import (
	"iter"
	"math"
	"net/netip"
	"time"
)

// banMap maps ban targets to their ends (zero: no timeout), in a third of
// the memory of a map[netip.Prefix]time.Time and with no pointer for the
// garbage collector to follow: both netip.Prefix and time.Time hold one,
// and the intent holds every address ban in force (a million or more).
type banMap struct {
	// m holds each end as nanoseconds since base, shifted left by one,
	// the low bit set when the end had a monotonic clock reading (it comes
	// back with one, from base's; one without comes back without, from
	// wall's): ends compare as they did. noEnd: no timeout.
	m          map[targetKey]int64
	base, wall time.Time // time.Now, with and without its monotonic reading
}

// targetKey is a target: its address in the 16-byte form, its family and its
// bits.
type targetKey struct {
	addr [16]byte
	v4   bool
	bits uint8
}

const noEnd = math.MinInt64

func newBanMap() banMap {
	now := time.Now()
	return banMap{m: map[targetKey]int64{}, base: now, wall: now.Round(0)}
}

func keyOf(p netip.Prefix) targetKey {
	return targetKey{addr: p.Addr().As16(), v4: p.Addr().Is4(), bits: uint8(p.Bits())}
}

func (k targetKey) prefix() netip.Prefix {
	a := netip.AddrFrom16(k.addr)
	if k.v4 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, int(k.bits))
}

func (b banMap) end(v int64) time.Time {
	switch {
	case v == noEnd:
		return time.Time{}
	case v&1 == 1:
		return b.base.Add(time.Duration(v >> 1))
	default:
		return b.wall.Add(time.Duration(v >> 1))
	}
}

// maxSpan bounds an end's distance from base: some 146 years.
const maxSpan = math.MaxInt64 >> 1

func (b banMap) set(p netip.Prefix, end time.Time) {
	v := int64(noEnd)
	if !end.IsZero() {
		d := min(max(int64(end.Sub(b.base)), -maxSpan), maxSpan)
		v = d << 1
		if end != end.Round(0) { // a monotonic reading
			v |= 1
		}
	}
	b.m[keyOf(p)] = v
}

func (b banMap) delete(p netip.Prefix) { delete(b.m, keyOf(p)) }

func (b banMap) len() int { return len(b.m) }

// all yields every target and its end.
func (b banMap) all() iter.Seq2[netip.Prefix, time.Time] {
	return func(yield func(netip.Prefix, time.Time) bool) {
		for k, d := range b.m {
			if !yield(k.prefix(), b.end(d)) {
				return
			}
		}
	}
}

func (b banMap) deleteFunc(del func(netip.Prefix, time.Time) bool) {
	for k, d := range b.m {
		if del(k.prefix(), b.end(d)) {
			delete(b.m, k)
		}
	}
}
