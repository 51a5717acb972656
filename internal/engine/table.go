package engine

import (
	"encoding/binary"
	"math/bits"
)

// boundedMap is a hash table with a hard cap on its size: inserting into a
// full table first evicts the entry with the oldest "last" time among a few
// sampled at random, an approximation of least-recently-active eviction
// that costs O(1) instead of keeping a global order.
//
// It is open addressing with linear probing and backward-shift deletion
// rather than a Go map, because under a flood of unique addresses every
// insert is an eviction: a Go map's tombstones then lengthen probes and
// force regrowth, while backward shifting leaves no tombstones. Slots hold
// keys and values inline and hold no pointers, so the garbage collector
// never scans them. The table grows by doubling up to the size its cap
// needs, so an idle server pays little. Hashes and sampling are seeded
// constants: replays evict identically.
type boundedMap[K comparable, V any] struct {
	slots   []slot[K, V]
	meta    []uint8 // per slot: 0 empty, else 0x80 | 7 bits of the key's hash
	n       int
	cap     int
	hash    func(K) uint64
	last    func(*V) stamp
	onEvict func(K, *V) // called for entries evicted or expired, before they go; may be nil
	evicted uint64
	rnd     uint64

	// Expiry (expiry.go); both nil when entries never go stale.
	due   func(K, *V) stamp // when an entry may go; 0: not by time
	wheel *wheel[K]
}

// expiring makes the table drop entries once due says so, within horizon
// of their last update; see expire.
func (b *boundedMap[K, V]) expiring(horizon stamp, due func(K, *V) stamp) *boundedMap[K, V] {
	b.due, b.wheel = due, newWheel[K](horizon)
	return b
}

type slot[K comparable, V any] struct {
	k K
	v V
}

// fingerprint is the meta byte of a used slot for hash h: probes scan these
// bytes and touch a slot only when its fingerprint matches.
func fingerprint(h uint64) uint8 { return uint8(h&0x7f) | 0x80 }

const evictSample = 8

func newBoundedMap[K comparable, V any](cap int, hash func(K) uint64, last func(*V) stamp) *boundedMap[K, V] {
	return &boundedMap[K, V]{cap: cap, hash: hash, last: last, rnd: 0x9e3779b97f4a7c15}
}

func (b *boundedMap[K, V]) len() int { return b.n }

// home is the slot where the probe sequence of a key with hash h starts.
func (b *boundedMap[K, V]) home(h uint64) int {
	hi, _ := bits.Mul64(h, uint64(len(b.slots)))
	return int(hi)
}

// find returns k's slot, or the empty slot where it would go.
func (b *boundedMap[K, V]) find(k K) (int, bool) {
	if len(b.slots) == 0 {
		return -1, false
	}
	return b.findHashed(k, b.hash(k))
}

// findHashed is find for a key whose hash h is known.
func (b *boundedMap[K, V]) findHashed(k K, h uint64) (int, bool) {
	fp := fingerprint(h)
	for i := b.home(h); ; {
		m := b.meta[i]
		if m == 0 {
			return i, false
		}
		if m == fp && b.slots[i].k == k {
			return i, true
		}
		if i++; i == len(b.meta) {
			i = 0
		}
	}
}

func (b *boundedMap[K, V]) get(k K) (V, bool) {
	i, ok := b.find(k)
	if !ok {
		var zero V
		return zero, false
	}
	return b.slots[i].v, true
}

// slot returns the value for k, or the zero value when absent.
func (b *boundedMap[K, V]) slot(k K) V {
	v, _ := b.get(k)
	return v
}

// place is where a lookup left a key: its slot, or the empty slot where it
// would go (-1 in a table not allocated yet), and its hash. It stays valid
// until the table next changes.
type place struct {
	i     int
	h     uint64
	found bool
}

// lookup is slot, also returning k's place for a store that follows: a
// read-modify-write of an entry then hashes and probes once.
func (b *boundedMap[K, V]) lookup(k K) (V, place) {
	p := place{i: -1, h: b.hash(k)}
	if len(b.slots) > 0 {
		p.i, p.found = b.findHashed(k, p.h)
	}
	if !p.found {
		var zero V
		return zero, p
	}
	return b.slots[p.i].v, p
}

// maxSlots is the table size the cap needs: a load factor of 4/5 at most.
func (b *boundedMap[K, V]) maxSlots() int { return b.cap + b.cap/4 + 1 }

// put stores v under k, evicting another entry first when the table is full.
func (b *boundedMap[K, V]) put(k K, v V) {
	_, p := b.lookup(k)
	b.store(k, v, p)
}

// store is put for k at place p, which lookup returned with no change to
// the table since.
func (b *boundedMap[K, V]) store(k K, v V, p place) {
	if p.found {
		b.slots[p.i].v = v
		return
	}
	i := p.i
	if b.n >= b.cap {
		b.evictOne()
		i = -1 // entries moved
	}
	if (b.n+1)*5 > len(b.slots)*4 {
		b.grow()
		i = -1
	}
	if i < 0 {
		i, _ = b.findHashed(k, p.h)
	}
	b.slots[i] = slot[K, V]{k: k, v: v}
	b.meta[i] = fingerprint(p.h)
	b.n++
	b.schedule(k, &b.slots[i].v)
}

func (b *boundedMap[K, V]) grow() {
	size := min(max(64, 2*len(b.slots)), b.maxSlots())
	if size <= len(b.slots) {
		return
	}
	old, oldMeta := b.slots, b.meta
	b.slots = make([]slot[K, V], size)
	b.meta = make([]uint8, size)
	for i := range old {
		if oldMeta[i] != 0 {
			j, _ := b.find(old[i].k)
			b.slots[j], b.meta[j] = old[i], oldMeta[i]
		}
	}
}

// del removes k; it reports whether k was there.
func (b *boundedMap[K, V]) del(k K) bool {
	i, ok := b.find(k)
	if !ok {
		return false
	}
	b.deleteAt(i)
	return true
}

// deleteAt empties slot i, shifting later entries of its probe run back so
// that no lookup ever has to step over a hole.
func (b *boundedMap[K, V]) deleteAt(i int) {
	n := len(b.slots)
	for j := i; ; {
		if j++; j == n {
			j = 0
		}
		if b.meta[j] == 0 {
			break
		}
		// Move slot j into the hole if the hole lies on its probe path.
		h := b.home(b.hash(b.slots[j].k))
		if (j-h+n)%n >= (j-i+n)%n {
			b.slots[i], b.meta[i] = b.slots[j], b.meta[j]
			i = j
		}
	}
	b.slots[i] = slot[K, V]{}
	b.meta[i] = 0
	b.n--
}

func (b *boundedMap[K, V]) next() uint64 {
	b.rnd ^= b.rnd << 13
	b.rnd ^= b.rnd >> 7
	b.rnd ^= b.rnd << 17
	return b.rnd
}

func (b *boundedMap[K, V]) evictOne() {
	if b.n == 0 {
		return
	}
	n := len(b.slots)
	victim := -1
	var oldest stamp
	for range evictSample {
		i := int(b.next() % uint64(n))
		for b.meta[i] == 0 {
			if i++; i == n {
				i = 0
			}
		}
		if l := b.last(&b.slots[i].v); victim < 0 || l < oldest {
			victim, oldest = i, l
		}
	}
	if b.onEvict != nil {
		b.onEvict(b.slots[victim].k, &b.slots[victim].v)
	}
	b.deleteAt(victim)
	b.evicted++
}

// each calls f for every entry, in table order.
func (b *boundedMap[K, V]) each(f func(K, *V)) {
	for i := range b.slots {
		if b.meta[i] != 0 {
			f(b.slots[i].k, &b.slots[i].v)
		}
	}
}

func hashAddrKey(k addrKey) uint64 {
	return mix(binary.LittleEndian.Uint64(k.addr[:8]) ^ mix(binary.LittleEndian.Uint64(k.addr[8:])) ^ uint64(k.jail)<<48)
}

func hashPrefixKey(k prefixKey) uint64 {
	return mix(binary.LittleEndian.Uint64(k.addr[:8]) ^ mix(binary.LittleEndian.Uint64(k.addr[8:])) ^ uint64(k.bits)<<56)
}

func hashHomeKey(k homeKey) uint64 { return hashPrefixKey(k.p) ^ mix(k.user^uint64(k.asn)<<32) }

func hashAddr16(a [16]byte) uint64 {
	return mix(binary.LittleEndian.Uint64(a[:8]) ^ mix(binary.LittleEndian.Uint64(a[8:])))
}

func hashU64(x uint64) uint64 { return mix(x ^ 0x2545f4914f6cdd1d) }

func hashU32(x uint32) uint64 { return mix(uint64(x) ^ 0x2545f4914f6cdd1d) }
