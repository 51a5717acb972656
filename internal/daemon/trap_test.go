package daemon

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
)

// TestTrapConvert: only address bans of the trap's jails and scenarios
// become traps; with the trap off, a restored trap is a ban again.
func TestTrapConvert(t *testing.T) {
	tr := &trapper{jails: map[string]bool{"postfix": true}, scenarios: map[string]bool{"ip-failures": true}}
	addr := event.AddrPrefix(netip.MustParseAddr("203.0.113.7"))
	for _, c := range []struct {
		tr   *trapper
		d    event.Decision
		want event.Action
	}{
		{tr, event.Decision{Target: addr, Action: event.Ban, Jail: "postfix", Scenario: "ip-failures"}, event.Trap},
		{tr, event.Decision{Target: addr, Action: event.Ban, Jail: "sshd", Scenario: "ip-failures"}, event.Ban},
		{tr, event.Decision{Target: addr, Action: event.Ban, Jail: "postfix", Scenario: "manual"}, event.Ban},
		{tr, event.Decision{Target: netip.MustParsePrefix("203.0.113.0/24"), Action: event.Ban, Jail: "postfix", Scenario: "ip-failures"}, event.Ban},
		{tr, event.Decision{Target: addr, Action: event.Allow, Jail: "postfix", Scenario: "ip-failures"}, event.Allow},
		{nil, event.Decision{Target: addr, Action: event.Trap, Jail: "postfix", Scenario: "ip-failures"}, event.Ban},
		{nil, event.Decision{Target: addr, Action: event.Ban, Jail: "postfix", Scenario: "ip-failures"}, event.Ban},
	} {
		if got := c.tr.convert(c.d).Action; got != c.want {
			t.Errorf("%+v (trap on: %v): %s, want %s", c.d, c.tr != nil, got, c.want)
		}
	}
	bans := asBans([]event.Decision{{Action: event.Trap, Start: time.Now()}, {Action: event.Ban}})
	if bans[0].Action != event.Ban || bans[1].Action != event.Ban {
		t.Errorf("asBans: %+v", bans)
	}
}

func TestTrapRedirect(t *testing.T) {
	cfg, err := config.Parse("r.toml", []byte("[trap]\nenabled = true\nlisteners = [{ port = 587, listen = \":10587\", protocol = \"submission\" }, { port = 993, listen = \"[::]:10993\", protocol = \"imaps\" }]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := trapRedirect(cfg)
	if r == nil || len(r.Ports) != 2 || r.Ports[587] != 10587 || r.Ports[993] != 10993 {
		t.Fatalf("redirect %+v", r)
	}
	if trapRedirect(config.Default()) != nil {
		t.Fatal("the trap is on by default")
	}
}
