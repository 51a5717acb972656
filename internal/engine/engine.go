// Package engine makes every decision Rampart takes. Events go in, Decisions
// come out; the engine does no I/O and reads time only from the events and
// from the now given to Tick, so a historical log replays to exactly the
// decisions the daemon would have made.
//
// Memory is bounded: every table has a hard cap and evicts its least recently
// active entries when full (see boundedMap), so a flood of millions of unique
// addresses costs at most the cap.
package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Jail holds the per-address thresholds of one jail, as fail2ban users know them.
type Jail struct {
	Name     string
	Services []string           // services whose events count here when Event.Jail is empty
	MaxRetry int                // failures within FindTime that ban an address
	FindTime time.Duration      // the sliding window
	BanTime  time.Duration      // the first ban's duration; escalation lengthens later ones; Permanent: until revoked
	Weights  map[event.Kind]int // failures one event of a kind counts for; default 1, 0 ignores the kind
}

// Escalation lengthens the bans of repeat offenders: the n-th ban within
// Window lasts BanTime × Factor^(n-1), at most Max.
type Escalation struct {
	Factor float64
	Max    time.Duration
	Window time.Duration
}

// Recidive bans for BanTime an address banned Bans times within Window, like
// fail2ban's recidive jail but without re-reading its own log.
type Recidive struct {
	Bans    int // 0 disables
	Window  time.Duration
	BanTime time.Duration // may be Permanent
}

// Permanent, as a ban time (any negative one), bans until revoked, like
// fail2ban's bantime = -1. The decisions it makes have Duration 0;
// escalation leaves them so, and a permanent ban is longer than any other.
const Permanent time.Duration = -1

// Allowlist says which addresses must never be banned.
type Allowlist interface {
	Contains(netip.Addr) bool
	Overlaps(netip.Prefix) bool // the prefix contains an allowed address
}

// Config configures an Engine. Zero-valued scenario settings are off; use
// DefaultConfig for the defaults.
type Config struct {
	Jails       []Jail
	MaxTracked  int // cap on tracked (address, jail) keys; also bounds the other tables
	Escalation  Escalation
	Recidive    Recidive
	Spray       Spray
	Prefixes    Prefixes
	ASNs        ASNs
	Surge       Surge
	Slow        Slow
	KnownGood   KnownGood
	Relays      Relays
	Enumeration Enumeration
	Allow       Allowlist    // nil allows nothing
	Logger      *slog.Logger // nil discards
	// BanLoopback lets loopback addresses be banned like any other, for
	// tests that attack a server from 127.0.0.2 and the like (the
	// configuration's [allow] loopback = false). Off, loopback is never
	// banned (see event.NeverBan).
	BanLoopback bool
}

// Defaults for fields left zero.
const (
	DefaultMaxTracked = 1_000_000
	DefaultMaxRetry   = 5
	DefaultFindTime   = 10 * time.Minute
	DefaultBanTime    = 10 * time.Minute
)

// DefaultEscalation doubles each repeat ban up to a week, remembering bans for 30 days.
var DefaultEscalation = Escalation{Factor: 2, Max: 7 * 24 * time.Hour, Window: 30 * 24 * time.Hour}

// DefaultRecidive bans for a week an address banned 5 times in a day.
var DefaultRecidive = Recidive{Bans: 5, Window: 24 * time.Hour, BanTime: 7 * 24 * time.Hour}

// DefaultConfig returns the default scenarios, for the given jails.
func DefaultConfig(jails ...Jail) Config {
	return Config{
		Jails:       jails,
		MaxTracked:  DefaultMaxTracked,
		Escalation:  DefaultEscalation,
		Recidive:    DefaultRecidive,
		Spray:       DefaultSpray,
		Prefixes:    DefaultPrefixes,
		ASNs:        DefaultASNs,
		Surge:       DefaultSurge,
		Slow:        DefaultSlow,
		KnownGood:   DefaultKnownGood,
		Relays:      DefaultRelays,
		Enumeration: DefaultEnumeration,
	}
}

// Stats are the engine's counters.
type Stats struct {
	Tracked       int    // (address, jail) keys with recent failures
	TrackedCap    int    // the cap on Tracked
	Evicted       uint64 // keys forgotten because the table was full
	Offenders     int    // addresses with a ban history
	ActiveBans    int
	ActiveEvicted uint64 // active bans forgotten because the table was full (the kernel and store keep them)
	Events        uint64 // events observed
	Ignored       uint64 // events that could not count: no address, unknown jail, weight 0
	Allowlisted   uint64 // events from allowlisted addresses
	WhileBanned   uint64 // events from addresses already banned (log lag, other ports)
	Successes     uint64 // successful logins seen
	Deliveries    uint64 // accepted mail seen
	CarveOuts     uint64 // Allow decisions issued for good addresses
	KnownGood     int    // addresses remembered as known-good or as delivering relays
	HotUsers      int    // user names tracked for spraying
	Prefixes      int    // prefixes tracked for aggregation
	Surges        uint64 // times surge mode turned on
	Surge         bool   // surge mode is on now
	Decisions     uint64
}

// Engine holds detection state. It is safe for concurrent use.
type Engine struct {
	mu        sync.Mutex
	cfg       Config
	jails     []jailState
	byName    map[string]int
	byService map[string]int
	tracked   *boundedMap[addrKey, ring]
	offenders *boundedMap[prefixKey, offender]
	users     *boundedMap[uint64, distinct[[16]byte]] // addresses failing per user name
	prefixes  *boundedMap[prefixKey, distinct[uint32]]
	asns      *boundedMap[uint32, distinct[uint32]]
	good      *boundedMap[[16]byte, goodEntry] // good.go
	enum      *boundedMap[[16]byte, ring]      // unknown recipients probed per address
	goodFails *boundedMap[goodFailKey, ring]
	// prefixUsers holds the users who logged in from each aggregation prefix.
	prefixUsers *boundedMap[prefixKey, prefixUsers]
	// wideBans counts the prefixes banned inside each widening prefix.
	wideBans *boundedMap[prefixKey, distinct[uint32]]
	pending  pendingBans
	// carvePrefixes counts good addresses per prefix a ban can have, for the
	// reasons; relayPrefixes counts delivering relays per aggregation prefix.
	carvePrefixes, relayPrefixes map[prefixKey]uint32
	bits                         levelBits
	surge                        surgeState
	active                       *boundedMap[prefixKey, activeBan] // decisions in force (active.go)
	names                        nameTable                         // their scenario, jail and origin names
	wide                         map[netip.Prefix]bool             // active targets wider than one address
	now                          time.Time                         // the latest time seen
	lastPrune                    time.Time
	log                          *slog.Logger
	stats                        Stats
}

// levelBits are the prefix lengths of the aggregation levels (agg) and of
// every scenario ban (carve: the levels and the widened one), per family.
type levelBits struct {
	agg4, agg6, carve4, carve6 []int
}

type jailState struct {
	Jail
	per int // failures one ring slot stands for
}

// offender is an address's recent ban history.
type offender struct {
	bans ring
}

// New validates cfg and returns an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = DefaultMaxTracked
	}
	if cfg.Escalation == (Escalation{}) {
		cfg.Escalation = DefaultEscalation
	}
	if cfg.Escalation.Factor < 1 {
		return nil, fmt.Errorf("escalation factor %v is below 1", cfg.Escalation.Factor)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg:           cfg,
		byName:        map[string]int{},
		byService:     map[string]int{},
		tracked:       newBoundedMap[addrKey](cfg.MaxTracked, hashAddrKey, func(r *ring) stamp { return r.last }),
		offenders:     newBoundedMap[prefixKey](max(cfg.MaxTracked/4, 1024), hashPrefixKey, func(o *offender) stamp { return o.bans.last }),
		users:         newBoundedMap[uint64](max(cfg.MaxTracked/10, 1024), hashU64, func(d *distinct[[16]byte]) stamp { return d.last }),
		prefixes:      newBoundedMap[prefixKey](max(cfg.MaxTracked/4, 1024), hashPrefixKey, func(d *distinct[uint32]) stamp { return d.last }),
		asns:          newBoundedMap[uint32](max(cfg.MaxTracked/100, 1024), hashU32, func(d *distinct[uint32]) stamp { return d.last }),
		good:          newBoundedMap[[16]byte](max(cfg.MaxTracked/10, 1024), hashAddr16, func(g *goodEntry) stamp { return g.last }),
		enum:          newBoundedMap[[16]byte](max(cfg.MaxTracked/10, 1024), hashAddr16, func(r *ring) stamp { return r.last }),
		goodFails:     newBoundedMap[goodFailKey](max(cfg.MaxTracked/10, 1024), hashGoodFail, func(r *ring) stamp { return r.last }),
		prefixUsers:   newBoundedMap[prefixKey](max(cfg.MaxTracked/10, 1024), hashPrefixKey, func(p *prefixUsers) stamp { return p.last }),
		wideBans:      newBoundedMap[prefixKey](max(cfg.MaxTracked/100, 1024), hashPrefixKey, func(d *distinct[uint32]) stamp { return d.last }),
		carvePrefixes: map[prefixKey]uint32{},
		relayPrefixes: map[prefixKey]uint32{},
		active:        newBoundedMap[prefixKey](cfg.MaxTracked, hashPrefixKey, (*activeBan).end),
		wide:          map[netip.Prefix]bool{},
		log:           cfg.Logger,
	}
	e.good.onEvict = e.forgetGood
	e.active.onEvict = e.forgetActive
	var err error
	if e.bits.agg4, e.bits.carve4, err = checkLevels("IPv4", cfg.Prefixes.V4, cfg.Prefixes.Widen4, 32); err != nil {
		return nil, err
	}
	if e.bits.agg6, e.bits.carve6, err = checkLevels("IPv6", cfg.Prefixes.V6, cfg.Prefixes.Widen6, 128); err != nil {
		return nil, err
	}
	if len(cfg.Jails) > math.MaxUint16 {
		return nil, errors.New("too many jails")
	}
	for i, j := range cfg.Jails {
		if j.Name == "" {
			return nil, fmt.Errorf("jail %d has no name", i+1)
		}
		if _, dup := e.byName[j.Name]; dup {
			return nil, fmt.Errorf("jail %q defined twice", j.Name)
		}
		if j.MaxRetry <= 0 {
			j.MaxRetry = DefaultMaxRetry
		}
		if j.FindTime <= 0 {
			j.FindTime = DefaultFindTime
		}
		if j.BanTime == 0 {
			j.BanTime = DefaultBanTime
		}
		e.byName[j.Name] = i
		for _, s := range j.Services {
			if _, taken := e.byService[s]; !taken {
				e.byService[s] = i
			}
		}
		e.jails = append(e.jails, jailState{Jail: j, per: (j.MaxRetry + ringSize - 1) / ringSize})
	}
	return e, nil
}

// checkLevels validates one family's aggregation levels and widening, and
// returns the levels' prefix lengths and those of every scenario ban.
func checkLevels(family string, levels []Level, w Widen, addrBits int) (agg, carve []int, err error) {
	for _, lv := range levels {
		if lv.Addresses < 1 || lv.Bits < 8 || lv.Bits >= addrBits {
			return nil, nil, fmt.Errorf("%s prefix level /%d: needs 8 <= bits < %d and addresses >= 1", family, lv.Bits, addrBits)
		}
		agg = append(agg, lv.Bits)
	}
	carve = slices.Clone(agg)
	if w.Bits != 0 {
		if w.Bits < 8 || len(agg) == 0 || w.Bits >= slices.Min(agg) || w.Prefixes < 1 {
			return nil, nil, fmt.Errorf("%s widening to /%d: needs 8 <= bits < the narrowest aggregation level, and prefixes >= 1", family, w.Bits)
		}
		carve = append(carve, w.Bits)
	}
	return agg, carve, nil
}

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
//     address is good and so carved out): not counted again;
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
		return nil
	}
	addr := ev.Addr.Unmap()
	if _, never := e.neverBan(event.AddrPrefix(addr)); never {
		e.stats.Ignored++
		return nil
	}
	if e.cfg.Allow != nil && e.cfg.Allow.Contains(addr) {
		e.stats.Allowlisted++
		return nil
	}
	t := toStamp(ev.Time)
	out := e.flushPending(ev.Time)
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
	if _, banned := e.bannedAt(addr, ev.Time); banned {
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
	if cross {
		surge = e.observeSurge(t)
		if ds := e.aggregate(ev, addr, j, t); len(ds) > 0 {
			return append(out, ds...)
		}
	}

	k := keyOf(addr, ji)
	r := e.tracked.slot(k)
	r.add(t, weight, j.per)
	since := toStamp(ev.Time.Add(-j.FindTime))
	n := r.count(since, j.per)
	if n >= j.MaxRetry {
		e.tracked.del(k)
		e.cancelPending(addr)
		reason := fmt.Sprintf("%d failures within %s (last: %s%s via %s)", n, fmtDuration(j.FindTime), ev.Kind, userNote(ev.User), ev.Service)
		return append(out, e.banLocked(event.AddrPrefix(addr), ev.Time, j.BanTime, "ip-failures", reason, j.Name))
	}
	if sl := e.cfg.Slow; sl.Failures > 0 && sl.Window > j.FindTime {
		if n := r.count(toStamp(ev.Time.Add(-sl.Window)), j.per); n >= sl.Failures {
			e.tracked.del(k)
			e.cancelPending(addr)
			reason := fmt.Sprintf("%d failures within %s, spread out (last: %s%s via %s)", n, fmtDuration(sl.Window), ev.Kind, userNote(ev.User), ev.Service)
			return append(out, e.banLocked(event.AddrPrefix(addr), ev.Time, longer(sl.BanTime, j.BanTime), "slow", reason, j.Name))
		}
	}
	e.tracked.put(k, r)
	if !cross {
		return out
	}
	// Tightened thresholds: a lower bar, so the ban waits out the grace
	// period in case the address logs in (a person who mistyped).
	lim, scenario, why, bt := 0, "", "", j.BanTime
	if surge && e.cfg.Surge.MaxRetry > 0 {
		lim, scenario, why = e.cfg.Surge.MaxRetry, "surge", "surge mode"
	}
	if l, sc, w := e.suspect(addr, t); l > 0 && (lim == 0 || l < lim) {
		lim, scenario, why = l, sc, strings.TrimPrefix(w, "; ")
		if sc == "prefix-suspect" {
			bt = longer(e.cfg.Prefixes.BanTime, j.BanTime)
		}
	}
	if lim > 0 && n >= lim {
		reason := fmt.Sprintf("%d failures within %s, %s (last: %s%s via %s)", n, fmtDuration(j.FindTime), why, ev.Kind, userNote(ev.User), ev.Service)
		e.deferBan(event.AddrPrefix(addr), ev.Time, bt, scenario, reason, j.Name)
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
	since := toStamp(ev.Time.Add(-j.FindTime))
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
		reason := fmt.Sprintf("%d failures within %s for %q from a known-good client (via %s)", n, fmtDuration(j.FindTime), trimUser(ev.User), ev.Service)
		return []event.Decision{e.banLocked(event.AddrPrefix(addr), ev.Time, j.BanTime, "ip-failures", reason, j.Name)}
	}
	if n := r.count(since, j.per); n >= factor*j.MaxRetry {
		e.tracked.del(k)
		e.goodFails.put(gk, gr)
		reason := fmt.Sprintf("%d failures within %s over several users from a known-good client (last: %s%s via %s)", n, fmtDuration(j.FindTime), ev.Kind, userNote(ev.User), ev.Service)
		return []event.Decision{e.banLocked(event.AddrPrefix(addr), ev.Time, j.BanTime, "ip-failures", reason, j.Name)}
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
	if n := r.count(toStamp(ev.Time.Add(-j.FindTime)), per); n >= lim {
		e.goodFails.del(gk)
		reason := fmt.Sprintf("%d unknown recipients within %s from a delivering relay (last: %q via %s)", n, fmtDuration(j.FindTime), trimUser(ev.User), ev.Service)
		return []event.Decision{e.banLocked(event.AddrPrefix(addr), ev.Time, j.BanTime, "ip-failures", reason, j.Name)}
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

// aggregate feeds the cross-address scenarios with a failure of a
// non-known-good address and returns the bans they decide.
func (e *Engine) aggregate(ev event.Event, addr netip.Addr, j *jailState, t stamp) []event.Decision {
	id := addrID(addr)
	var out []event.Decision
	if sp := e.cfg.Spray; sp.Addresses > 0 && ev.User != "" {
		uid := userID(normUser(ev.User))
		d := e.users.slot(uid)
		since := t - durStamp(sp.Window)
		hot := min(sp.Addresses, distinctSize)
		wasHot := d.count(since) >= hot
		a16 := addr.As16()
		d.add(a16, t)
		e.users.put(uid, d)
		if n := d.count(since); n >= hot {
			bt := longer(sp.BanTime, j.BanTime)
			reason := fmt.Sprintf("user %q failed from %d addresses within %s (last: %s via %s)", trimUser(ev.User), n, fmtDuration(sp.Window), ev.Kind, ev.Service)
			e.deferBan(event.AddrPrefix(addr), ev.Time, bt, "user-spray", reason, j.Name)
			if !wasHot {
				e.banEarlierSprayers(&d, a16, since, ev, n, bt, j.Name)
			}
		}
	}
	pc := e.cfg.Prefixes
	for _, lv := range e.levels(addr) {
		p := prefixOf(addr, lv.Bits)
		pk := keyOfPrefix(p)
		d := e.prefixes.slot(pk)
		d.add(id, t)
		e.prefixes.put(pk, d)
		n := d.count(t - durStamp(pc.Window))
		if n < min(lv.Addresses, distinctSize) || !e.canBanPrefix(p) {
			continue
		}
		// An expired ban still in the table (Tick prunes it later) does
		// not count: replay ticks once a minute, the daemon every second,
		// and both must decide alike.
		if _, already := e.activeAt(p, ev.Time); already {
			continue
		}
		reason := fmt.Sprintf("%d bad addresses in %s within %s (last: %s %s%s via %s)%s", n, p, fmtDuration(pc.Window), addr, ev.Kind, userNote(ev.User), ev.Service, e.carveNote(p))
		bt := pc.BanTime
		if bt <= 0 {
			bt = j.BanTime
		}
		// The prefix ban covers the address: drop its pending ban.
		e.cancelPending(addr)
		out = append(out, e.banLocked(p, ev.Time, bt, "prefix", reason, j.Name))
		if d, ok := e.widenAfter(p, ev.Time, j); ok {
			out = append(out, d)
		}
		break
	}
	if ac := e.cfg.ASNs; ac.Lookup != nil && ac.Addresses > 0 {
		if asn, _, ok := ac.Lookup.ASN(addr); ok {
			d := e.asns.slot(asn)
			d.add(id, t)
			e.asns.put(asn, d)
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
	why := fmt.Sprintf("failed for user %q, which then failed from %d addresses within %s", trimUser(ev.User), n, fmtDuration(e.cfg.Spray.Window))
	for i := range int(d.n) {
		if d.times[i] < since || d.ids[i] == self {
			continue
		}
		a := netip.AddrFrom16(d.ids[i]).Unmap()
		if e.goodAt(a, t).any() || (e.cfg.Allow != nil && e.cfg.Allow.Contains(a)) {
			continue
		}
		if _, banned := e.bannedAt(a, ev.Time); banned {
			continue
		}
		e.deferBan(event.AddrPrefix(a), ev.Time, bt, "user-spray", why, jail)
	}
}

// suspect returns a lowered per-address threshold for addresses in a
// prefix that has enough bad addresses but cannot be banned (it holds an
// allowlisted or known-good address), or in an AS with many bad addresses.
func (e *Engine) suspect(addr netip.Addr, t stamp) (int, string, string) {
	pc := e.cfg.Prefixes
	if pc.Suspect > 0 {
		for _, lv := range e.levels(addr) {
			p := prefixOf(addr, lv.Bits)
			if d, ok := e.prefixes.get(keyOfPrefix(p)); ok {
				if n := d.count(t - durStamp(pc.Window)); n >= min(lv.Addresses, distinctSize) {
					return pc.Suspect, "prefix-suspect", fmt.Sprintf("; %s holds %d bad addresses but also a known-good or allowlisted one", p, n)
				}
			}
		}
	}
	if ac := e.cfg.ASNs; ac.Lookup != nil && ac.Addresses > 0 && ac.MaxRetry > 0 {
		if asn, org, ok := ac.Lookup.ASN(addr); ok {
			if d, ok := e.asns.get(asn); ok {
				if n := d.count(t - durStamp(ac.Window)); n >= min(ac.Addresses, distinctSize) {
					return ac.MaxRetry, "asn", fmt.Sprintf("; AS%d %s has %d bad addresses within %s", asn, org, n, fmtDuration(ac.Window))
				}
			}
		}
	}
	return 0, "", ""
}

// canBanPrefix reports whether p holds no allowlisted address. Good
// addresses do not stop a prefix ban: they are carved out of it.
func (e *Engine) canBanPrefix(p netip.Prefix) bool {
	return e.cfg.Allow == nil || !e.cfg.Allow.Overlaps(p)
}

// carveNote is the part of a prefix ban's reason that says how many good
// addresses it spares.
func (e *Engine) carveNote(p netip.Prefix) string {
	switch n := e.carvedIn(p); n {
	case 0:
		return ""
	case 1:
		return "; 1 address carved out (known-good or delivering relay)"
	default:
		return fmt.Sprintf("; %d addresses carved out (known-good or delivering relays)", n)
	}
}

// widenAfter records the ban of p inside its widening prefix and bans that
// prefix when it now holds enough banned ones.
func (e *Engine) widenAfter(p netip.Prefix, at time.Time, j *jailState) (event.Decision, bool) {
	w := e.widen(p.Addr())
	if w.Bits == 0 {
		return event.Decision{}, false
	}
	wp := prefixOf(p.Addr(), w.Bits)
	wk := keyOfPrefix(wp)
	t := toStamp(at)
	d := e.wideBans.slot(wk)
	d.add(addrID(p.Addr()), t)
	e.wideBans.put(wk, d)
	n := d.count(t - durStamp(e.cfg.Prefixes.Window))
	if n < min(w.Prefixes, distinctSize) || !e.canBanPrefix(wp) {
		return event.Decision{}, false
	}
	if _, already := e.activeAt(wp, at); already {
		return event.Decision{}, false
	}
	reason := fmt.Sprintf("%d prefixes banned in %s within %s (last: %s)%s", n, wp, fmtDuration(e.cfg.Prefixes.Window), p, e.carveNote(wp))
	bt := w.BanTime
	if bt <= 0 {
		bt = j.BanTime
	}
	return e.banLocked(wp, at, bt, "prefix-wide", reason, j.Name), true
}

func durStamp(d time.Duration) stamp {
	s := d / time.Second
	if s > 1<<31 {
		s = 1 << 31
	}
	return stamp(s)
}

func trimUser(u string) string {
	if len(u) > 64 {
		return u[:64]
	}
	return u
}

func userNote(u string) string {
	if u == "" {
		return ""
	}
	return fmt.Sprintf(" for %q", trimUser(u))
}

func (e *Engine) jailFor(ev event.Event) (int, bool) {
	if ev.Jail != "" {
		i, ok := e.byName[ev.Jail]
		return i, ok
	}
	i, ok := e.byService[ev.Service]
	return i, ok
}

// banLocked records a ban of target at t, lengthened for repeat offenders,
// and returns the decision.
func (e *Engine) banLocked(target netip.Prefix, t time.Time, base time.Duration, scenario, reason, jail string) event.Decision {
	dur, scenario, reason := e.escalate(target, t, base, scenario, reason)
	if dur < 0 {
		dur = 0 // Permanent: the Decision's "until revoked"
	}
	d := event.Decision{
		Target:   target,
		Action:   event.Ban,
		Start:    t,
		Duration: dur,
		Scenario: scenario,
		Reason:   reason,
		Jail:     jail,
		Origin:   "local",
	}
	e.setActive(d)
	e.stats.Decisions++
	e.log.Debug("ban", "addr", target.String(), "scenario", scenario, "duration_s", int64(dur.Seconds()), "jail", jail)
	return d
}

// escalate applies ban-time escalation and recidive to a new ban and
// records it in the target's history.
func (e *Engine) escalate(target netip.Prefix, t time.Time, base time.Duration, scenario, reason string) (time.Duration, string, string) {
	key := keyOfPrefix(target)
	o := e.offenders.slot(key)
	now := toStamp(t)
	prior := 0
	if w := e.cfg.Escalation.Window; w > 0 {
		prior = o.bans.within(toStamp(t.Add(-w)))
	}
	recent := 0
	if rc := e.cfg.Recidive; rc.Bans > 0 {
		recent = o.bans.within(toStamp(t.Add(-rc.Window)))
	}
	o.bans.add(now, 1, 1)
	e.offenders.put(key, o)

	dur := base
	if base < 0 {
		return Permanent, scenario, reason // nothing is longer, nor made shorter
	}
	if prior > 0 && e.cfg.Escalation.Factor > 1 {
		f := math.Pow(e.cfg.Escalation.Factor, float64(prior))
		if scaled := float64(base) * f; scaled < float64(e.cfg.Escalation.Max) {
			dur = time.Duration(scaled)
		} else {
			dur = max(e.cfg.Escalation.Max, base)
		}
		reason += fmt.Sprintf("; ban %d within %s", prior+1, fmtDuration(e.cfg.Escalation.Window))
	}
	if rc := e.cfg.Recidive; rc.Bans > 0 && recent+1 >= rc.Bans && longer(rc.BanTime, dur) != dur {
		return rc.BanTime, "recidive", fmt.Sprintf("banned %d times within %s; %s", recent+1, fmtDuration(rc.Window), reason)
	}
	return dur, scenario, reason
}

// Ban records a ban decided outside the engine (the CLI, a peer) and returns
// it as recorded. It refuses allowlisted targets.
func (e *Engine) Ban(d event.Decision) (event.Decision, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d.Target = normPrefix(d.Target)
	if err := e.checkAllowed(d.Target); err != nil {
		return d, err
	}
	if d.Action == 0 {
		d.Action = event.Ban
	}
	if d.Start.IsZero() {
		d.Start = e.now
	}
	e.setActive(d)
	e.stats.Decisions++
	return d, nil
}

func normPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			bits = 0
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), bits)
	}
	return p.Masked()
}

// ErrAllowlisted is returned when asked to ban an allowlisted target.
var ErrAllowlisted = errors.New("target is allowlisted")

// ErrNeverBan is returned when asked to ban a target that covers an
// address that must never be banned (see event.NeverBan).
var ErrNeverBan = errors.New("target covers addresses that are never banned")

func (e *Engine) checkAllowed(p netip.Prefix) error {
	if e.cfg.Allow != nil && e.cfg.Allow.Overlaps(p) {
		return fmt.Errorf("%s: %w", p, ErrAllowlisted)
	}
	if n, never := e.neverBan(p); never {
		return fmt.Errorf("%s overlaps %s: %w", p, n, ErrNeverBan)
	}
	return nil
}

// neverBan is event.NeverBan, with loopback left out when BanLoopback.
func (e *Engine) neverBan(p netip.Prefix) (netip.Prefix, bool) {
	n, never := event.NeverBan(p)
	if never && e.cfg.BanLoopback && (n == event.Loopback4 || n == event.Loopback6) && n.Contains(p.Addr()) && n.Bits() <= p.Bits() {
		return netip.Prefix{}, false
	}
	return n, never
}

// Unban removes an active decision and forgets the target's recent
// failures. It reports whether the target was banned.
func (e *Engine) Unban(p netip.Prefix) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p = normPrefix(p)
	ok := e.dropActive(p)
	if p.IsSingleIP() {
		for ji := range e.jails {
			e.tracked.del(keyOf(p.Addr(), ji))
		}
	} else {
		e.prefixes.del(keyOfPrefix(p))
	}
	return ok
}

// Restore loads decisions that were active before a restart (from the store)
// and the ban history used for escalation. Decisions for allowlisted
// targets are dropped and returned so the caller can revoke them.
func (e *Engine) Restore(active []event.Decision, history []event.Decision) (dropped []event.Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range history {
		if d.Action != event.Ban {
			continue
		}
		key := keyOfPrefix(normPrefix(d.Target))
		o := e.offenders.slot(key)
		o.bans.add(toStamp(d.Start), 1, 1)
		e.offenders.put(key, o)
	}
	for _, d := range active {
		if d.Action != event.Ban {
			continue
		}
		d.Target = normPrefix(d.Target)
		if e.checkAllowed(d.Target) != nil {
			dropped = append(dropped, d)
			continue
		}
		e.setActive(d)
		if d.Start.After(e.now) {
			e.now = d.Start
		}
	}
	return dropped
}

// RestoreKnownGood remembers that addr logged in as user at t (from the
// store, after a restart). No carve-out is issued: the daemon restores
// the kernel's carve-outs from the store itself.
func (e *Engine) RestoreKnownGood(addr netip.Addr, user string, t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := addr.Unmap()
	e.rememberGood(a, normUser(user), toStamp(t))
	e.restoreGood(a)
}

// RestoreRelay remembers that addr delivered mail at t (from the store,
// after a restart), without issuing a carve-out (see RestoreKnownGood).
func (e *Engine) RestoreRelay(addr netip.Addr, t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := addr.Unmap()
	e.rememberRelay(a, toStamp(t), "")
	e.restoreGood(a)
}

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

// Tick advances the clock to now: deferred bans that are due take effect
// and are returned (to be enforced and persisted like Observe's), expired
// bans are forgotten (kernel timeouts remove them from the firewall), and
// stale counters are pruned once a minute.
func (e *Engine) Tick(now time.Time) []event.Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.After(e.now) {
		e.now = now
	}
	decided := e.flushPending(now)
	if now.Sub(e.lastPrune) >= time.Minute {
		e.lastPrune = now
		ns := now.UnixNano()
		e.active.prune(func(_ prefixKey, b *activeBan) bool { return ns >= b.start && !b.in(now) })
		e.prune(toStamp(now))
	}
	return decided
}

// prune drops state older than every window that could still use it.
func (e *Engine) prune(now stamp) {
	cut := make([]stamp, len(e.jails))
	for i, j := range e.jails {
		w := j.FindTime
		if e.cfg.Slow.Failures > 0 {
			w = max(w, e.cfg.Slow.Window)
		}
		cut[i] = now - durStamp(w)
	}
	e.tracked.prune(func(k addrKey, r *ring) bool { return int(k.jail) < len(cut) && r.last < cut[k.jail] })
	if w := max(e.cfg.Escalation.Window, e.cfg.Recidive.Window); w > 0 {
		c := now - durStamp(w)
		e.offenders.prune(func(_ prefixKey, o *offender) bool { return o.bans.last < c })
	}
	sprayCut := now - durStamp(e.cfg.Spray.Window)
	e.users.prune(func(_ uint64, d *distinct[[16]byte]) bool { return d.last < sprayCut })
	prefixCut := now - durStamp(e.cfg.Prefixes.Window)
	e.prefixes.prune(func(_ prefixKey, d *distinct[uint32]) bool { return d.last < prefixCut })
	asnCut := now - durStamp(e.cfg.ASNs.Window)
	e.asns.prune(func(_ uint32, d *distinct[uint32]) bool { return d.last < asnCut })
	if w := e.cfg.Enumeration.Window; w > 0 {
		c := now - durStamp(w)
		e.enum.prune(func(_ [16]byte, r *ring) bool { return r.last < c })
	}
	e.goodFails.prune(func(k goodFailKey, r *ring) bool { return int(k.jail) < len(cut) && r.last < cut[k.jail] })
	e.pruneGood(now)
	if ttl := e.cfg.KnownGood.TTL; ttl > 0 {
		c := now - min(durStamp(ttl), now)
		e.prefixUsers.prune(func(_ prefixKey, p *prefixUsers) bool { return p.last < c })
	}
	e.wideBans.prune(func(_ prefixKey, d *distinct[uint32]) bool { return d.last < prefixCut })
}

// Banned reports whether addr is covered by an active decision at t, and which.
func (e *Engine) Banned(addr netip.Addr, t time.Time) (event.Decision, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bannedAt(addr.Unmap(), t)
}

// bannedAt looks for an active ban of addr or of a prefix holding it: the
// aggregation levels are looked up directly, other prefixes (manual bans,
// peers) scanned.
func (e *Engine) bannedAt(addr netip.Addr, t time.Time) (event.Decision, bool) {
	if d, ok := e.activeAt(event.AddrPrefix(addr), t); ok {
		return d, true
	}
	if len(e.wide) == 0 || e.goodAt(addr, toStamp(t)).any() {
		return event.Decision{}, false // good addresses are carved out of prefix bans
	}
	for _, bits := range e.carveLevels(addr) {
		if d, ok := e.activeAt(prefixOf(addr, bits), t); ok {
			return d, true
		}
	}
	if len(e.wide) <= 32 {
		for p := range e.wide {
			if p.Contains(addr) {
				if d, ok := e.activeAt(p, t); ok {
					return d, true
				}
			}
		}
		return event.Decision{}, false
	}
	for bits := addr.BitLen() - 1; bits >= 0; bits-- {
		if d, ok := e.activeAt(prefixOf(addr, bits), t); ok {
			return d, true
		}
	}
	return event.Decision{}, false
}

// Active returns the decisions in force at t, sorted by start. Their
// Reason is empty: the engine does not keep it (see active.go).
func (e *Engine) Active(t time.Time) []event.Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ds []event.Decision
	e.active.each(func(k prefixKey, b *activeBan) {
		if b.in(t) {
			ds = append(ds, e.decisionOf(k, *b))
		}
	})
	slices.SortFunc(ds, func(a, b event.Decision) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Target.String(), b.Target.String())
	})
	return ds
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Tracked = e.tracked.len()
	s.TrackedCap = e.tracked.cap
	s.Evicted = e.tracked.evicted
	s.Offenders = e.offenders.len()
	s.ActiveBans = e.active.len()
	s.ActiveEvicted = e.active.evicted
	s.KnownGood = e.good.len()
	s.HotUsers = e.users.len()
	s.Prefixes = e.prefixes.len()
	s.Surge = e.surge.on
	return s
}

// Jails returns the configured jails, with defaults filled in.
func (e *Engine) Jails() []Jail {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Jail, len(e.jails))
	for i, j := range e.jails {
		out[i] = j.Jail
	}
	return out
}

// fmtDuration prints durations the way people write them: 10m, 1h30m, 7d.
func fmtDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
