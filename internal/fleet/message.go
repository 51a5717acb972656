// Package fleet shares decisions and signals between Rampart nodes over
// NATS JetStream: an embedded NATS server for one host or a small fleet,
// or an external NATS cluster, with the same client code. Every message is
// signed with its node's NKey (Ed25519) and judged on arrival by a trust
// policy per peer; what a node applies locally is the daemon's business
// (allowlists and known-good clients always win there).
//
// The package's files, by concern: message.go (the wire format, its
// signature and limits), subject.go (subjects and stream names), trust.go
// (the trust policy and quorum), server.go (the embedded server), node.go
// (connection, streams, publishing with an outbox, replaying consumers).
package fleet

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nkeys"

	"github.com/rampart-dev/rampart/internal/event"
)

// Kind says what a message is about.
type Kind string

// The kinds of message.
const (
	KindBan       Kind = "ban"        // a decision in force: ban Target until End
	KindRevoke    Kind = "revoke"     // the node lifted its ban of Target
	KindHotUser   Kind = "hot-user"   // User is being sprayed from many addresses, until End
	KindBadPrefix Kind = "bad-prefix" // Target holds many bad addresses, until End
	KindSuspect   Kind = "suspect"    // Target, one address, failed on the node without being banned, until End
)

// Limits on what a message may hold: a larger one is rejected whole, a
// longer field is cut when published.
const (
	MaxMessage = 4096
	maxReason  = 512
	maxName    = 64
	maxUser    = 64
	// maxSkew is how far in the future a message's start may lie.
	maxSkew = 5 * time.Minute
	// maxSignalTTL bounds how long a signal can last.
	maxSignalTTL = 7 * 24 * time.Hour
)

// Message is one fact a node shares.
type Message struct {
	V        int       `json:"v"`
	Kind     Kind      `json:"kind"`
	Node     string    `json:"node"` // the publisher's public NKey (U…)
	Name     string    `json:"name,omitempty"`
	Target   string    `json:"target,omitempty"` // an address or CIDR prefix
	User     string    `json:"user,omitempty"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"` // zero: until revoked (bans only)
	Scenario string    `json:"scenario,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Jail     string    `json:"jail,omitempty"`
}

// FromDecision is the ban message for d.
func FromDecision(d event.Decision) Message {
	return Message{V: 1, Kind: KindBan, Target: d.Target.String(), Start: d.Start, End: d.End(),
		Scenario: d.Scenario, Reason: d.Reason, Jail: d.Jail}
}

// Prefix returns the message's target.
func (m Message) Prefix() (netip.Prefix, error) {
	return event.ParseTarget(m.Target)
}

// Decision is the ban a KindBan message asks for, from origin.
func (m Message) Decision(origin string) (event.Decision, error) {
	p, err := m.Prefix()
	if err != nil {
		return event.Decision{}, err
	}
	d := event.Decision{Target: p, Action: event.Ban, Start: m.Start, Scenario: m.Scenario, Reason: m.Reason, Jail: m.Jail, Origin: origin}
	if !m.End.IsZero() {
		d.Duration = m.End.Sub(m.Start)
	}
	return d, nil
}

// Expired reports whether the message no longer holds at now.
func (m Message) Expired(now time.Time) bool {
	return !m.End.IsZero() && !now.Before(m.End)
}

// Key identifies what the message is about, the same for every node: the
// target, or the user name's hash.
func (m Message) Key() string {
	switch m.Kind {
	case KindHotUser:
		h := sha256.Sum256([]byte(strings.ToLower(m.User)))
		return hex.EncodeToString(h[:12])
	default:
		p, err := m.Prefix()
		if err != nil {
			return "invalid"
		}
		return targetToken(p)
	}
}

// Signed is a message as it travels: its JSON and its signature.
type Signed struct {
	Data []byte
	Sig  string // base64url of the Ed25519 signature of Data
}

// Sign trims m to the limits, stamps it with kp's public key and signs it.
func Sign(m Message, kp nkeys.KeyPair, name string) (Signed, Message, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return Signed{}, m, err
	}
	m.V, m.Node, m.Name = 1, pub, cut(name, maxName)
	m.Reason, m.User = cut(m.Reason, maxReason), cut(m.User, maxUser)
	m.Scenario, m.Jail = cut(m.Scenario, maxName), cut(m.Jail, maxName)
	data, err := json.Marshal(m)
	if err != nil {
		return Signed{}, m, err
	}
	if len(data) > MaxMessage {
		return Signed{}, m, fmt.Errorf("message of %d bytes over %d", len(data), MaxMessage)
	}
	sig, err := kp.Sign(data)
	if err != nil {
		return Signed{}, m, err
	}
	return Signed{Data: data, Sig: base64.RawURLEncoding.EncodeToString(sig)}, m, nil
}

// ErrBadMessage wraps every reason a received message is rejected.
var ErrBadMessage = errors.New("bad fleet message")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadMessage, fmt.Sprintf(format, args...))
}

// Verify checks a received message: its size, its signature by the node
// it names, its fields and its times against now. Errors wrap
// ErrBadMessage.
func Verify(s Signed, now time.Time) (Message, error) {
	var m Message
	if len(s.Data) > MaxMessage {
		return m, bad("%d bytes over %d", len(s.Data), MaxMessage)
	}
	if err := json.Unmarshal(s.Data, &m); err != nil {
		return m, bad("not JSON: %v", err)
	}
	if !nkeys.IsValidPublicUserKey(m.Node) {
		return m, bad("node %q is not a user public key", cut(m.Node, 60))
	}
	sig, err := base64.RawURLEncoding.DecodeString(s.Sig)
	if err != nil {
		return m, bad("signature not base64url")
	}
	pk, err := nkeys.FromPublicKey(m.Node)
	if err != nil {
		return m, bad("node key: %v", err)
	}
	if err := pk.Verify(s.Data, sig); err != nil {
		return m, bad("signature does not verify for node %s", m.Node)
	}
	return m, m.Check(now)
}

// Check validates a message's fields and times (after its signature).
func (m Message) Check(now time.Time) error {
	if m.V != 1 {
		return bad("version %d", m.V)
	}
	if !utf8.ValidString(m.Name+m.User+m.Reason+m.Scenario+m.Jail) || len(m.Name) > maxName || len(m.User) > maxUser || len(m.Reason) > maxReason {
		return bad("text fields too long or not UTF-8")
	}
	if m.Start.IsZero() || m.Start.After(now.Add(maxSkew)) {
		return bad("start %s is missing or in the future", m.Start.Format(time.RFC3339))
	}
	if !m.End.IsZero() && !m.End.After(m.Start) {
		return bad("ends before it starts")
	}
	switch m.Kind {
	case KindBan, KindRevoke, KindBadPrefix:
		if _, err := m.Prefix(); err != nil {
			return bad("target: %v", err)
		}
	case KindSuspect:
		p, err := m.Prefix()
		if err != nil {
			return bad("target: %v", err)
		}
		if !p.IsSingleIP() {
			return bad("suspect target %s is not one address", p)
		}
	case KindHotUser:
		if strings.TrimSpace(m.User) == "" {
			return bad("hot-user without a user")
		}
	default:
		return bad("unknown kind %q", cut(string(m.Kind), 20))
	}
	if (m.Kind == KindHotUser || m.Kind == KindBadPrefix || m.Kind == KindSuspect) && (m.End.IsZero() || m.End.Sub(m.Start) > maxSignalTTL) {
		return bad("signal without an end or lasting over %s", maxSignalTTL)
	}
	return nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
