package engine

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// The scenarios in this file look across addresses, to stop attackers who
// rotate to a fresh address as soon as a per-address limit is hit. None of
// them ever acts on an allowlisted or known-good address.

// Spray makes a user name "hot" once it has failed from Addresses distinct
// addresses within Window; while hot, a failure for it from an address that
// never logged in bans that address at once.
type Spray struct {
	Addresses int // 0 disables
	Window    time.Duration
	BanTime   time.Duration // ban length (escalating); the jail's when shorter
}

// Level is one prefix length at which bad addresses are aggregated.
type Level struct {
	Bits      int // 24 for IPv4 /24, 64 for IPv6 /64, ...
	Addresses int // distinct bad addresses within the window that ban the prefix
}

// Prefixes bans a network prefix that holds enough distinct bad addresses
// within Window. The good addresses in it (known-good clients, delivering
// relays) are carved out of the ban (see good.go). A prefix that holds an
// allowlisted address is never banned: its addresses get the Suspect
// threshold instead.
//
// Widen4 and Widen6 escalate further: once Widen.Prefixes prefixes inside
// one wider prefix of Widen.Bits have been banned within Window, the wider
// prefix is banned for Widen.BanTime, with the same carve-outs.
type Prefixes struct {
	V4, V6         []Level // empty disables that family
	Window         time.Duration
	BanTime        time.Duration // first prefix ban; escalates like address bans
	Suspect        int           // per-address threshold inside a prefix that could not be banned
	Widen4, Widen6 Widen
}

// Widen bans a wider prefix that holds several banned ones.
type Widen struct {
	Bits     int // the wider prefix's length: 16 for IPv4, 48 for IPv6; 0 disables
	Prefixes int // distinct prefixes banned inside it within the window
	BanTime  time.Duration
}

// ASNLookup maps an address to its autonomous system.
type ASNLookup interface {
	ASN(netip.Addr) (asn uint32, org string, ok bool)
}

// ASNs lowers the per-address threshold to MaxRetry for every address of an
// autonomous system that produced Addresses distinct bad addresses within
// Window. It never bans a whole AS.
type ASNs struct {
	Lookup    ASNLookup // nil disables
	Addresses int
	Window    time.Duration
	MaxRetry  int
}

// Surge tightens thresholds while the global failure rate is far above its
// baseline: a minute with at least max(MinRate, Factor × baseline) failures
// turns surge mode on, and it stays on until Hold has passed without such a
// minute. The baseline is an exponentially weighted per-minute average
// over about an hour.
type Surge struct {
	Factor   float64 // 0 disables
	MinRate  int     // failures per minute below which there is never a surge
	Hold     time.Duration
	MaxRetry int // per-address threshold during a surge
}

// Slow catches low-and-slow attackers: Failures failures within Window from
// one address ban it, however far apart they are.
type Slow struct {
	Failures int // 0 disables; at most the ring size (8) per slot
	Window   time.Duration
	BanTime  time.Duration // ban length (escalating); the jail's when shorter
}

// KnownGood configures the carve-outs for addresses that logged in: how
// long a login keeps an address known-good; how long a ban on a tightened
// threshold waits for a login that cancels it (Grace); and how many times
// the jail's maxretry a known-good address may fail over all its users
// before it is banned all the same (Factor).
type KnownGood struct {
	TTL    time.Duration
	Grace  time.Duration
	Factor int
}

// Defaults for the cross-address scenarios.
var (
	DefaultSpray    = Spray{Addresses: 5, Window: time.Hour, BanTime: 12 * time.Hour}
	DefaultPrefixes = Prefixes{
		V4: []Level{{Bits: 24, Addresses: 3}}, V6: []Level{{Bits: 64, Addresses: 3}},
		Window: 6 * time.Hour, BanTime: time.Hour, Suspect: 1,
		Widen4: Widen{Bits: 16, Prefixes: 3, BanTime: 30 * time.Minute},
		Widen6: Widen{Bits: 48, Prefixes: 3, BanTime: 30 * time.Minute},
	}
	DefaultASNs      = ASNs{Addresses: 8, Window: time.Hour, MaxRetry: 2}
	DefaultSurge     = Surge{Factor: 5, MinRate: 30, Hold: 10 * time.Minute, MaxRetry: 2}
	DefaultSlow      = Slow{Failures: 8, Window: 12 * time.Hour, BanTime: 24 * time.Hour}
	DefaultKnownGood = KnownGood{TTL: 90 * 24 * time.Hour, Grace: 90 * time.Second, Factor: 3}
)

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

// surgeState follows the global failure rate.
type surgeState struct {
	minute   int64   // current minute (stamp/60)
	count    int     // failures in it
	baseline float64 // EWMA of failures per minute
	until    stamp   // surge mode lasts until then; 0: off
	on       bool
}

// observeSurge counts a failure at t and reports whether surge mode is on.
func (e *Engine) observeSurge(t stamp) bool {
	sc := e.cfg.Surge
	if sc.Factor <= 0 {
		return false
	}
	s := &e.surge
	m := int64(t) / 60
	if s.minute == 0 {
		s.minute = m
	}
	if m > s.minute {
		// Fold the finished minute, then the empty ones since, into the baseline.
		const alpha = 1.0 / 60
		s.baseline += alpha * (float64(s.count) - s.baseline)
		for i := s.minute + 1; i < m && i < s.minute+240; i++ {
			s.baseline -= alpha * s.baseline
		}
		s.minute, s.count = m, 0
	}
	s.count++
	limit := max(float64(sc.MinRate), sc.Factor*s.baseline)
	if float64(s.count) >= limit {
		s.until = t + stamp(sc.Hold/time.Second)
		if !s.on {
			s.on = true
			e.stats.Surges++
			e.log.Warn("surge mode on: thresholds tightened", "failures_per_min", s.count, "baseline_per_min", fmt.Sprintf("%.1f", s.baseline),
				"maxretry", sc.MaxRetry, "at", t.Time().UTC().Format(time.RFC3339))
		}
	}
	if s.on && t > s.until {
		s.on = false
		e.log.Info("surge mode off: thresholds back to normal", "baseline_per_min", fmt.Sprintf("%.1f", s.baseline), "at", t.Time().UTC().Format(time.RFC3339))
	}
	return s.on
}

// normUser folds a user name for spray counting: case-insensitive, and
// trimmed of surrounding space.
func normUser(u string) string { return strings.ToLower(strings.TrimSpace(u)) }
