package engine

import (
	"math"
	"net/netip"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Good clients. Two kinds of evidence make an address good, each for its
// own time:
//
//   - a successful login (known-good, KnownGood.TTL): the address is a
//     person's, and its failures are typos, counted per user;
//   - accepted mail (a delivering relay, Relays.TTL): the address is a mail
//     server that delivers real mail here, and its unknown recipients are
//     bounces of stale or mistyped addresses, which weigh Relays.Factor
//     times less.
//
// Neither kind ever counts towards the cross-address scenarios (spray,
// prefix, AS, surge), and neither is ever caught by a prefix ban: the
// engine issues the prefix ban all the same and carves the good addresses
// out of it. For the kernel to do the same, every address that turns good
// yields an Allow decision (scenario "known-good" or "relay") lasting as
// long as it stays good; the firewall keeps those addresses in an accept
// set checked after the address bans and before the prefix bans, so a good
// address banned for its own failures is still dropped.

// goodEntry remembers what made an address good.
type goodEntry struct {
	users  [4]uint64 // hashes of the users it logged in as (most recent four)
	n      uint8
	relay  bool  // counted in relayPrefixes
	login  stamp // the latest successful login; 0: none
	mail   stamp // the latest accepted mail; 0: none
	carved stamp // the end of the latest carve-out issued (noEnd: none)
	last   stamp // max(login, mail): for eviction
}

// noEnd is the stamp of "never ends".
const noEnd = stamp(math.MaxUint32)

// goodness says what an address is now.
type goodness struct {
	login, relay bool
}

func (g goodness) any() bool { return g.login || g.relay }

// goodAt reports what makes a good at t.
func (e *Engine) goodAt(a netip.Addr, t stamp) goodness {
	g, ok := e.good.get(a.As16())
	if !ok {
		return goodness{}
	}
	return goodness{
		login: g.login > 0 && within(g.login, t, e.cfg.KnownGood.TTL),
		relay: g.mail > 0 && within(g.mail, t, e.cfg.Relays.TTL),
	}
}

// within reports whether at+ttl is still ahead of t; ttl <= 0 never ends.
func within(at, t stamp, ttl time.Duration) bool {
	return ttl <= 0 || at >= t-min(durStamp(ttl), t)
}

func (e *Engine) isGood(a netip.Addr, t stamp) bool { return e.goodAt(a, t).login }

// IsKnownGood reports whether addr logged in successfully recently.
func (e *Engine) IsKnownGood(addr netip.Addr, t time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.isGood(addr.Unmap(), toStamp(t))
}

// IsRelay reports whether addr delivered mail recently.
func (e *Engine) IsRelay(addr netip.Addr, t time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.goodAt(addr.Unmap(), toStamp(t)).relay
}

// goodEntryFor returns a's entry, creating it (and counting it in its
// prefixes) when absent.
func (e *Engine) goodEntryFor(a netip.Addr) goodEntry {
	g, ok := e.good.get(a.As16())
	if !ok {
		e.countPrefixes(e.carvePrefixes, a, e.carveLevels(a), 1)
	}
	return g
}

// rememberGood records a successful login of user from a at t, and returns
// the carve-out to issue, if any.
func (e *Engine) rememberGood(a netip.Addr, user string, t stamp) (event.Decision, bool) {
	g := e.goodEntryFor(a)
	g.login = t
	g.last = max(g.last, t)
	if user != "" {
		id := userID(user)
		found := false
		for i := range int(g.n) {
			found = found || g.users[i] == id
		}
		if !found {
			if int(g.n) < len(g.users) {
				g.users[g.n] = id
				g.n++
			} else {
				copy(g.users[:], g.users[1:])
				g.users[len(g.users)-1] = id
			}
		}
		e.notePrefixUser(a, id, t)
	}
	d, ok := e.carveOut(a, &g, t, "known-good", e.cfg.KnownGood.TTL)
	if ok {
		d.Reason = "logged in"
		if user != "" {
			d.Reason = e.why().s("logged in as ").q(user).String()
		}
	}
	e.good.put(a.As16(), g)
	return d, ok
}

// rememberRelay records mail accepted from a at t, and returns the
// carve-out to issue, if any.
func (e *Engine) rememberRelay(a netip.Addr, t stamp, service string) (event.Decision, bool) {
	if e.cfg.Relays.TTL <= 0 {
		return event.Decision{}, false
	}
	g := e.goodEntryFor(a)
	g.mail = t
	g.last = max(g.last, t)
	if !g.relay {
		g.relay = true
		e.countPrefixes(e.relayPrefixes, a, e.aggBits(a), 1)
	}
	d, ok := e.carveOut(a, &g, t, "relay", e.cfg.Relays.TTL)
	if ok {
		d.Reason = "delivered mail via " + service
	}
	e.good.put(a.As16(), g)
	return d, ok
}

// carveOut returns the Allow decision keeping a reachable inside prefix
// bans until its goodness ends, when that end moved by more than half of
// ttl since the last one issued: one decision per address every few weeks,
// not one per login. The caller writes the decision's reason: only for
// a decision made.
func (e *Engine) carveOut(a netip.Addr, g *goodEntry, t stamp, scenario string, ttl time.Duration) (event.Decision, bool) {
	end := e.goodUntil(g)
	if g.carved > t && (g.carved == noEnd || uint64(end) < uint64(g.carved)+uint64(durStamp(ttl/2))) {
		return event.Decision{}, false // the one in force lasts long enough
	}
	g.carved = end
	e.stats.CarveOuts++
	d := event.Decision{Target: event.AddrPrefix(a), Action: event.Allow, Start: t.Time(), Scenario: scenario, Origin: "local"}
	if end != noEnd {
		d.Duration = time.Duration(end-t) * time.Second
	}
	return d, true
}

// goodUntil returns when g stops being good: the later of its login's and
// its mail's ends.
func (e *Engine) goodUntil(g *goodEntry) stamp {
	end := stamp(0)
	for _, p := range []struct {
		at  stamp
		ttl time.Duration
	}{{g.login, e.cfg.KnownGood.TTL}, {g.mail, e.cfg.Relays.TTL}} {
		if p.at == 0 {
			continue
		}
		if p.ttl <= 0 {
			return noEnd
		}
		end = max(end, stamp(min(uint64(p.at)+uint64(durStamp(p.ttl)), uint64(noEnd-1))))
	}
	return end
}

// restoreGood marks a's carve-out as already issued: the daemon restores
// the kernel's carve-outs itself after a restart.
func (e *Engine) restoreGood(a netip.Addr) {
	k := a.As16()
	if g, ok := e.good.get(k); ok {
		g.carved = e.goodUntil(&g)
		e.good.put(k, g)
	}
}

// forgetGood is called when a good entry leaves the table.
func (e *Engine) forgetGood(k [16]byte, g *goodEntry) {
	a := netip.AddrFrom16(k).Unmap()
	e.countPrefixes(e.carvePrefixes, a, e.carveLevels(a), -1)
	if g.relay {
		e.countPrefixes(e.relayPrefixes, a, e.aggBits(a), -1)
	}
}

// recountGood rebuilds the per-prefix counts of good addresses, after
// the prefix levels changed.
func (e *Engine) recountGood() {
	clear(e.carvePrefixes)
	clear(e.relayPrefixes)
	e.good.each(func(k [16]byte, g *goodEntry) {
		a := netip.AddrFrom16(k).Unmap()
		e.countPrefixes(e.carvePrefixes, a, e.carveLevels(a), 1)
		if g.relay {
			e.countPrefixes(e.relayPrefixes, a, e.aggBits(a), 1)
		}
	})
}

// countPrefixes adds delta to m for the prefixes of a at each level.
func (e *Engine) countPrefixes(m map[prefixKey]uint32, a netip.Addr, bits []int, delta int) {
	for _, b := range bits {
		pk := keyOfPrefix(prefixOf(a, b))
		switch n := int(m[pk]) + delta; {
		case n <= 0:
			delete(m, pk)
		default:
			m[pk] = uint32(n)
		}
	}
}

// aggBits are the aggregation levels' prefix lengths for a's family.
func (e *Engine) aggBits(a netip.Addr) []int {
	if a.Is4() {
		return e.bits.agg4
	}
	return e.bits.agg6
}

// carveLevels are the prefix lengths a scenario's ban can have: the
// aggregation levels and the widened one.
func (e *Engine) carveLevels(a netip.Addr) []int {
	if a.Is4() {
		return e.bits.carve4
	}
	return e.bits.carve6
}

// carvedIn returns how many good addresses lie in p (a prefix at one of
// the carve levels).
func (e *Engine) carvedIn(p netip.Prefix) int { return int(e.carvePrefixes[keyOfPrefix(p)]) }

// inMailPool reports whether the aggregation prefix of a holds a
// delivering relay: a provider's pool of outgoing mail servers, whose
// other addresses' unknown recipients are bounces too.
func (e *Engine) inMailPool(a netip.Addr) bool {
	for _, bits := range e.aggBits(a) {
		if e.relayPrefixes[keyOfPrefix(prefixOf(a, bits))] > 0 {
			return true
		}
	}
	return false
}

// prefixUsers remembers which users logged in from an aggregation prefix.
type prefixUsers struct {
	ids  [8]uint64
	n    uint8
	last stamp
}

func (p *prefixUsers) add(id uint64, t stamp) {
	p.last = t
	for i := range int(p.n) {
		if p.ids[i] == id {
			return
		}
	}
	if int(p.n) < len(p.ids) {
		p.ids[p.n] = id
		p.n++
		return
	}
	copy(p.ids[:], p.ids[1:])
	p.ids[len(p.ids)-1] = id
}

func (p *prefixUsers) has(id uint64) bool {
	for i := range int(p.n) {
		if p.ids[i] == id {
			return true
		}
	}
	return false
}

func (e *Engine) notePrefixUser(a netip.Addr, id uint64, t stamp) {
	for _, bits := range e.aggBits(a) {
		pk := keyOfPrefix(prefixOf(a, bits))
		pu, pos := e.prefixUsers.lookup(pk)
		pu.add(id, t)
		e.prefixUsers.store(pk, pu, pos)
	}
	e.homes.put(homeKey{p: keyOfPrefix(prefixOf(a, homeBits(a))), user: id}, t)
	if asn := e.asnOf(a); asn != 0 {
		e.homes.put(homeKey{asn: asn, user: id}, t)
	}
}

// homeKey is a user and a network it logged in from: one at homeBits, and
// its autonomous system when an ASN database is configured (a carrier
// whose IPv4 pool spans several /16s). A table of its own, since a
// carrier's network holds many more users than an aggregation prefix's
// prefixUsers keeps.
type homeKey struct {
	p    prefixKey // zero for an autonomous system
	asn  uint32    // zero for a network
	user uint64
}

// asnOf returns a's autonomous system, 0 when unknown or no ASN database
// is configured.
func (e *Engine) asnOf(a netip.Addr) uint32 {
	if l := e.cfg.ASNs.Lookup; l != nil {
		if asn, _, ok := l.ASN(a); ok {
			return asn
		}
	}
	return 0
}

// homeBits is the prefix length of the widest network a person's own
// devices move around in: an IPv4 /16 (a provider's DHCP or carrier-grade
// NAT pool) or an IPv6 /32 (a mobile carrier gives each connection a new
// /64 anywhere in its allocation).
func homeBits(a netip.Addr) int {
	if a.Is4() {
		return 16
	}
	return 32
}

// ownNetwork reports whether user has logged in recently from the
// aggregation prefix of a: a failure for that user from a new address of
// the same network (a phone's next privacy address, a webmail provider's
// other egress, a DHCP lease that changed) is that person's typo, not a
// sign that the network attacks.
func (e *Engine) ownNetwork(a netip.Addr, user string, t stamp) bool {
	if user == "" {
		return false
	}
	var id uint64 // the user's, once a prefix of a has logins
	for _, bits := range e.aggBits(a) {
		pu, ok := e.prefixUsers.get(keyOfPrefix(prefixOf(a, bits)))
		if !ok || !within(pu.last, t, e.cfg.KnownGood.TTL) {
			continue
		}
		if id == 0 {
			id = userID(normUser(user))
		}
		if pu.has(id) {
			return true
		}
	}
	return false
}

// homeNetwork reports whether the user id has logged in recently from a's
// network at homeBits or from its autonomous system (see homeKey): wider
// than ownNetwork, for the one place where a person's next address must
// not count as a stranger's (a sprayed user name's check before the
// password, see Assess), and never to spare an address from a ban.
func (e *Engine) homeNetwork(a netip.Addr, id uint64, t stamp) bool {
	in := func(k homeKey) bool {
		last, ok := e.homes.get(k)
		return ok && within(last, t, e.cfg.KnownGood.TTL)
	}
	if in(homeKey{p: keyOfPrefix(prefixOf(a, homeBits(a))), user: id}) {
		return true
	}
	asn := e.asnOf(a)
	return asn != 0 && in(homeKey{asn: asn, user: id})
}

func userID(u string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(u); i++ {
		c := u[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		h = (h ^ uint64(c)) * 1099511628211
	}
	return mix(h)
}
