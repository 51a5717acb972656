package engine

import (
	"encoding/binary"
	"net/netip"
)

// distinctSize bounds how many distinct members a distinct counter keeps;
// thresholds above it are clamped to it.
const distinctSize = 8

// distinct counts distinct members seen recently, keeping the latest time
// of each of the most recent distinctSize members. Fixed size and
// pointer-free, so tables of them stay cheap and bounded. Members are
// address hashes (addrID) where only the count matters, whole addresses
// (16 bytes) where the members themselves are wanted later (user spray).
type distinct[M comparable] struct {
	ids   [distinctSize]M
	times [distinctSize]stamp
	n     uint8
	last  stamp
}

// add records member id at t.
func (d *distinct[M]) add(id M, t stamp) {
	d.last = t
	oldest := 0
	for i := range int(d.n) {
		if d.ids[i] == id {
			d.times[i] = t
			return
		}
		if d.times[i] < d.times[oldest] {
			oldest = i
		}
	}
	if int(d.n) < distinctSize {
		d.ids[d.n], d.times[d.n] = id, t
		d.n++
		return
	}
	d.ids[oldest], d.times[oldest] = id, t
}

// count returns how many members were seen at or after since.
func (d *distinct[M]) count(since stamp) int {
	c := 0
	for i := range int(d.n) {
		if d.times[i] >= since {
			c++
		}
	}
	return c
}

// addrID hashes an address for distinct counters: deterministic, so
// replays decide identically; a collision only makes a counter undercount.
func addrID(a netip.Addr) uint32 {
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	return uint32(mix(mix(hi) ^ lo))
}

// mix is the splitmix64 finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
