package engine

import (
	"slices"

	"github.com/rampart-dev/rampart/internal/event"
)

// Reconfigure replaces the engine's jails, thresholds, scenario settings and
// allowlist while keeping what it has learnt: failures in progress, ban
// history, known-good clients, active and pending bans, surge state and the
// counters. A configuration reload uses it so that reloading never forgets
// an attack half counted.
//
// Jails are matched by name: a jail kept keeps its failures, even if its
// position in the list changed; the state of a jail that is gone is dropped
// (its failures in progress and its pending bans; its active bans stay, the
// firewall holds them until they end). Pending bans of targets the new
// allowlist covers are dropped; active ones are the caller's to revoke, as
// it must also lift them from the firewall and the store.
//
// cfg is validated as New validates it; on error the engine is unchanged.
// The size of the tables (MaxTracked) is fixed when the engine is made: a
// changed MaxTracked takes effect at the next start.
func (e *Engine) Reconfigure(cfg Config) error {
	cfg.MaxTracked = e.cfg.MaxTracked
	n, err := New(cfg)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// remap[i] is old jail i's index in the new list, or -1.
	remap := make([]int, len(e.jails))
	same := len(e.jails) == len(n.jails)
	for i, j := range e.jails {
		ni, ok := n.byName[j.Name]
		if !ok {
			ni = -1
		}
		remap[i] = ni
		same = same && ni == i
	}
	if !same {
		e.tracked = rekey(e.tracked, func(k addrKey) (addrKey, bool) {
			if int(k.jail) >= len(remap) || remap[k.jail] < 0 {
				return k, false
			}
			k.jail = uint16(remap[k.jail])
			return k, true
		})
		e.goodFails = rekey(e.goodFails, func(k goodFailKey) (goodFailKey, bool) {
			if int(k.jail) >= len(remap) || remap[k.jail] < 0 {
				return k, false
			}
			k.jail = uint16(remap[k.jail])
			return k, true
		})
	}
	e.cfg, e.log = n.cfg, n.log
	for i, j := range e.jails {
		if ni := remap[i]; ni >= 0 {
			n.jails[ni].failed, n.jails[ni].banned = j.failed, j.banned
		}
	}
	e.jails, e.byName, e.byService = n.jails, n.byName, n.byService
	e.internJailPorts()
	e.setKeep()
	if !slices.Equal(e.bits.carve4, n.bits.carve4) || !slices.Equal(e.bits.carve6, n.bits.carve6) {
		e.bits = n.bits
		e.recountGood()
	}
	e.dropPending(func(b pendingBan) bool {
		if _, kept := n.byName[b.jail]; b.jail != "" && !kept {
			return true
		}
		return e.cfg.Allow != nil && e.cfg.Allow.Overlaps(b.target)
	})
	return nil
}

// rekey rebuilds a table with every key mapped by f, leaving out the keys f
// rejects. The table keeps its cap, hash and eviction counts.
func rekey[K comparable, V any](b *boundedMap[K, V], f func(K) (K, bool)) *boundedMap[K, V] {
	nb := newBoundedMap[K](b.cap, b.hash, b.last)
	nb.onEvict, nb.evicted, nb.rnd = b.onEvict, b.evicted, b.rnd
	if b.wheel != nil {
		nb.expiring(b.wheel.width*(wheelSize-1), b.due)
	}
	b.each(func(k K, v *V) {
		if nk, ok := f(k); ok {
			nb.put(nk, *v)
		}
	})
	return nb
}

// dropPending cancels the pending bans drop selects; their heap entries are
// skipped when popped, as cancelPending's are.
func (e *Engine) dropPending(drop func(pendingBan) bool) {
	p := &e.pending
	p.live(func(b pendingBan) {
		if drop(b) {
			p.by.del(keyOfPrefix(b.target))
		}
	})
}

// DropAllowlisted removes the active decisions the allowlist covers and
// returns them, for the caller to lift from the firewall and the store after
// the allowlist grew (see Reconfigure).
func (e *Engine) DropAllowlisted() []event.Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cfg.Allow == nil {
		return nil
	}
	var out []event.Decision
	var drop []activeKey
	e.active.each(func(k activeKey, b *activeBan) {
		if e.cfg.Allow.Overlaps(k.prefix()) {
			out = append(out, e.decisionOf(k, *b))
			drop = append(drop, k)
		}
	})
	for _, k := range drop {
		e.dropKey(k)
	}
	return out
}
