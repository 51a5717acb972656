package engine

import (
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Observe takes one event and returns the decisions it triggers: usually
// none; a ban of the event's address when a threshold is crossed; a ban of
// its prefix when the prefix holds enough bad addresses; an Allow decision
// (a carve-out, see good.go) when a login or accepted mail makes the
// address good. Events without a time are dated at the latest time seen.
// Decisions returned are already recorded; the caller enforces and
// persists them.
//
// Order of the checks (each stops the event when it decides):
//  1. no jail or no address: ignored; an address that must never be banned
//     (event.NeverBan): ignored;
//  2. allowlisted address: never counted, never banned;
//  3. a successful login or accepted mail: the address becomes good;
//  4. already banned (the address, or a prefix holding it unless the
//     address is good and so carved out, or the address on the jail's
//     ports): not counted again;
//  5. a delivering relay's unknown recipient: counted against the relay
//     alone, at a fraction of its weight;
//  6. a known-good address: counted per user (countGood); a relay's other
//     failures: counted per address at the jail's threshold;
//  7. cross-address scenarios (user spray, prefix aggregation and
//     widening, AS aggregation, surge), except for a failure that is a
//     person's typo in a network it logs in from (ownNetwork) or a bounce
//     from a provider's mail pool (inMailPool);
//  8. per-address counting, with thresholds tightened by surge mode,
//     suspect prefixes and suspect ASes, and the long low-and-slow window.
func (e *Engine) Observe(ev event.Event) []event.Decision {
	return e.ObserveAppend(nil, ev)
}

// ObserveAppend is Observe appending the decisions to out: a caller that
// is done with them before its next call (replay) reuses one slice rather
// than receive a new one for each decision.
func (e *Engine) ObserveAppend(out []event.Decision, ev event.Event) []event.Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.Events++
	if ev.Time.IsZero() {
		ev.Time = e.now
	} else if ev.Time.After(e.now) {
		e.now = ev.Time
	}
	ji, ok := e.jailFor(ev)
	if !ok || !ev.Addr.IsValid() {
		e.stats.Ignored++
		return out
	}
	addr := ev.Addr.Unmap()
	if e.neverBanAddr(addr) {
		e.stats.Ignored++
		return out
	}
	if e.cfg.Allow != nil && e.cfg.Allow.Contains(addr) {
		e.stats.Allowlisted++
		return out
	}
	t := toStamp(ev.Time)
	out = e.flushPending(out, ev.Time)
	switch {
	case ev.Kind == event.AuthSuccess:
		e.stats.Successes++
		d, carve := e.rememberGood(addr, normUser(ev.User), t)
		e.forgive(addr)
		if carve {
			out = append(out, d)
		}
		return out
	case ev.Kind == event.MailAccepted:
		e.stats.Deliveries++
		if d, carve := e.rememberRelay(addr, t, ev.Service); carve {
			out = append(out, d)
		}
		return out
	case !ev.Kind.Failure():
		return out
	}
	e.jails[ji].failed++
	if e.bannedFor(addr, ji, ev.Time) {
		e.stats.WhileBanned++
		return out
	}
	j := &e.jails[ji]
	weight := 1
	if w, set := j.Weights[ev.Kind]; set {
		weight = w
	}
	if weight <= 0 {
		e.stats.Ignored++
		return out
	}
	g := e.goodAt(addr, t)
	if ev.Kind == event.RecipientUnknown {
		if g.relay {
			return append(out, e.countRelayBounce(ev, addr, ji, t)...)
		}
		e.noteEnumeration(addr, t)
	}
	if g.login {
		return append(out, e.countGood(ev, addr, ji, weight, t)...)
	}
	cross := !g.relay && !e.ownNetwork(addr, ev.User, t) && !(ev.Kind == event.RecipientUnknown && e.inMailPool(addr))
	surge := false
	var as asOf // the address's AS, looked up once for the scenarios that need it
	if cross {
		surge = e.observeSurge(t)
		n := len(out)
		if out = e.aggregate(out, ev, addr, j, t, &as); len(out) > n {
			return out
		}
	}

	k := keyOf(addr, ji)
	r, pos := e.tracked.lookup(k)
	r.add(t, weight, j.per)
	since := stampBefore(ev.Time, j.FindTime)
	n := r.count(since, j.per)
	if n >= j.MaxRetry {
		e.tracked.del(k)
		e.cancelPending(addr)
		reason := e.why().n(n).s(" failures within ").d(j.FindTime).last(ev).String()
		return e.banLocked(out, event.AddrPrefix(addr), ev.Time, j.BanTime, "ip-failures", reason, j.Name)
	}
	if sl := &e.cfg.Slow; sl.Failures > 0 && sl.Window > j.FindTime {
		if n := r.count(stampBefore(ev.Time, sl.Window), j.per); n >= sl.Failures {
			e.tracked.del(k)
			e.cancelPending(addr)
			reason := e.why().n(n).s(" failures within ").d(sl.Window).s(", spread out").last(ev).String()
			return e.banLocked(out, event.AddrPrefix(addr), ev.Time, longer(sl.BanTime, j.BanTime), "slow", reason, j.Name)
		}
	}
	e.tracked.store(k, r, pos)
	if !cross {
		return out
	}
	// Tightened thresholds: a lower bar, so the ban waits out the grace
	// period in case the address logs in (a person who mistyped).
	lim, scenario, bt := 0, "", j.BanTime
	if surge && e.cfg.Surge.MaxRetry > 0 {
		lim, scenario = e.cfg.Surge.MaxRetry, "surge"
	}
	sus := e.suspect(addr, t, &as)
	if sus.limit > 0 && (lim == 0 || sus.limit < lim) {
		lim, scenario = sus.limit, sus.scenario
		if scenario == "prefix-suspect" {
			bt = longer(e.cfg.Prefixes.BanTime, j.BanTime)
		}
		if sus.slow {
			bt = longer(e.cfg.Slow.BanTime, j.BanTime)
		}
	}
	if target := event.AddrPrefix(addr); lim > 0 && n >= lim && !e.isPending(target) {
		r := e.why().n(n).s(" failures within ").d(j.FindTime).s(", ")
		if scenario == "surge" {
			r.s("surge mode")
		} else {
			r.suspicion(sus)
		}
		e.deferBan(target, ev.Time, bt, scenario, r.last(ev).String(), j.Name)
	}
	return out
}

// longer returns a when it is set and longer than b, else b; a Permanent
// ban time is the longest.
func longer(a, b time.Duration) time.Duration {
	if a < 0 || b < 0 {
		return Permanent
	}
	if a > b {
		return a
	}
	return b
}

// countGood counts a failure of a known-good address. Its tolerance is per
// user: several people behind one NAT address each get the jail's
// maxretry for their own account, so their typos never add up to a ban.
// Heavy use from it (KnownGood.Factor times maxretry over all users) still
// bans, in case the address turned hostile.
func (e *Engine) countGood(ev event.Event, addr netip.Addr, ji int, weight int, t stamp) []event.Decision {
	j := &e.jails[ji]
	since := stampBefore(ev.Time, j.FindTime)
	gk := goodFailKey{addr: addr.As16(), jail: uint16(ji), user: uint32(userID(normUser(ev.User)))}
	gr := e.goodFails.slot(gk)
	gr.add(t, weight, j.per)
	k := keyOf(addr, ji)
	r := e.tracked.slot(k)
	r.add(t, weight, j.per)
	factor := max(e.cfg.KnownGood.Factor, 1)
	if n := gr.count(since, j.per); n >= j.MaxRetry {
		e.goodFails.del(gk)
		e.tracked.put(k, r)
		reason := e.why().n(n).s(" failures within ").d(j.FindTime).s(" for ").q(ev.User).s(" from a known-good client (via ").s(ev.Service).s(")").String()
		return e.banLocked(nil, event.AddrPrefix(addr), ev.Time, j.BanTime, "ip-failures", reason, j.Name)
	}
	if n := r.count(since, j.per); n >= factor*j.MaxRetry {
		e.tracked.del(k)
		e.goodFails.put(gk, gr)
		reason := e.why().n(n).s(" failures within ").d(j.FindTime).s(" over several users from a known-good client").last(ev).String()
		return e.banLocked(nil, event.AddrPrefix(addr), ev.Time, j.BanTime, "ip-failures", reason, j.Name)
	}
	e.goodFails.put(gk, gr)
	e.tracked.put(k, r)
	return nil
}

// countRelayBounce counts an unknown recipient of a delivering relay: a
// bounce of a stale or mistyped address, which weighs Relays.Factor times
// less than another client's. A relay that turns into an enumerator is
// still banned, by its own count. Relays are never flagged as enumerating:
// blinding would defer the real mail they carry.
func (e *Engine) countRelayBounce(ev event.Event, addr netip.Addr, ji int, t stamp) []event.Decision {
	j := &e.jails[ji]
	lim := max(e.cfg.Relays.Factor, 1) * j.MaxRetry
	per := (lim + ringSize - 1) / ringSize
	gk := goodFailKey{addr: addr.As16(), jail: uint16(ji), user: relayBounces}
	r := e.goodFails.slot(gk)
	r.add(t, 1, per)
	if n := r.count(stampBefore(ev.Time, j.FindTime), per); n >= lim {
		e.goodFails.del(gk)
		reason := e.why().n(n).s(" unknown recipients within ").d(j.FindTime).s(" from a delivering relay (last: ").q(ev.User).s(" via ").s(ev.Service).s(")").String()
		return e.banLocked(nil, event.AddrPrefix(addr), ev.Time, j.BanTime, "ip-failures", reason, j.Name)
	}
	e.goodFails.put(gk, r)
	return nil
}

// relayBounces is the goodFailKey user under which a relay's unknown
// recipients are counted.
const relayBounces = math.MaxUint32

// goodFailKey counts a known-good address's failures per user.
type goodFailKey struct {
	addr [16]byte
	jail uint16
	user uint32
}

func hashGoodFail(k goodFailKey) uint64 {
	return hashAddrKey(addrKey{addr: k.addr, jail: k.jail}) ^ mix(uint64(k.user))
}

// forgive drops an address's recent failures and pending bans after it
// logged in: it was a person mistyping.
func (e *Engine) forgive(addr netip.Addr) {
	for ji := range e.jails {
		e.tracked.del(keyOf(addr, ji))
	}
	e.cancelPending(addr)
}

// suspect returns a lowered per-address threshold for addresses in a
// prefix that has enough bad addresses but cannot be banned (it holds an
// allowlisted address), in an AS with many bad addresses, or in a target
// a peer flagged (peer.go): the lowest of them.
func (e *Engine) suspect(addr netip.Addr, t stamp, as *asOf) suspicion {
	s := e.localSuspect(addr, t, as)
	if p := e.peerSuspect(addr, t); p.limit > 0 && (s.limit == 0 || p.limit < s.limit) {
		return p
	}
	return s
}

// localSuspect is suspect on what this node saw itself.
func (e *Engine) localSuspect(addr netip.Addr, t stamp, as *asOf) suspicion {
	pc := &e.cfg.Prefixes
	if pc.Suspect > 0 {
		for _, lv := range e.levels(addr) {
			p := prefixOf(addr, lv.Bits)
			if d, ok := e.prefixes.get(keyOfPrefix(p)); ok {
				if n := d.count(t - durStamp(pc.Window)); n >= min(lv.Addresses, distinctSize) {
					return suspicion{limit: pc.Suspect, scenario: "prefix-suspect", prefix: p, n: n}
				}
			}
		}
	}
	if ac := &e.cfg.ASNs; ac.Lookup != nil && ac.Addresses > 0 && ac.MaxRetry > 0 {
		if asn, org, ok := as.lookup(ac.Lookup, addr); ok {
			if d, ok := e.asns.get(asn); ok {
				if n := d.count(t - durStamp(ac.Window)); n >= min(ac.Addresses, distinctSize) {
					return suspicion{limit: ac.MaxRetry, scenario: "asn", asn: asn, org: org, n: n, window: ac.Window}
				}
			}
		}
	}
	return suspicion{}
}

// noteEnumeration counts an unknown recipient probed by addr.
func (e *Engine) noteEnumeration(addr netip.Addr, t stamp) {
	if e.cfg.Enumeration.Recipients <= 0 {
		return
	}
	k := addr.As16()
	r, pos := e.enum.lookup(k)
	r.add(t, 1, 1)
	e.enum.store(k, r, pos)
}

// normUser folds a user name for spray counting: case-insensitive, and
// trimmed of surrounding space. A name of lower-case ASCII without spaces,
// nearly every one, is already folded.
func normUser(u string) string {
	for i := 0; i < len(u); i++ {
		if c := u[i]; c <= ' ' || c >= 'A' && c <= 'Z' || c >= 0x80 {
			return strings.ToLower(strings.TrimSpace(u))
		}
	}
	return u
}

func trimUser(u string) string {
	if len(u) > 64 {
		return u[:64]
	}
	return u
}
