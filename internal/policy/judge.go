// Package policy answers mail servers' live questions from the engine's
// state: Postfix's policy delegation (package postfix) and Dovecot's
// authentication policy (package dovecot). A Judge turns what the engine
// knows of a client into a protocol-neutral Verdict; each server renders
// verdicts in its own wire format and turns what it learns into Events.
package policy

import (
	"net/netip"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
)

// Engine is what a Judge needs of the engine.
type Engine interface {
	Assess(addr netip.Addr, user string, t time.Time) engine.Assessment
	Observe(ev event.Event) []event.Decision
}

// Outcome is the kind of a Verdict.
type Outcome uint8

const (
	// Allow: no opinion; the server goes on as usual.
	Allow Outcome = iota
	// Delay: answer as Allow, but only after Verdict.Delay (a tarpit).
	Delay
	// Reject: refuse the client.
	Reject
	// Blind: answer every recipient the same temporary failure, so an
	// enumerating client cannot tell valid recipients from invalid ones.
	Blind
)

func (o Outcome) String() string {
	return [...]string{"allow", "delay", "reject", "blind"}[o]
}

// Verdict is a Judge's answer.
type Verdict struct {
	Outcome Outcome
	Delay   time.Duration // for Delay
	Reason  string        // for logs, never sent to the client
}

// Tarpit configures delays for suspicious clients: Base for the first
// recent failure, doubling with each further one, at most Max.
type Tarpit struct {
	Base, Max time.Duration
}

// DefaultTarpit delays 1s, 2s, 4s ... up to 20s: below Postfix's 100s
// policy timeout and Dovecot's habit of a few seconds.
var DefaultTarpit = Tarpit{Base: time.Second, Max: 20 * time.Second}

// Judge decides live answers. It is safe for concurrent use.
type Judge struct {
	Engine Engine
	Tarpit Tarpit
	// Decided receives the decisions that events reported to the Judge
	// caused (to persist and enforce them); nil drops them.
	Decided func([]event.Decision)
	// KnownGood receives successful logins and accepted mail, to be
	// remembered; nil drops them.
	KnownGood func(event.Event)
	Now       func() time.Time // nil: time.Now

	mu   sync.Mutex
	seen map[goodKey]time.Time // good events reported recently, to report each once a while
}

func (j *Judge) now() time.Time {
	if j.Now != nil {
		return j.Now()
	}
	return time.Now()
}

// Judge answers for a client at a protocol stage. user is the account the
// client is trying (Dovecot) or has authenticated as (Postfix), if any;
// recipientStage says the question is about a recipient (for blinding).
//
// The order: a banned client is rejected; an allowlisted one is allowed; a
// client with no good history is rejected when the user it tries is being
// sprayed, unless that user logged in recently from the client's network
// (a phone's next address on its carrier, a home connection's new lease);
// an enumerating client is blinded at recipient stages; a client with recent failures, or in a
// suspect network or a surge, or with a ban pending, is delayed; everyone
// else is allowed. A known-good client is only ever rejected when banned.
//
// A client one failure short of a ban is delayed, not rejected: the mail
// servers answer a policy reject exactly like a wrong password, so a person
// who typed the right password after a few typos would be told it is wrong,
// and the reject itself, reported as a failure, would ban them. Worse, a
// tightened threshold (a surge, a suspect network: maxretry 1 or 2) would
// turn the first typo into a lockout, defeating the grace period in which a
// login cancels a pending ban. An attacker gains one guess per address; the
// failure that reaches maxretry bans it, and from then on it is rejected.
func (j *Judge) Judge(addr netip.Addr, user string, recipientStage bool) Verdict {
	if !addr.IsValid() {
		return Verdict{Reason: "no client address"}
	}
	a := j.Engine.Assess(addr, user, j.now())
	switch {
	case a.Banned:
		return Verdict{Outcome: Reject, Reason: "banned: " + a.Ban.Scenario}
	case a.Allowlisted:
		return Verdict{Reason: "allowlisted"}
	case a.KnownGood:
		return Verdict{Reason: "known-good client"}
	case a.HotUser && !a.UserNetwork:
		return Verdict{Outcome: Reject, Reason: "user " + user + " is being sprayed"}
	case a.Enumerating && recipientStage:
		return Verdict{Outcome: Blind, Reason: "enumerating recipients"}
	case a.Failures > 0 || a.Suspect != "":
		return Verdict{Outcome: Delay, Delay: j.delay(a), Reason: "suspicious: " + suspicion(a)}
	}
	return Verdict{}
}

func suspicion(a engine.Assessment) string {
	if a.Suspect != "" {
		return a.Suspect
	}
	return "recent failures"
}

func (j *Judge) delay(a engine.Assessment) time.Duration {
	t := j.Tarpit
	if t.Base <= 0 {
		t = DefaultTarpit
	}
	d := t.Base
	for i := 1; i < a.Failures && d < t.Max; i++ {
		d *= 2
	}
	return min(d, t.Max)
}

// Report feeds an event the server learnt (a failed or successful login, an
// unknown recipient, accepted mail) to the engine. Good events (logins,
// accepted mail) are passed to KnownGood, and to the engine, at most once
// every ten minutes per address and kind: a busy relay's every message need
// not be written to the store.
func (j *Judge) Report(ev event.Event) {
	if ev.Time.IsZero() {
		ev.Time = j.now()
	}
	if ev.Kind.Good() {
		if !j.firstSuccess(goodKey{ev.Addr, ev.Kind}, ev.Time) {
			return
		}
		if j.KnownGood != nil {
			j.KnownGood(ev)
		}
	}
	ds := j.Engine.Observe(ev)
	if len(ds) > 0 && j.Decided != nil {
		j.Decided(ds)
	}
}

const successEvery = 10 * time.Minute

// goodKey is a good event's address and kind.
type goodKey struct {
	addr netip.Addr
	kind event.Kind
}

func (j *Judge) firstSuccess(a goodKey, t time.Time) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.seen == nil || len(j.seen) > 100_000 {
		j.seen = map[goodKey]time.Time{}
	}
	if last, ok := j.seen[a]; ok && t.Sub(last) < successEvery {
		return false
	}
	j.seen[a] = t
	return true
}
