package engine

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
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
	// Ports limits the jail's address bans to these destination ports
	// (fail2ban's per-port actions); empty bans the whole host. The bans
	// that carry them: every ban of one address the jail's events decide,
	// but recidive, which is whole-host like fail2ban's recidive jail.
	// Prefix bans are always whole-host. An address banned on some ports
	// is still counted by jails with other ports.
	Ports []event.PortRange
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
	Peers       Peers        // marks from other nodes (peer.go)
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
		Peers:       DefaultPeers,
	}
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

// Relays configures the delivering-relay signal.
type Relays struct {
	TTL    time.Duration // how long accepted mail keeps an address a relay; 0 disables
	Factor int           // a relay's unknown recipients weigh this many times less
}

// DefaultRelays remembers a relay for 30 days; its unknown recipients
// count one fifth.
var DefaultRelays = Relays{TTL: 30 * 24 * time.Hour, Factor: 5}

// Enumeration flags an address that probed this many unknown recipients
// within Window: live policy answers then blind it (the same reply for valid
// and invalid recipients).
type Enumeration struct {
	Recipients int // 0 disables
	Window     time.Duration
}

// DefaultEnumeration flags three unknown recipients within an hour.
var DefaultEnumeration = Enumeration{Recipients: 3, Window: time.Hour}
