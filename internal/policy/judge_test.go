package policy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
)

// fixed is an Engine that knows one thing of every client.
type fixed engine.Assessment

func (f fixed) Assess(netip.Addr, string, time.Time) engine.Assessment { return engine.Assessment(f) }
func (f fixed) Observe(event.Event) []event.Decision                   { return nil }

func TestJudgeVerdicts(t *testing.T) {
	client := netip.MustParseAddr("192.0.2.7")
	tarpit := Tarpit{Base: time.Second, Max: 20 * time.Second}
	tests := []struct {
		name      string
		a         engine.Assessment
		recipient bool
		want      Outcome
		delay     time.Duration
	}{
		{"fresh", engine.Assessment{MaxRetry: 5}, false, Allow, 0},
		{"banned", engine.Assessment{Banned: true, MaxRetry: 5}, false, Reject, 0},
		{"banned known-good", engine.Assessment{Banned: true, KnownGood: true}, false, Reject, 0},
		{"known-good with failures", engine.Assessment{KnownGood: true, Failures: 4, MaxRetry: 5}, false, Allow, 0},
		{"sprayed user", engine.Assessment{HotUser: true, MaxRetry: 5}, false, Reject, 0},
		{"sprayed user, known-good client", engine.Assessment{HotUser: true, KnownGood: true}, false, Allow, 0},
		{"sprayed user, allowlisted client", engine.Assessment{HotUser: true, Allowlisted: true, Failures: 3, MaxRetry: 5}, false, Allow, 0},
		// A phone's new address on the carrier the user logs in from: its
		// password is checked, as any other client's with no failure.
		{"sprayed user, from the user's network", engine.Assessment{HotUser: true, UserNetwork: true, MaxRetry: 5}, false, Allow, 0},
		{"sprayed user, from the user's network, failures", engine.Assessment{HotUser: true, UserNetwork: true, Failures: 1, MaxRetry: 5}, false, Delay, time.Second},
		{"two typos", engine.Assessment{Failures: 2, MaxRetry: 5}, false, Delay, 2 * time.Second},
		// One failure short of a ban: the next guess is still checked (a
		// person with the right password gets in); its failure bans.
		{"one short", engine.Assessment{Failures: 4, MaxRetry: 5}, false, Delay, 8 * time.Second},
		// A surge or a suspect network tightens maxretry to 1 or 2: a typo
		// must not lock a person out before the grace period lets a login
		// cancel the pending ban.
		{"tightened threshold", engine.Assessment{Failures: 1, MaxRetry: 2, Suspect: "surge"}, false, Delay, time.Second},
		{"pending ban", engine.Assessment{Failures: 2, MaxRetry: 2, Suspect: "pending ban"}, false, Delay, 2 * time.Second},
		{"suspect network, no failure", engine.Assessment{MaxRetry: 1, Suspect: "prefix-suspect"}, false, Delay, time.Second},
		{"enumerating, at RCPT", engine.Assessment{Enumerating: true, Failures: 3, MaxRetry: 5}, true, Blind, 0},
		{"enumerating, at RCPT, one short", engine.Assessment{Enumerating: true, Failures: 4, MaxRetry: 5}, true, Blind, 0},
		{"enumerating, elsewhere", engine.Assessment{Enumerating: true, Failures: 3, MaxRetry: 5}, false, Delay, 4 * time.Second},
		{"capped delay", engine.Assessment{Failures: 30, MaxRetry: 50}, false, Delay, 20 * time.Second},
	}
	for _, tt := range tests {
		j := &Judge{Engine: fixed(tt.a), Tarpit: tarpit}
		v := j.Judge(client, "alice", tt.recipient)
		if v.Outcome != tt.want || v.Delay != tt.delay {
			t.Errorf("%s: %s %v (%s), want %s %v", tt.name, v.Outcome, v.Delay, v.Reason, tt.want, tt.delay)
		}
	}
	if v := (&Judge{Engine: fixed{Banned: true}}).Judge(netip.Addr{}, "", false); v.Outcome != Allow {
		t.Errorf("no client address: %s", v.Outcome)
	}
}
