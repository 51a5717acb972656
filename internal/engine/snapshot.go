package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Snapshots. Bans survive a restart through the store, and so do the
// clients known to be good; what a restart used to forget is everything
// counted on the way to a decision: failures in progress, the slow
// scenario's long window, user names being sprayed, bad addresses per
// prefix and per AS, enumerators, surge state and the bans waiting out
// their grace. An attacker could outwait any restart, and a package
// upgrade reset the defence. Snapshot writes that state; Load reads it
// back into a fresh engine.
//
// The format is the engine's own, versioned: a mismatch makes Load fail
// and the engine starts empty, as it did before snapshots existed. Only
// entries still within their windows are written, and each table at most
// SnapshotMax of them, the most recently active first, so a snapshot is
// bounded whatever the flood. Jails are written by name: a jail renamed or
// removed since loses its counts, like at a reload.
//
// Replaying the log lines read since the snapshot must not count them
// twice: the daemon saves the snapshot with the sources' positions of that
// moment and resumes reading there. A line read again after a crash that
// had already led to a ban finds that ban (restored from the store) and is
// not counted; a ban the engine would make again, for the same target at
// the same second as one in the history, is recognised and not made twice
// (see banLocked).

// SnapshotMax bounds the entries of each table in a snapshot.
const SnapshotMax = 250_000

const (
	snapshotMagic   = "RPTENG"
	snapshotVersion = 2 // 2 adds the users' home networks; 1 is still read
)

// ErrSnapshot is wrapped by Load's errors about the snapshot itself (not
// the engine's version, corrupt, truncated).
var ErrSnapshot = errors.New("engine snapshot unusable")

// Snapshot writes the engine's counting state to w and returns how many
// entries it wrote.
func (e *Engine) Snapshot(w io.Writer) (int, error) {
	return e.snapshot(w, snapshotVersion)
}

// snapshot writes the format of version (the previous one for a test).
func (e *Engine) snapshot(w io.Writer, version uint32) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	sw := &snapWriter{w: w, b: make([]byte, 0, snapChunk+1<<10)}
	sw.str(snapshotMagic)
	sw.u32(version)
	sw.u64(uint64(e.now.Unix()))
	sw.u32(uint32(len(e.jails)))
	for _, j := range e.jails {
		sw.str(j.Name)
	}
	now := toStamp(e.now)
	n := 0
	n += writeTable(sw, e.tracked, now, func(k addrKey, v *ring) stamp { return v.last }, putAddrKey, putRing)
	n += writeTable(sw, e.goodFails, now, func(k goodFailKey, v *ring) stamp { return v.last }, putGoodFailKey, putRing)
	n += writeTable(sw, e.users, now, func(_ uint64, v *distinct[[16]byte]) stamp { return v.last }, (*snapWriter).u64, putDistinct16)
	n += writeTable(sw, e.prefixes, now, func(_ prefixKey, v *distinct[uint32]) stamp { return v.last }, putPrefixKey, putDistinct32)
	n += writeTable(sw, e.wideBans, now, func(_ prefixKey, v *distinct[uint32]) stamp { return v.last }, putPrefixKey, putDistinct32)
	n += writeTable(sw, e.asns, now, func(_ uint32, v *distinct[uint32]) stamp { return v.last }, (*snapWriter).u32, putDistinct32)
	n += writeTable(sw, e.enum, now, func(_ [16]byte, v *ring) stamp { return v.last }, putAddr16, putRing)
	n += writeTable(sw, e.prefixUsers, now, func(_ prefixKey, v *prefixUsers) stamp { return v.last }, putPrefixKey, putPrefixUsers)
	if version >= 2 {
		n += writeTable(sw, e.homes, now, func(_ homeKey, v *stamp) stamp { return *v }, putHomeKey, func(w *snapWriter, v *stamp) { w.u32(uint32(*v)) })
	}
	s := e.surge
	sw.u64(uint64(s.minute))
	sw.u64(uint64(s.count))
	sw.u64(math.Float64bits(s.baseline))
	sw.u32(uint32(s.until))
	sw.bool(s.on)
	// Pending bans, live ones only, in deferral order.
	var live []pendingBan
	e.pending.live(func(b pendingBan) { live = append(live, b) })
	slices.SortFunc(live, func(a, b pendingBan) int { return int(a.seq) - int(b.seq) })
	if len(live) > SnapshotMax {
		live = live[len(live)-SnapshotMax:]
	}
	sw.u32(uint32(len(live)))
	for _, b := range live {
		sw.prefix(b.target)
		sw.u64(uint64(b.due.UnixNano()))
		sw.u64(uint64(b.base))
		sw.str(b.scenario)
		sw.str(b.reason)
		sw.str(b.jail)
		sw.spill()
	}
	n += len(live)
	return n, sw.flush()
}

// Load reads a snapshot into e, which must not have observed anything
// yet (the daemon loads before its sources start). Entries of jails that
// no longer exist are dropped; everything else is merged in as if it had
// been observed. On error e may hold part of the snapshot: the caller
// makes a new engine.
func (e *Engine) Load(r io.Reader) (int, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<31))
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	sr := &snapReader{b: data}
	if m := sr.str(); m != snapshotMagic {
		return 0, fmt.Errorf("%w: not a snapshot", ErrSnapshot)
	}
	v := sr.u32()
	if v != 1 && v != snapshotVersion {
		return 0, fmt.Errorf("%w: version %d, this engine reads 1 and %d", ErrSnapshot, v, snapshotVersion)
	}
	taken := time.Unix(int64(sr.u64()), 0)
	nj := int(sr.u32())
	if nj > math.MaxUint16 {
		return 0, fmt.Errorf("%w: %d jails", ErrSnapshot, nj)
	}
	remap := make([]int, nj) // snapshot jail → this engine's, or -1
	for i := range nj {
		ji, ok := e.byName[sr.str()]
		remap[i] = -1
		if ok {
			remap[i] = ji
		}
	}
	jail := func(j uint16) (uint16, bool) {
		if int(j) >= len(remap) || remap[j] < 0 {
			return 0, false
		}
		return uint16(remap[j]), true
	}
	n := 0
	n += readTable(sr, e.tracked, func(sr *snapReader) (addrKey, bool) {
		k := getAddrKey(sr)
		var ok bool
		k.jail, ok = jail(k.jail)
		return k, ok
	}, getRing)
	n += readTable(sr, e.goodFails, func(sr *snapReader) (goodFailKey, bool) {
		k := getGoodFailKey(sr)
		var ok bool
		k.jail, ok = jail(k.jail)
		return k, ok
	}, getRing)
	n += readTable(sr, e.users, keep((*snapReader).u64), getDistinct16)
	n += readTable(sr, e.prefixes, keep(getPrefixKey), getDistinct32)
	n += readTable(sr, e.wideBans, keep(getPrefixKey), getDistinct32)
	n += readTable(sr, e.asns, keep((*snapReader).u32), getDistinct32)
	n += readTable(sr, e.enum, keep(getAddr16), getRing)
	n += readTable(sr, e.prefixUsers, keep(getPrefixKey), getPrefixUsers)
	if v >= 2 {
		n += readTable(sr, e.homes, keep(getHomeKey), func(r *snapReader) stamp { return stamp(r.u32()) })
	}
	e.surge = surgeState{minute: int64(sr.u64()), count: int(sr.u64()), baseline: math.Float64frombits(sr.u64()), until: stamp(sr.u32()), on: sr.bool()}
	np := int(sr.u32())
	for range np {
		if sr.err != nil {
			break
		}
		target := sr.prefix()
		due := time.Unix(0, int64(sr.u64()))
		base := time.Duration(sr.u64())
		scenario, reason, j := sr.str(), sr.str(), sr.str()
		if _, ok := e.byName[j]; (ok || j == "") && target.IsValid() {
			e.deferAt(target, due, base, scenario, reason, j)
			n++
		}
	}
	if sr.err != nil {
		return n, fmt.Errorf("%w: %v", ErrSnapshot, sr.err)
	}
	if len(sr.b) != 0 {
		return n, fmt.Errorf("%w: %d bytes after the end", ErrSnapshot, len(sr.b))
	}
	if taken.After(e.now) {
		e.now = taken
	}
	return n, nil
}

// keep adapts a key reader that needs no remapping.
func keep[K any](get func(*snapReader) K) func(*snapReader) (K, bool) {
	return func(sr *snapReader) (K, bool) { return get(sr), true }
}

// writeTable writes the entries of b still active at or after the cutoff
// of its wheel (the table's own window: an entry past it would be dropped
// at the next Tick anyway), at most SnapshotMax, the most recent first.
// A table within SnapshotMax is written in slot order as it is walked,
// after a first walk counts it: under a flood the tables hold hundreds of
// thousands of entries, and a copy of them would cost as much memory
// again as the snapshot itself.
func writeTable[K comparable, V any](sw *snapWriter, b *boundedMap[K, V], now stamp, last func(K, *V) stamp, putK func(*snapWriter, K), putV func(*snapWriter, *V)) int {
	fresh := func(k K, v *V) bool {
		if b.due == nil {
			return true
		}
		d := b.due(k, v)
		return d == 0 || d > now
	}
	n := 0
	b.each(func(k K, v *V) {
		if fresh(k, v) {
			n++
		}
	})
	if n <= SnapshotMax {
		sw.u32(uint32(n))
		b.each(func(k K, v *V) {
			if fresh(k, v) {
				putK(sw, k)
				putV(sw, v)
				sw.spill()
			}
		})
		return n
	}
	type entry struct {
		k K
		v *V
		t stamp
	}
	es := make([]entry, 0, n)
	b.each(func(k K, v *V) {
		if fresh(k, v) {
			es = append(es, entry{k, v, last(k, v)})
		}
	})
	slices.SortFunc(es, func(a, b entry) int { return int(b.t) - int(a.t) })
	es = es[:SnapshotMax]
	sw.u32(uint32(len(es)))
	for _, x := range es {
		putK(sw, x.k)
		putV(sw, x.v)
		sw.spill()
	}
	return len(es)
}

// readTable reads entries into b; an entry whose key is rejected is skipped.
func readTable[K comparable, V any](sr *snapReader, b *boundedMap[K, V], getK func(*snapReader) (K, bool), getV func(*snapReader) V) int {
	n := int(sr.u32())
	loaded := 0
	for range n {
		if sr.err != nil {
			return loaded
		}
		k, ok := getK(sr)
		v := getV(sr)
		if ok && sr.err == nil {
			b.put(k, v)
			loaded++
		}
	}
	return loaded
}

// snapWriter appends little-endian fields to a buffer it hands to w in
// chunks of about snapChunk bytes (spill), so a snapshot of any size costs
// one chunk of memory beyond what w keeps; the first error of w is kept
// and ends the writing.
type snapWriter struct {
	w   io.Writer
	b   []byte
	err error
}

const snapChunk = 64 << 10

// spill hands the buffer to w once it holds a chunk; call it between entries.
func (w *snapWriter) spill() {
	if len(w.b) >= snapChunk {
		w.flush()
	}
}

// flush hands what the buffer holds to w and returns w's first error.
func (w *snapWriter) flush() error {
	if w.err == nil && len(w.b) > 0 {
		_, w.err = w.w.Write(w.b)
	}
	w.b = w.b[:0]
	return w.err
}

func (w *snapWriter) u8(x uint8)   { w.b = append(w.b, x) }
func (w *snapWriter) u32(x uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, x) }
func (w *snapWriter) u64(x uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, x) }
func (w *snapWriter) bool(x bool) {
	if x {
		w.u8(1)
	} else {
		w.u8(0)
	}
}
func (w *snapWriter) str(s string) { w.u32(uint32(len(s))); w.b = append(w.b, s...) }
func (w *snapWriter) prefix(p netip.Prefix) {
	a := p.Addr().As16()
	w.b = append(w.b, a[:]...)
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	w.u8(uint8(bits))
}

// snapReader consumes what snapWriter wrote; the first short read sets err
// and every later read returns zero values.
type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) take(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		if r.err == nil {
			r.err = io.ErrUnexpectedEOF
		}
		return nil
	}
	x := r.b[:n]
	r.b = r.b[n:]
	return x
}

func (r *snapReader) u8() uint8 {
	if x := r.take(1); x != nil {
		return x[0]
	}
	return 0
}

func (r *snapReader) u32() uint32 {
	if x := r.take(4); x != nil {
		return binary.LittleEndian.Uint32(x)
	}
	return 0
}

func (r *snapReader) u64() uint64 {
	if x := r.take(8); x != nil {
		return binary.LittleEndian.Uint64(x)
	}
	return 0
}

func (r *snapReader) bool() bool { return r.u8() != 0 }

func (r *snapReader) str() string {
	n := r.u32()
	if n > 1<<16 {
		r.err = errors.New("string too long")
		return ""
	}
	return string(r.take(int(n)))
}

func (r *snapReader) prefix() netip.Prefix {
	var a [16]byte
	copy(a[:], r.take(16))
	return prefixKey{addr: a, bits: r.u8()}.prefix()
}

// Encodings of the tables' keys and values.

func putAddr16(w *snapWriter, a [16]byte) { w.b = append(w.b, a[:]...) }

func getAddr16(r *snapReader) (a [16]byte) {
	copy(a[:], r.take(16))
	return a
}

func putAddrKey(w *snapWriter, k addrKey) { putAddr16(w, k.addr); w.u32(uint32(k.jail)) }
func getAddrKey(r *snapReader) addrKey {
	return addrKey{addr: getAddr16(r), jail: uint16(r.u32())}
}

func putGoodFailKey(w *snapWriter, k goodFailKey) {
	putAddr16(w, k.addr)
	w.u32(uint32(k.jail))
	w.u32(k.user)
}
func getGoodFailKey(r *snapReader) goodFailKey {
	return goodFailKey{addr: getAddr16(r), jail: uint16(r.u32()), user: r.u32()}
}

func putPrefixKey(w *snapWriter, k prefixKey) { putAddr16(w, k.addr); w.u8(k.bits) }
func getPrefixKey(r *snapReader) prefixKey {
	return prefixKey{addr: getAddr16(r), bits: r.u8()}
}

func putRing(w *snapWriter, v *ring) {
	for _, t := range v.times {
		w.u32(uint32(t))
	}
	w.u8(v.n)
	w.u8(v.head)
	w.u8(v.partial)
	w.u32(uint32(v.last))
}

func getRing(r *snapReader) (v ring) {
	for i := range v.times {
		v.times[i] = stamp(r.u32())
	}
	v.n, v.head, v.partial, v.last = min(r.u8(), ringSize), r.u8()%ringSize, r.u8(), stamp(r.u32())
	return v
}

func putDistinct16(w *snapWriter, v *distinct[[16]byte]) {
	for i := range v.ids {
		putAddr16(w, v.ids[i])
		w.u32(uint32(v.times[i]))
	}
	w.u8(v.n)
	w.u32(uint32(v.last))
}

func getDistinct16(r *snapReader) (v distinct[[16]byte]) {
	for i := range v.ids {
		v.ids[i], v.times[i] = getAddr16(r), stamp(r.u32())
	}
	v.n, v.last = min(r.u8(), distinctSize), stamp(r.u32())
	return v
}

func putDistinct32(w *snapWriter, v *distinct[uint32]) {
	for i := range v.ids {
		w.u32(v.ids[i])
		w.u32(uint32(v.times[i]))
	}
	w.u8(v.n)
	w.u32(uint32(v.last))
}

func getDistinct32(r *snapReader) (v distinct[uint32]) {
	for i := range v.ids {
		v.ids[i], v.times[i] = r.u32(), stamp(r.u32())
	}
	v.n, v.last = min(r.u8(), distinctSize), stamp(r.u32())
	return v
}

func putHomeKey(w *snapWriter, k homeKey) {
	putPrefixKey(w, k.p)
	w.u32(k.asn)
	w.u64(k.user)
}

func getHomeKey(r *snapReader) homeKey {
	p := getPrefixKey(r)
	asn := r.u32()
	return homeKey{p: p, asn: asn, user: r.u64()}
}

func putPrefixUsers(w *snapWriter, v *prefixUsers) {
	for _, id := range v.ids {
		w.u64(id)
	}
	w.u8(v.n)
	w.u32(uint32(v.last))
}

func getPrefixUsers(r *snapReader) (v prefixUsers) {
	for i := range v.ids {
		v.ids[i] = r.u64()
	}
	v.n, v.last = min(r.u8(), uint8(len(v.ids))), stamp(r.u32())
	return v
}
