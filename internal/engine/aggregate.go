package engine

import (
	"bytes"
	"net/netip"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// The scenarios in this file look across addresses, to stop attackers who
// rotate to a fresh address as soon as a per-address limit is hit. None of
// them ever acts on an allowlisted or known-good address.

// aggregate feeds the cross-address scenarios with a failure of a
// non-known-good address and appends to out the bans they decide.
func (e *Engine) aggregate(out []event.Decision, ev event.Event, addr netip.Addr, j *jailState, t stamp, as *asOf) []event.Decision {
	id := addrID(addr)
	if sp := &e.cfg.Spray; sp.Addresses > 0 && ev.User != "" {
		uid := userID(normUser(ev.User))
		d, pos := e.users.lookup(uid)
		since := t - durStamp(sp.Window)
		hot := min(sp.Addresses, distinctSize)
		wasHot := d.count(since) >= hot
		a16 := addr.As16()
		d.add(a16, t)
		e.users.store(uid, d, pos)
		if n := d.count(since); n >= hot {
			bt := longer(sp.BanTime, j.BanTime)
			if target := event.AddrPrefix(addr); !e.isPending(target) {
				reason := e.why().s("user ").q(ev.User).s(" failed from ").n(n).s(" addresses within ").d(sp.Window).s(" (last: ").kind(ev.Kind).s(" via ").s(ev.Service).s(")").String()
				e.deferBan(target, ev.Time, bt, "user-spray", reason, j.Name)
			}
			if !wasHot {
				e.banEarlierSprayers(&d, a16, since, ev, n, bt, j.Name)
			}
		} else if origin, ok := e.peerHot(uid, t); ok {
			if target := event.AddrPrefix(addr); !e.isPending(target) {
				reason := e.why().s("user ").q(ev.User).s(" is sprayed across the fleet (flagged by ").s(origin).s("; ").kind(ev.Kind).s(" via ").s(ev.Service).s(")").String()
				e.deferBan(target, ev.Time, longer(sp.BanTime, j.BanTime), "user-spray", reason, j.Name)
			}
		}
	}
	pc := &e.cfg.Prefixes
	for _, lv := range e.levels(addr) {
		p := prefixOf(addr, lv.Bits)
		pk := keyOfPrefix(p)
		d, pos := e.prefixes.lookup(pk)
		d.add(id, t)
		e.prefixes.store(pk, d, pos)
		n := d.count(t - durStamp(pc.Window))
		if n < min(lv.Addresses, distinctSize) || !e.canBanPrefix(p) {
			continue
		}
		// An expired ban still in the table (Tick prunes it later) does
		// not count: replay ticks once a minute, the daemon every second,
		// and both must decide alike.
		if e.activeAt(p, ev.Time) {
			continue
		}
		reason := e.why().n(n).s(" bad addresses in ").pfx(p).s(" within ").d(pc.Window).s(" (last: ").addr(addr).s(" ").kind(ev.Kind).user(ev.User).s(" via ").s(ev.Service).s(")").carved(e.carvedIn(p)).String()
		bt := pc.BanTime
		if bt <= 0 {
			bt = j.BanTime
		}
		// The prefix ban covers the address: drop its pending ban.
		e.cancelPending(addr)
		out = e.banLocked(out, p, ev.Time, bt, "prefix", reason, j.Name)
		out = append(out, e.widenAfter(p, ev.Time, j)...)
		break
	}
	if ac := &e.cfg.ASNs; ac.Lookup != nil && ac.Addresses > 0 {
		if asn, _, ok := as.lookup(ac.Lookup, addr); ok {
			d, pos := e.asns.lookup(asn)
			d.add(id, t)
			e.asns.store(asn, d, pos)
		}
	}
	return out
}

// banEarlierSprayers is called when a user name turns hot: the addresses
// that failed for it within the window before are the same botnet, and are
// banned too, after the same grace, unless they have logged in since (or do
// within the grace). self is the address that made it hot.
func (e *Engine) banEarlierSprayers(d *distinct[[16]byte], self [16]byte, since stamp, ev event.Event, n int, bt time.Duration, jail string) {
	t := toStamp(ev.Time)
	why := "" // written at the first ban
	// In the order they failed (then by address), whatever slots the
	// members happen to sit in, so that the bans come out in an order that
	// depends on the log alone.
	var order [distinctSize]int
	for i := range int(d.n) {
		j := i
		for ; j > 0 && (d.times[order[j-1]] > d.times[i] || d.times[order[j-1]] == d.times[i] && bytes.Compare(d.ids[order[j-1]][:], d.ids[i][:]) > 0); j-- {
			order[j] = order[j-1]
		}
		order[j] = i
	}
	for _, i := range order[:d.n] {
		if d.times[i] < since || d.ids[i] == self {
			continue
		}
		a := netip.AddrFrom16(d.ids[i]).Unmap()
		if e.goodAt(a, t).any() || (e.cfg.Allow != nil && e.cfg.Allow.Contains(a)) {
			continue
		}
		if e.bannedFor(a, e.jailIndex(jail), ev.Time) {
			continue
		}
		target := event.AddrPrefix(a)
		if e.isPending(target) {
			continue
		}
		if why == "" {
			why = e.why().s("failed for user ").q(ev.User).s(", which then failed from ").n(n).s(" addresses within ").d(e.cfg.Spray.Window).String()
		}
		e.deferBan(target, ev.Time, bt, "user-spray", why, jail)
	}
}

// canBanPrefix reports whether p holds no allowlisted address. Good
// addresses do not stop a prefix ban: they are carved out of it.
func (e *Engine) canBanPrefix(p netip.Prefix) bool {
	return e.cfg.Allow == nil || !e.cfg.Allow.Overlaps(p)
}

// widenAfter records the ban of p inside its widening prefix and bans that
// prefix when it now holds enough banned ones.
func (e *Engine) widenAfter(p netip.Prefix, at time.Time, j *jailState) []event.Decision {
	w := e.widen(p.Addr())
	if w.Bits == 0 {
		return nil
	}
	wp := prefixOf(p.Addr(), w.Bits)
	wk := keyOfPrefix(wp)
	t := toStamp(at)
	d, pos := e.wideBans.lookup(wk)
	d.add(addrID(p.Addr()), t)
	e.wideBans.store(wk, d, pos)
	n := d.count(t - durStamp(e.cfg.Prefixes.Window))
	if n < min(w.Prefixes, distinctSize) || !e.canBanPrefix(wp) {
		return nil
	}
	if e.activeAt(wp, at) {
		return nil
	}
	reason := e.why().n(n).s(" prefixes banned in ").pfx(wp).s(" within ").d(e.cfg.Prefixes.Window).s(" (last: ").pfx(p).s(")").carved(e.carvedIn(wp)).String()
	bt := w.BanTime
	if bt <= 0 {
		bt = j.BanTime
	}
	return e.banLocked(nil, wp, at, bt, "prefix-wide", reason, j.Name)
}

// prefixKey identifies a prefix of a given length.
type prefixKey struct {
	addr [16]byte
	bits uint8
}

func prefixOf(a netip.Addr, bits int) netip.Prefix {
	p, _ := a.Prefix(bits)
	return p
}

func keyOfPrefix(p netip.Prefix) prefixKey {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	return prefixKey{addr: p.Addr().As16(), bits: uint8(bits)}
}

func (e *Engine) levels(a netip.Addr) []Level {
	if a.Is4() {
		return e.cfg.Prefixes.V4
	}
	return e.cfg.Prefixes.V6
}

func (e *Engine) widen(a netip.Addr) Widen {
	if a.Is4() {
		return e.cfg.Prefixes.Widen4
	}
	return e.cfg.Prefixes.Widen6
}

// asOf is an address's autonomous system, read at most once for an event:
// the AS aggregation and the suspect-AS threshold both need it, and each
// lookup reads the database.
type asOf struct {
	asn    uint32
	org    string
	ok     bool
	looked bool
}

// lookup returns addr's AS through l, read the first time only.
func (a *asOf) lookup(l ASNLookup, addr netip.Addr) (uint32, string, bool) {
	if !a.looked {
		a.asn, a.org, a.ok = l.ASN(addr)
		a.looked = true
	}
	return a.asn, a.org, a.ok
}
