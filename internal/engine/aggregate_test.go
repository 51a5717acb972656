package engine

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

func ev(at time.Duration, kind event.Kind, addr, user string) event.Event {
	return event.Event{Time: t0.Add(at), Service: "dovecot", Kind: kind, Addr: netip.MustParseAddr(addr), User: user}
}

func defaultEngine(t *testing.T, mut func(*Config)) *Engine {
	t.Helper()
	cfg := DefaultConfig(Jail{Name: "mail", Services: []string{"dovecot", "postfix", "sshd"}, MaxRetry: 5, FindTime: 10 * time.Minute, BanTime: 10 * time.Minute})
	if mut != nil {
		mut(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// observe feeds events and returns "scenario target" for each decision.
func observe(e *Engine, evs ...event.Event) []string {
	var out []string
	for _, x := range evs {
		out = append(out, names(e.Observe(x))...)
	}
	return out
}

// settle lets deferred bans due by t0+at take effect, and names them.
func settle(e *Engine, at time.Duration) []string { return names(e.Tick(t0.Add(at))) }

// names names the bans among ds; carve-outs (Allow decisions) are named
// by carves.
func names(ds []event.Decision) []string {
	var out []string
	for _, d := range ds {
		if d.Action == event.Ban {
			out = append(out, d.Scenario+" "+d.Target.String())
		}
	}
	return out
}

func targets(got []string) map[string]bool {
	m := map[string]bool{}
	for _, g := range got {
		m[g[strings.IndexByte(g, ' ')+1:]] = true
	}
	return m
}

// A prefix whose ban has expired is banned again on its next bad address,
// whether or not Tick has pruned the expired ban yet: replay ticks once a
// minute and the daemon every second, and both must decide alike.
func TestPrefixRebanBeforeTick(t *testing.T) {
	e := defaultEngine(t, func(c *Config) { c.Spray = Spray{} })
	got := observe(e,
		ev(0, event.AuthFailure, "203.0.113.1", "a"),
		ev(time.Minute, event.AuthFailure, "203.0.113.2", "b"),
		ev(2*time.Minute, event.AuthFailure, "203.0.113.3", "c"),
	)
	if fmt.Sprint(got) != "[prefix 203.0.113.0/24]" {
		t.Fatalf("decisions %v", got)
	}
	// The 1h ban ended at 1h2m; no Tick since.
	got = observe(e, ev(time.Hour+2*time.Minute+5*time.Second, event.AuthFailure, "203.0.113.4", "d"))
	if fmt.Sprint(got) != "[prefix 203.0.113.0/24]" {
		t.Fatalf("after expiry, before Tick: decisions %v, want the prefix banned again", got)
	}
	if d, ok := e.Banned(netip.MustParseAddr("203.0.113.9"), t0.Add(time.Hour+3*time.Minute)); !ok || d.Duration != 2*time.Hour {
		t.Fatalf("second prefix ban: %+v %v, want 2h (escalated)", d, ok)
	}
}

func TestUserSpray(t *testing.T) {
	e := defaultEngine(t, func(c *Config) { c.Prefixes = Prefixes{} })
	var evs []event.Event
	for i := range 6 { // six addresses in six different /16s, one failure each
		evs = append(evs, ev(time.Duration(i)*time.Minute, event.AuthFailure, fmt.Sprintf("198.%d.0.1", 10+i), "info@example.org"))
	}
	// 198.11.0.1 logs in before the name is hot, 198.13.0.1 within the
	// grace period after it: neither is banned with the others.
	evs = slices.Insert(evs, 3, ev(2*time.Minute+30*time.Second, event.AuthSuccess, "198.11.0.1", "info@example.org"))
	evs = slices.Insert(evs, 6, ev(4*time.Minute+30*time.Second, event.AuthSuccess, "198.13.0.1", "info@example.org"))
	if got := observe(e, evs...); len(got) != 0 {
		t.Fatalf("spray bans before the grace period: %v", got)
	}
	got := settle(e, 6*time.Minute+90*time.Second)
	// The fifth address makes the name hot and is banned; so are the
	// addresses that failed for it before (10, 12), the same botnet; then
	// the sixth.
	want := []string{"user-spray 198.14.0.1/32", "user-spray 198.10.0.1/32", "user-spray 198.12.0.1/32", "user-spray 198.15.0.1/32"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	if d, _ := e.Banned(netip.MustParseAddr("198.14.0.1"), t0.Add(7*time.Minute)); d.Duration != 12*time.Hour || !d.Start.Equal(t0.Add(4*time.Minute+90*time.Second)) {
		t.Fatalf("spray ban %+v, want 12h from the end of the grace period", d)
	}
	// Case does not matter; a known-good address is never sprayed.
	e.Observe(ev(7*time.Minute, event.AuthSuccess, "203.0.113.50", "INFO@example.org"))
	if got := observe(e, ev(8*time.Minute, event.AuthFailure, "203.0.113.50", "Info@Example.org")); len(got) != 0 {
		t.Fatalf("known-good address banned by spray: %v", got)
	}
	// A person who mistypes once while their account is sprayed, and logs
	// in within the grace period, is not banned.
	observe(e, ev(9*time.Minute, event.AuthFailure, "192.0.2.44", "info@example.org"), ev(9*time.Minute+20*time.Second, event.AuthSuccess, "192.0.2.44", "info@example.org"))
	if got := settle(e, 15*time.Minute); targets(got)["192.0.2.44/32"] {
		t.Fatalf("mistyping user banned: %v", got)
	}
	// Outside the window the user cools down.
	observe(e, ev(3*time.Hour, event.AuthFailure, "198.99.0.1", "info@example.org"))
	if got := settle(e, 4*time.Hour); len(got) != 0 {
		t.Fatalf("spray outlived its window: %v", got)
	}
}

func TestPrefixAggregation(t *testing.T) {
	e := defaultEngine(t, func(c *Config) { c.Spray = Spray{} })
	got := observe(e,
		ev(0, event.AuthFailure, "203.0.113.1", "a"),
		ev(time.Minute, event.AuthFailure, "203.0.113.2", "b"),
		ev(2*time.Minute, event.AuthFailure, "203.0.113.3", "c"),
		ev(3*time.Minute, event.AuthFailure, "203.0.113.4", "d"), // covered by the prefix ban: not counted
	)
	if fmt.Sprint(got) != "[prefix 203.0.113.0/24]" {
		t.Fatalf("decisions %v", got)
	}
	if d, ok := e.Banned(netip.MustParseAddr("203.0.113.200"), t0.Add(4*time.Minute)); !ok || d.Scenario != "prefix" {
		t.Fatal("address in the banned prefix not covered")
	}
	if d, _ := e.Banned(netip.MustParseAddr("203.0.113.200"), t0.Add(4*time.Minute)); d.Duration != time.Hour {
		t.Fatalf("prefix ban lasts %v, want the prefix ban time 1h", d.Duration)
	}
}

// A prefix holding a known-good address is banned all the same, with the
// good address carved out: it keeps its normal tolerance, its neighbours
// are banned. A prefix holding an allowlisted address is never banned: its
// addresses become suspects instead.
func TestPrefixCarveOutAndAllowlist(t *testing.T) {
	bad := []event.Event{
		ev(time.Minute, event.AuthFailure, "192.0.2.1", "x"),
		ev(2*time.Minute, event.AuthFailure, "192.0.2.2", "y"),
		ev(3*time.Minute, event.AuthFailure, "192.0.2.3", "z"),
	}
	t.Run("known-good", func(t *testing.T) {
		e := defaultEngine(t, func(c *Config) { c.Spray = Spray{} })
		carved := e.Observe(ev(0, event.AuthSuccess, "192.0.2.77", "alice"))
		if len(carved) != 1 || carved[0].Action != event.Allow || carved[0].Target.String() != "192.0.2.77/32" ||
			carved[0].Scenario != "known-good" || carved[0].Duration != DefaultKnownGood.TTL {
			t.Fatalf("login: decisions %+v, want one 90d carve-out of 192.0.2.77", carved)
		}
		var ban event.Decision
		for _, x := range bad {
			for _, d := range e.Observe(x) {
				ban = d
			}
		}
		if ban.Target.String() != "192.0.2.0/24" || !strings.HasSuffix(ban.Reason, "; 1 address carved out (known-good or delivering relay)") {
			t.Fatalf("prefix ban %+v, want 192.0.2.0/24 naming one carved-out address", ban)
		}
		at := t0.Add(5 * time.Minute)
		if _, banned := e.Banned(netip.MustParseAddr("192.0.2.77"), at); banned {
			t.Fatal("the known-good address is banned by its prefix's ban")
		}
		if _, banned := e.Banned(netip.MustParseAddr("192.0.2.99"), at); !banned {
			t.Fatal("a neighbour is not banned")
		}
		if a := e.Assess(netip.MustParseAddr("192.0.2.77"), "alice", at); a.Banned || !a.KnownGood {
			t.Fatalf("policy assessment of the carved-out address: %+v", a)
		}
		// It keeps its normal tolerance, counted while the prefix is banned.
		for i := range 4 {
			if got := observe(e, ev(5*time.Minute+time.Duration(i)*time.Second, event.AuthFailure, "192.0.2.77", "alice")); len(got) != 0 {
				t.Fatalf("known-good address banned after %d typos: %v", i+1, got)
			}
		}
		if got := observe(e, ev(6*time.Minute, event.AuthFailure, "192.0.2.77", "alice")); fmt.Sprint(got) != "[ip-failures 192.0.2.77/32]" {
			t.Fatalf("fifth failure for one user from a known-good address: %v", got)
		}
		// Now banned as an address: the carve-out no longer helps it.
		if _, banned := e.Banned(netip.MustParseAddr("192.0.2.77"), t0.Add(7*time.Minute)); !banned {
			t.Fatal("an address ban of a carved-out address is not in force")
		}
	})
	t.Run("allowlisted", func(t *testing.T) {
		e := defaultEngine(t, func(c *Config) {
			c.Spray = Spray{}
			c.Allow = allowList{netip.MustParsePrefix("192.0.2.77/32")}
		})
		if got := observe(e, bad...); len(got) != 0 {
			t.Fatalf("prefix holding an allowlisted address: %v", got)
		}
		// Its addresses are suspects from the third bad one on: one
		// failure bans (after the grace period).
		observe(e, ev(4*time.Minute, event.AuthFailure, "192.0.2.9", "w"))
		if got := settle(e, 6*time.Minute); fmt.Sprint(got) != "[prefix-suspect 192.0.2.3/32 prefix-suspect 192.0.2.9/32]" {
			t.Fatalf("suspect decisions %v", got)
		}
	})
}

// TestSuspectPrefix: the prefix a suspect address is flagged by, at the
// aggregation level configured (here a /22), for the fleet's signal.
func TestSuspectPrefix(t *testing.T) {
	e := defaultEngine(t, func(c *Config) {
		c.Spray = Spray{}
		c.Prefixes.V4 = []Level{{Bits: 22, Addresses: 3}}
		c.Allow = allowList{netip.MustParsePrefix("192.0.3.77/32")}
	})
	observe(e, ev(time.Minute, event.AuthFailure, "192.0.0.1", "x"), ev(2*time.Minute, event.AuthFailure, "192.0.1.2", "y"))
	if p, ok := e.SuspectPrefix(netip.MustParseAddr("192.0.2.3"), t0.Add(3*time.Minute)); ok {
		t.Fatalf("two bad addresses: suspect by %v", p)
	}
	observe(e, ev(3*time.Minute, event.AuthFailure, "192.0.2.3", "z"))
	for addr, want := range map[string]string{"192.0.2.3": "192.0.0.0/22", "::ffff:192.0.3.9": "192.0.0.0/22", "192.0.4.1": ""} {
		p, ok := e.SuspectPrefix(netip.MustParseAddr(addr), t0.Add(4*time.Minute))
		got := ""
		if ok {
			got = p.String()
		}
		if got != want {
			t.Errorf("%s: suspect by %q, want %q", addr, got, want)
		}
	}
}

func TestIPv6PrefixAndMapped(t *testing.T) {
	e := defaultEngine(t, func(c *Config) { c.Spray = Spray{} })
	got := observe(e,
		ev(0, event.AuthFailure, "2001:db8:5:6::1", "a"),
		ev(time.Second, event.AuthFailure, "2001:db8:5:6:aaaa::2", "a"),
		ev(2*time.Second, event.AuthFailure, "2001:db8:5:7::3", "a"), // another /64
		ev(3*time.Second, event.AuthFailure, "2001:db8:5:6:ffff:1:2:3", "a"),
	)
	if fmt.Sprint(got) != "[prefix 2001:db8:5:6::/64]" {
		t.Fatalf("decisions %v", got)
	}
	e2 := defaultEngine(t, func(c *Config) { c.Spray = Spray{} })
	got = observe(e2,
		ev(0, event.AuthFailure, "::ffff:198.51.100.1", "a"),
		ev(time.Second, event.AuthFailure, "198.51.100.2", "a"),
		ev(2*time.Second, event.AuthFailure, "::ffff:198.51.100.3", "a"),
	)
	if fmt.Sprint(got) != "[prefix 198.51.100.0/24]" {
		t.Fatalf("mapped addresses: decisions %v", got)
	}
}

func TestSurge(t *testing.T) {
	e := defaultEngine(t, func(c *Config) { c.Spray, c.Prefixes = Spray{}, Prefixes{} })
	// A quiet hour: a failure every two minutes from scattered addresses.
	for i := range 30 {
		observe(e, ev(time.Duration(i)*2*time.Minute, event.AuthFailure, fmt.Sprintf("10.%d.1.1", i), "u"))
	}
	if e.Stats().Surge {
		t.Fatal("surge on a quiet server")
	}
	// Then 60 failures in one minute from many addresses.
	base := time.Hour
	for i := range 60 {
		observe(e, ev(base+time.Duration(i)*time.Second, event.AuthFailure, fmt.Sprintf("10.200.%d.1", i), "u"))
	}
	if !e.Stats().Surge {
		t.Fatal("no surge after a jump to 60 failures a minute")
	}
	// In surge mode two failures ban a new address.
	observe(e, ev(base+61*time.Second, event.AuthFailure, "172.16.0.1", "v"), ev(base+62*time.Second, event.AuthFailure, "172.16.0.1", "v"))
	if got := settle(e, base+5*time.Minute); !targets(got)["172.16.0.1/32"] || !strings.HasPrefix(got[len(got)-1], "surge") {
		t.Fatalf("surge decisions %v", got)
	}
	// Known-good addresses keep their tolerance in a surge.
	observe(e, ev(base+63*time.Second, event.AuthSuccess, "172.16.9.9", "w"))
	observe(e, ev(base+64*time.Second, event.AuthFailure, "172.16.9.9", "w"), ev(base+65*time.Second, event.AuthFailure, "172.16.9.9", "w"))
	if got := settle(e, base+10*time.Minute); targets(got)["172.16.9.9/32"] {
		t.Fatalf("known-good banned in a surge: %v", got)
	}
	// Quiet again: surge ends after the hold time.
	observe(e, ev(base+30*time.Minute, event.AuthFailure, "10.77.0.1", "u"))
	if e.Stats().Surge {
		t.Fatal("surge did not end")
	}
}

func TestSlow(t *testing.T) {
	e := defaultEngine(t, func(c *Config) { c.Spray, c.Prefixes = Spray{}, Prefixes{} })
	var got []string
	for i := range 8 { // one failure every 20 minutes: never 5 within 10m
		got = append(got, observe(e, ev(time.Duration(i)*20*time.Minute, event.AuthFailure, "198.51.100.9", "root"))...)
	}
	if fmt.Sprint(got) != "[slow 198.51.100.9/32]" {
		t.Fatalf("decisions %v", got)
	}
}

type asnTable map[netip.Prefix]uint32

func (a asnTable) ASN(x netip.Addr) (uint32, string, bool) {
	for p, n := range a {
		if p.Contains(x) {
			return n, "Example Hosting", true
		}
	}
	return 0, "", false
}

func TestASNLowersThreshold(t *testing.T) {
	e := defaultEngine(t, func(c *Config) {
		c.Spray, c.Prefixes = Spray{}, Prefixes{}
		c.ASNs = ASNs{Lookup: asnTable{netip.MustParsePrefix("100.64.0.0/10"): 64500}, Addresses: 4, Window: time.Hour, MaxRetry: 1}
	})
	for i := range 4 { // four bad addresses of AS64500, in different /24s
		observe(e, ev(time.Duration(i)*time.Second, event.AuthFailure, fmt.Sprintf("100.%d.0.1", 64+i), "a"))
	}
	observe(e, ev(time.Minute, event.AuthFailure, "100.100.5.5", "a"), ev(2*time.Minute, event.AuthFailure, "198.51.100.5", "a"))
	if got := settle(e, 10*time.Minute); fmt.Sprint(got) != "[asn 100.100.5.5/32]" {
		t.Fatalf("decisions %v (an address outside the AS must not be banned)", got)
	}
}

// countingASN counts the lookups made through it.
type countingASN struct {
	asnTable
	n *int
}

func (c countingASN) ASN(x netip.Addr) (uint32, string, bool) {
	*c.n++
	return c.asnTable.ASN(x)
}

// TestASNLookedUpOncePerEvent: the AS aggregation and the suspect-AS
// threshold share one database lookup per event (each was one).
func TestASNLookedUpOncePerEvent(t *testing.T) {
	lookups := 0
	e := defaultEngine(t, func(c *Config) {
		c.Spray, c.Prefixes = Spray{}, Prefixes{}
		c.ASNs = ASNs{Lookup: countingASN{asnTable{netip.MustParsePrefix("100.64.0.0/10"): 64500}, &lookups}, Addresses: 4, Window: time.Hour, MaxRetry: 1}
	})
	for i := range 10 {
		observe(e, ev(time.Duration(i)*time.Second, event.AuthFailure, fmt.Sprintf("100.%d.0.1", 64+i), "a"))
	}
	if lookups != 10 {
		t.Fatalf("%d lookups for 10 events", lookups)
	}
	if got := settle(e, 10*time.Minute); len(got) == 0 {
		t.Fatal("the suspect AS banned nothing")
	}
}

func TestKnownGoodTypoNeverBans(t *testing.T) {
	e := defaultEngine(t, nil)
	observe(e, ev(0, event.AuthSuccess, "198.51.100.20", "alice"))
	// Attackers make everything hot around it: a sprayed user, a bad prefix, a surge.
	for i := range 80 {
		observe(e, ev(time.Minute+time.Duration(i)*500*time.Millisecond, event.UnknownUser, fmt.Sprintf("198.51.100.%d", 100+i), "alice"))
	}
	for i := range 4 {
		if got := observe(e, ev(3*time.Minute+time.Duration(i)*time.Second, event.AuthFailure, "198.51.100.20", "alice")); targets(got)["198.51.100.20/32"] {
			t.Fatalf("known-good address banned after %d typos: %v", i+1, got)
		}
	}
	if got := settle(e, time.Hour); targets(got)["198.51.100.20/32"] || targets(got)["198.51.100.0/24"] {
		t.Fatalf("known-good address banned: %v", got)
	}
	if e.Stats().KnownGood != 1 {
		t.Fatalf("known-good = %d", e.Stats().KnownGood)
	}
}

func TestAssess(t *testing.T) {
	e := defaultEngine(t, func(c *Config) { c.Prefixes = Prefixes{} })
	now := t0.Add(time.Hour)
	at := func(d time.Duration) time.Duration { return time.Hour + d }
	observe(e, ev(at(0), event.AuthSuccess, "198.51.100.20", "alice"))
	observe(e, ev(at(time.Second), event.AuthFailure, "192.0.2.5", "bob"), ev(at(2*time.Second), event.AuthFailure, "192.0.2.5", "bob"))
	for i := range 3 {
		observe(e, ev(at(time.Duration(3+i)*time.Second), event.RecipientUnknown, "192.0.2.6", fmt.Sprintf("u%d@example.org", i)))
	}
	for i := range 5 {
		observe(e, ev(at(time.Duration(10+i)*time.Second), event.AuthFailure, fmt.Sprintf("10.%d.0.1", i), "info"))
	}
	now = now.Add(time.Minute)
	if a := e.Assess(netip.MustParseAddr("198.51.100.20"), "alice", now); !a.KnownGood || a.Banned || a.Failures != 0 {
		t.Errorf("known-good: %+v", a)
	}
	if a := e.Assess(netip.MustParseAddr("192.0.2.5"), "bob", now); a.Failures != 2 || a.MaxRetry != 5 || a.Banned || a.KnownGood {
		t.Errorf("failing address: %+v", a)
	}
	if a := e.Assess(netip.MustParseAddr("::ffff:192.0.2.6"), "", now); !a.Enumerating {
		t.Errorf("enumerator not flagged: %+v", a)
	}
	if a := e.Assess(netip.MustParseAddr("203.0.113.1"), "INFO", now); !a.HotUser || a.Banned {
		t.Errorf("sprayed user not hot: %+v", a)
	}
	if a := e.Assess(netip.MustParseAddr("10.4.0.1"), "", now); a.Banned || a.Suspect != "pending ban" {
		t.Errorf("sprayer in its grace period: %+v", a)
	}
	e.Tick(now.Add(2 * time.Minute))
	if a := e.Assess(netip.MustParseAddr("10.4.0.1"), "", now.Add(2*time.Minute)); !a.Banned || a.Ban.Scenario != "user-spray" {
		t.Errorf("banned sprayer: %+v", a)
	}
}

// TestAssessUserNetwork: while a user name is sprayed, a new address is
// told apart from a stranger's by the networks the user logged in from:
// its IPv6 /32 (a phone's next /64 on its carrier) or IPv4 /16.
func TestAssessUserNetwork(t *testing.T) {
	e := defaultEngine(t, nil)
	observe(e, ev(0, event.AuthSuccess, "2a02:3032:1234:5678::9", "alice"), ev(time.Second, event.AuthSuccess, "198.51.100.20", "alice"))
	for i := range 5 {
		observe(e, ev(time.Minute+time.Duration(i)*time.Second, event.AuthFailure, fmt.Sprintf("10.%d.0.1", i), "alice"))
		observe(e, ev(time.Minute+time.Duration(i)*time.Second, event.AuthFailure, fmt.Sprintf("10.%d.0.2", i), "bob"))
	}
	now := t0.Add(2 * time.Minute)
	tests := []struct {
		addr, user string
		at         time.Time
		want       bool
	}{
		{"2a02:3032:ffff:1::7", "alice", now, true},
		{"2a02:3032:1234:5678::10", "ALICE", now, true},
		{"198.51.7.7", "alice", now, true},
		{"2a02:3033::7", "alice", now, false},
		{"198.52.100.20", "alice", now, false},
		{"2a02:3032:ffff:1::7", "bob", now, false},
		// The logins are forgotten after KnownGood.TTL (alice sprayed again).
		{"2a02:3032:ffff:1::7", "alice", t0.Add(DefaultKnownGood.TTL + 2*time.Minute), false},
	}
	for i := range 5 {
		observe(e, ev(DefaultKnownGood.TTL+time.Minute+time.Duration(i)*time.Second, event.AuthFailure, fmt.Sprintf("10.%d.0.3", i), "alice"))
	}
	for _, tc := range tests {
		a := e.Assess(netip.MustParseAddr(tc.addr), tc.user, tc.at)
		if !a.HotUser {
			t.Fatalf("%s as %s: user not hot: %+v", tc.addr, tc.user, a)
		}
		if a.UserNetwork != tc.want {
			t.Errorf("%s as %s at %s: UserNetwork = %v, want %v", tc.addr, tc.user, tc.at.Sub(t0), a.UserNetwork, tc.want)
		}
	}
}

// TestAssessUserNetworkAS: with an ASN database, the user's autonomous
// system counts as the user's network too (a carrier whose pool spans
// several /16s), also after a restart.
func TestAssessUserNetworkAS(t *testing.T) {
	mk := func() *Engine {
		return defaultEngine(t, func(c *Config) { c.ASNs.Lookup = asnTable{netip.MustParsePrefix("100.64.0.0/10"): 64500} })
	}
	e := mk()
	observe(e, ev(0, event.AuthSuccess, "100.64.1.1", "alice"))
	spray := func(e *Engine) {
		for i := range 5 {
			observe(e, ev(time.Minute+time.Duration(i)*time.Second, event.AuthFailure, fmt.Sprintf("10.%d.0.1", i), "alice"))
		}
	}
	spray(e)
	now := t0.Add(2 * time.Minute)
	for name, e := range map[string]*Engine{"running": e, "restarted": restarted(t, e, mk)} {
		for addr, want := range map[string]bool{"100.100.9.9": true, "100.64.200.1": true, "100.128.0.1": false} {
			a := e.Assess(netip.MustParseAddr(addr), "alice", now)
			if !a.HotUser || a.UserNetwork != want {
				t.Errorf("%s: %s: HotUser %v, UserNetwork %v, want %v", name, addr, a.HotUser, a.UserNetwork, want)
			}
		}
	}
	// Without the database, another /16 of the same carrier is a stranger's.
	e = defaultEngine(t, nil)
	observe(e, ev(0, event.AuthSuccess, "100.64.1.1", "alice"))
	spray(e)
	if a := e.Assess(netip.MustParseAddr("100.100.9.9"), "alice", now); a.UserNetwork {
		t.Errorf("no ASN database: %+v", a)
	}
}

// TestAssessAllowlisted: the live policy servers learn that an address is
// allowlisted, or one the engine never bans, so that nothing refuses it.
func TestAssessAllowlisted(t *testing.T) {
	e := defaultEngine(t, func(c *Config) { c.Allow = allowList{netip.MustParsePrefix("192.0.2.77/32")} })
	for addr, want := range map[string]bool{"192.0.2.77": true, "::ffff:192.0.2.77": true, "127.0.0.1": true, "192.0.2.78": false} {
		if a := e.Assess(netip.MustParseAddr(addr), "info", t0); a.Allowlisted != want {
			t.Errorf("%s: Allowlisted = %v, want %v", addr, a.Allowlisted, want)
		}
	}
}

// TestKnownGoodNATTolerancePerUser: several people behind one known-good
// address each mistype below the threshold; together they exceed it.
func TestKnownGoodNATTolerancePerUser(t *testing.T) {
	e := defaultEngine(t, nil)
	nat := "203.0.113.10"
	for i, u := range []string{"ann", "ben", "cy", "dee"} {
		observe(e, ev(time.Duration(i)*time.Second, event.AuthSuccess, nat, u))
	}
	var got []string
	for i, u := range []string{"ann", "ann", "ben", "ben", "cy", "cy", "dee", "dee", "ann", "ben"} {
		got = append(got, observe(e, ev(time.Minute+time.Duration(i)*20*time.Second, event.AuthFailure, nat, u))...)
	}
	if len(got) != 0 {
		t.Fatalf("shared NAT banned for its users' typos: %v", got)
	}
	// One user failing maxretry times is still banned, NAT or not.
	for i := range 5 {
		got = append(got, observe(e, ev(5*time.Minute+time.Duration(i)*time.Second, event.AuthFailure, nat, "eve"))...)
	}
	if fmt.Sprint(got) != "[ip-failures 203.0.113.10/32]" {
		t.Fatalf("decisions %v", got)
	}
}

// TestLoginForgivesTypos: failures before a successful login do not count.
func TestLoginForgivesTypos(t *testing.T) {
	e := defaultEngine(t, nil)
	observe(e, ev(0, event.AuthFailure, "198.51.100.30", "zoe"), ev(time.Second, event.AuthFailure, "198.51.100.30", "zoe"),
		ev(2*time.Second, event.AuthFailure, "198.51.100.30", "zoe"), ev(3*time.Second, event.AuthFailure, "198.51.100.30", "zoe"),
		ev(4*time.Second, event.AuthSuccess, "198.51.100.30", "zoe"))
	if a := e.Assess(netip.MustParseAddr("198.51.100.30"), "zoe", t0.Add(5*time.Second)); a.Failures != 0 || !a.KnownGood {
		t.Fatalf("after login: %+v", a)
	}
}
