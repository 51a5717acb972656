// Package event holds Rampart's shared vocabulary: the Event that every input
// becomes and the Decision that every output is. It imports nothing of ours.
package event

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Kind says what a security fact is about.
type Kind uint8

// The kinds of Event. The zero value is not a valid kind.
const (
	_ Kind = iota
	// AuthFailure is a failed login for an account that may exist.
	AuthFailure
	// UnknownUser is a failed login for an account the service says does not exist.
	UnknownUser
	// AuthSuccess is a successful login; it feeds the known-good client logic.
	AuthSuccess
	// RecipientUnknown is a mail recipient rejected as non-existent (enumeration).
	RecipientUnknown
	// ProtocolAbuse is a protocol violation: pipelining, too many errors, bad requests.
	ProtocolAbuse
	// Probe is a scan for content or services that do not exist (web probes, bad bots).
	Probe
	// Rejected is a client refused by the service's own policy (RBL, helo, access rules).
	Rejected
	// MailAccepted is a message the mail server accepted from the client
	// (Postfix's "QUEUEID: client=..." line): the client delivers real mail.
	MailAccepted
	kindEnd
)

var kindNames = [...]string{
	AuthFailure:      "auth-failure",
	UnknownUser:      "unknown-user",
	AuthSuccess:      "auth-success",
	RecipientUnknown: "recipient-unknown",
	ProtocolAbuse:    "protocol-abuse",
	Probe:            "probe",
	Rejected:         "rejected",
	MailAccepted:     "mail-accepted",
}

// String returns the kind's stable name, as used in rule files and JSON output.
func (k Kind) String() string {
	if k == 0 || k >= kindEnd {
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
	return kindNames[k]
}

// ParseKind returns the Kind named s.
func ParseKind(s string) (Kind, error) {
	for k := AuthFailure; k < kindEnd; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown event kind %q", s)
}

// Kinds lists every valid kind in order.
func Kinds() []Kind {
	ks := make([]Kind, 0, kindEnd-1)
	for k := AuthFailure; k < kindEnd; k++ {
		ks = append(ks, k)
	}
	return ks
}

// Failure reports whether the kind counts against the source address.
func (k Kind) Failure() bool { return !k.Good() && k > 0 && k < kindEnd }

// Good reports whether the kind is evidence that the client is legitimate:
// a successful login, or mail accepted for delivery.
func (k Kind) Good() bool { return k == AuthSuccess || k == MailAccepted }

// Event is one security fact extracted from a log line or a live query.
type Event struct {
	Time    time.Time
	Service string     // "sshd", "postfix", ...
	Kind    Kind       // what happened
	Addr    netip.Addr // the client blamed; always unmapped; invalid when the line named only a host
	Host    string     // the client as written when it is not an address (a DNS name)
	User    string     // the user name or recipient, when known
	Origin  string     // where the fact came from: a file path, "journald", "postfix-policy", ...
	Jail    string     // the jail whose filter produced it; "" lets the engine pick by Service
}

// Action is what a Decision asks the enforcers to do.
type Action uint8

// Actions, in the order of severity.
const (
	_ Action = iota
	Allow
	Tarpit
	Trap
	Ban
	actionEnd
)

var actionNames = [...]string{Allow: "allow", Tarpit: "tarpit", Trap: "trap", Ban: "ban"}

func (a Action) String() string {
	if a == 0 || a >= actionEnd {
		return fmt.Sprintf("action(%d)", uint8(a))
	}
	return actionNames[a]
}

// ParseAction returns the Action named s.
func ParseAction(s string) (Action, error) {
	for a := Allow; a < actionEnd; a++ {
		if actionNames[a] == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown action %q", s)
}

// Decision is the engine's verdict on a target.
type Decision struct {
	Target   netip.Prefix // a /32 or /128 for one address
	Action   Action
	Start    time.Time
	Duration time.Duration // zero means until revoked
	Scenario string        // "ip-failures", "user-spray", "prefix", ...
	Reason   string        // human explanation: counts, window, user
	Jail     string        // the jail whose rules fired, if any
	Origin   string        // "local" or a peer's name
	// Ports limits a ban of one address to these destination ports
	// (normalized, see NormalizePorts): a jail with ports bans only its
	// service, as fail2ban's per-port actions do. Empty bans every port
	// and protocol: the whole host, the default. Prefix bans are always
	// whole-host: the enforcers ignore Ports on a wider target.
	Ports []PortRange
}

// WholeHost reports whether the decision covers every port of its target.
func (d Decision) WholeHost() bool { return len(d.Ports) == 0 || !d.Target.IsSingleIP() }

// DecisionKey tells decisions in force apart: a target's whole-host
// decision and its per-port ones are different decisions.
type DecisionKey struct {
	Target netip.Prefix
	Ports  string // FormatPorts of the ports; "" for a whole-host decision
}

// Key returns the decision's DecisionKey (its ports as given: decisions
// from the engine, the store and the enforcers have them normalized).
func (d Decision) Key() DecisionKey {
	if d.WholeHost() {
		return DecisionKey{Target: d.Target}
	}
	return DecisionKey{Target: d.Target, Ports: FormatPorts(d.Ports)}
}

// End returns when the decision expires; the zero time when it never does.
func (d Decision) End() time.Time {
	if d.Duration <= 0 {
		return time.Time{}
	}
	return d.Start.Add(d.Duration)
}

// Active reports whether the decision is in force at t.
func (d Decision) Active(t time.Time) bool {
	if t.Before(d.Start) {
		return false
	}
	return d.Duration <= 0 || t.Before(d.Start.Add(d.Duration))
}

// AddrPrefix returns the single-address prefix for a, unmapping IPv4-mapped IPv6.
func AddrPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

// ParseTarget reads a ban target: an address (one address's prefix) or a
// CIDR prefix, masked; IPv4-mapped IPv6 comes back as IPv4. An address
// with a zone is refused, and so is a mapped prefix shorter than /96,
// which is not IPv4 space alone.
func ParseTarget(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR prefix", s)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: an address with a zone cannot be a target", s)
		}
		return AddrPrefix(a), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR prefix", s)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix shorter than /96", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Loopback4 and Loopback6 are the loopback networks.
var (
	Loopback4 = netip.MustParsePrefix("127.0.0.0/8")
	Loopback6 = netip.MustParsePrefix("::1/128")
)

// neverBan lists the address ranges no decision may cover, whatever the
// logs or an operator say: dropping them breaks the host itself (0.0.0.0
// is DHCP's source, :: that of IPv6 duplicate-address detection) or hits
// no single client (broadcast, multicast), and loopback and link-local
// traffic never comes from the Internet.
var neverBan = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/32"),
	Loopback4,
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("::/128"),
	Loopback6,
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// NeverBanAddr is NeverBan for one address, without a look at the list:
// the check every event makes.
func NeverBanAddr(a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap()
	if a.Is4() {
		// Nearly every address: its first bytes rule every range out.
		if b := a.As4(); b[0] != 0 && b[0] != 127 && b[0] < 224 && (b[0] != 169 || b[1] != 254) {
			return netip.Prefix{}, false
		}
	}
	if !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() && !a.IsLinkLocalUnicast() &&
		!(a.Is4() && a.As4() == [4]byte{255, 255, 255, 255}) {
		return netip.Prefix{}, false
	}
	return NeverBan(AddrPrefix(a))
}

// NeverBan reports whether p covers an address that must never be banned
// (unspecified, loopback, link-local, multicast, broadcast), and which
// range. IPv4-mapped prefixes are unmapped first.
func NeverBan(p netip.Prefix) (netip.Prefix, bool) {
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
	}
	for _, n := range neverBan {
		if n.Overlaps(p) {
			return n, true
		}
	}
	return netip.Prefix{}, false
}
