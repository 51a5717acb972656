package engine

import (
	"math/rand/v2"
	"testing"
)

// TestBoundedMapAgainstMap drives the table and a Go map with the same
// random operations and checks they agree, through growth, deletions with
// backward shifting, wrap-around and evictions.
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
			case op < 6:
				evicted = evicted[:0]
				b.put(k, stamp(step))
				for _, e := range evicted {
					delete(ref, e)
				}
				ref[k] = stamp(step)
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
		n := b.prune(func(k uint64, v *stamp) bool { return k%2 == 0 })
		for k := range ref {
			if _, ok := b.get(k); ok == (k%2 == 0) {
				t.Fatalf("cap %d: prune kept or dropped %d wrongly (pruned %d)", cap, k, n)
			}
		}
	}
}

func hasKey(m map[uint64]stamp, k uint64) bool { _, ok := m[k]; return ok }
