package engine

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestBoundedMapAgainstMap drives the table and a Go map with the same
// random operations and checks they agree, through growth, deletions with
// backward shifting, wrap-around and evictions, and read-modify-writes
// whose store may evict or grow the table.
func TestBoundedMapAgainstMap(t *testing.T) {
	for _, cap := range []int{1, 7, 100, 5000} {
		b := newBoundedMap[uint64](cap, func(k uint64) uint64 { return hashU64(k % 64) }, func(v *stamp) stamp { return *v }) // many collisions
		var evicted []uint64
		b.onEvict = func(k uint64, _ *stamp) { evicted = append(evicted, k) }
		ref := map[uint64]stamp{}
		r := rand.New(rand.NewPCG(1, uint64(cap)))
		for step := range 50_000 {
			k := uint64(r.IntN(3 * cap))
			switch op := r.IntN(10); {
			case op < 5:
				evicted = evicted[:0]
				b.put(k, stamp(step))
				for _, e := range evicted {
					delete(ref, e)
				}
				ref[k] = stamp(step)
			case op < 6:
				// A read-modify-write through lookup and store.
				evicted = evicted[:0]
				v, at := b.lookup(k)
				if w, ok := ref[k]; at.found != ok || v != w {
					t.Fatalf("cap %d step %d: lookup(%d) = %v %v, want %v %v", cap, step, k, v, at.found, w, ok)
				}
				b.store(k, v+stamp(step), at)
				for _, e := range evicted {
					delete(ref, e)
				}
				ref[k] += stamp(step)
			case op < 9:
				if got, want := b.del(k), ref[k] != 0 || hasKey(ref, k); got != want {
					t.Fatalf("cap %d step %d: del(%d) = %v, want %v", cap, step, k, got, want)
				}
				delete(ref, k)
			default:
				v, ok := b.get(k)
				w, wok := ref[k]
				if ok != wok || v != w {
					t.Fatalf("cap %d step %d: get(%d) = %v %v, want %v %v", cap, step, k, v, ok, w, wok)
				}
			}
			if b.len() != len(ref) || b.len() > cap {
				t.Fatalf("cap %d step %d: len %d, reference %d", cap, step, b.len(), len(ref))
			}
		}
		for k, w := range ref {
			if v, ok := b.get(k); !ok || v != w {
				t.Fatalf("cap %d: lost %d", cap, k)
			}
		}
	}
}

// TestExpiry drives a table with expiry and a Go map with the same random
// puts, refreshes and deletions at an advancing clock, and checks after
// every expire that exactly the entries due by then are gone (the wheel's
// buckets are one second wide here: horizon < wheelSize), with onEvict
// called once for each, and that dead keys never pile up in the wheel.
func TestExpiry(t *testing.T) {
	const horizon = 200
	b := newBoundedMap[uint64](5000, hashU64, func(v *stamp) stamp { return *v })
	b.expiring(horizon, func(_ uint64, v *stamp) stamp { return *v + horizon/2 })
	gone := map[uint64]int{}
	b.onEvict = func(k uint64, _ *stamp) { gone[k]++ }
	ref := map[uint64]stamp{}
	r := rand.New(rand.NewPCG(2, 3))
	now := stamp(1_000_000)
	for step := range 200_000 {
		k := uint64(r.IntN(20_000))
		switch op := r.IntN(10); {
		case op < 7: // a new entry or a refresh, at a time up to 30s back
			v := now - stamp(r.IntN(30))
			if old, ok := ref[k]; ok && old > v {
				v = old
			}
			b.put(k, v)
			ref[k] = v
		case op < 8:
			b.del(k)
			delete(ref, k)
		default:
			now += stamp(r.IntN(20))
			clear(gone)
			n := b.expire(now)
			for k, v := range ref {
				if v+horizon/2 <= now {
					if gone[k] != 1 {
						t.Fatalf("step %d: %d due at %d not expired at %d (onEvict %d times)", step, k, v+horizon/2, now, gone[k])
					}
					delete(ref, k)
				}
			}
			if n != len(gone) || b.len() != len(ref) {
				t.Fatalf("step %d: expired %d, onEvict %d, len %d, want %d", step, n, len(gone), b.len(), len(ref))
			}
		}
		if b.wheel.queued > 2*b.len()+max(4096, len(b.slots)/4)+1 {
			t.Fatalf("step %d: %d keys queued for %d entries", step, b.wheel.queued, b.len())
		}
	}
	// A clock jump past the whole horizon expires everything at once.
	now += 10 * horizon
	b.expire(now)
	if b.len() != 0 {
		t.Fatalf("%d entries left after the horizon", b.len())
	}
}

func hasKey(m map[uint64]stamp, k uint64) bool { _, ok := m[k]; return ok }

// The pending heap pops in (due, seq) order whatever the order of pushes.
func TestPendingHeapOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var h pendingBans
	most := 0
	for i := range 2000 {
		h.push(pendingBan{due: t0.Add(time.Duration(r.IntN(300)) * time.Second), seq: uint64(i)})
		most = max(most, len(h.heap))
		if r.IntN(3) == 0 {
			h.pop()
		}
	}
	if len(h.bans) != most {
		t.Errorf("%d slots for at most %d pending bans at once: popped slots are not reused", len(h.bans), most)
	}
	prev := h.pop()
	for len(h.heap) > 0 {
		b := h.pop()
		if b.due.Before(prev.due) || b.due.Equal(prev.due) && b.seq < prev.seq {
			t.Fatalf("popped %v/%d after %v/%d", b.due, b.seq, prev.due, prev.seq)
		}
		prev = b
	}
}

// TestStampBefore: stampBefore agrees with toStamp(t.Add(-d)) for times
// with and without a monotonic reading, in several zones, before 2000 and
// past the last stamp, and windows of whole seconds, fractions, zero,
// negative and of years.
func TestStampBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	zones := []*time.Location{time.UTC, time.FixedZone("x", -5*3600-1800), time.FixedZone("y", 13*3600)}
	times := []time.Time{time.Now(), time.Unix(int64(stampBase), 0), time.Unix(int64(stampBase)-1, 999_999_999),
		time.Unix(int64(stampBase)+1<<32-1, 0), time.Unix(int64(stampBase)+1<<32, 5)}
	for range 2000 {
		times = append(times, time.Unix(int64(stampBase)+rng.Int64N(1<<33)-1<<31, rng.Int64N(1_000_000_000)).In(zones[rng.IntN(len(zones))]))
	}
	durs := []time.Duration{0, time.Second, -time.Second, time.Nanosecond, -time.Nanosecond, 10 * time.Minute, 999_999_999, -999_999_999, 24 * 365 * 10 * time.Hour}
	for range 200 {
		durs = append(durs, time.Duration(rng.Int64N(int64(20*365*24*time.Hour)))-10*365*24*time.Hour, time.Duration(rng.IntN(86400))*time.Second)
	}
	for _, tm := range times {
		for _, d := range durs {
			if got, want := stampBefore(tm, d), toStamp(tm.Add(-d)); got != want {
				t.Fatalf("stampBefore(%v, %v) = %d, toStamp(Add) = %d", tm, d, got, want)
			}
		}
	}
}
