package engine

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

var t0 = time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)

func fail(at time.Duration, addr string) event.Event {
	return event.Event{Time: t0.Add(at), Service: "sshd", Kind: event.AuthFailure, Addr: netip.MustParseAddr(addr), User: "root"}
}

func newTestEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	if cfg.Jails == nil {
		cfg.Jails = []Jail{{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: time.Hour}}
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestThreshold(t *testing.T) {
	tests := []struct {
		name   string
		events []event.Event
		bans   []string // targets banned, in order
	}{
		{"below threshold", []event.Event{fail(0, "192.0.2.1"), fail(time.Minute, "192.0.2.1")}, nil},
		{"at threshold", []event.Event{fail(0, "192.0.2.1"), fail(time.Minute, "192.0.2.1"), fail(2*time.Minute, "192.0.2.1")}, []string{"192.0.2.1/32"}},
		{"window slides", []event.Event{fail(0, "192.0.2.1"), fail(11*time.Minute, "192.0.2.1"), fail(12*time.Minute, "192.0.2.1"), fail(13*time.Minute, "192.0.2.1")}, []string{"192.0.2.1/32"}},
		{"window boundary: exactly findtime apart counts", []event.Event{fail(0, "192.0.2.1"), fail(5*time.Minute, "192.0.2.1"), fail(10*time.Minute, "192.0.2.1")}, []string{"192.0.2.1/32"}},
		{"just outside window", []event.Event{fail(0, "192.0.2.1"), fail(5*time.Minute, "192.0.2.1"), fail(10*time.Minute+time.Second, "192.0.2.1")}, nil},
		{"addresses counted apart", []event.Event{fail(0, "192.0.2.1"), fail(time.Minute, "192.0.2.2"), fail(2*time.Minute, "192.0.2.3")}, nil},
		{"mapped IPv6 is the IPv4 address", []event.Event{fail(0, "::ffff:192.0.2.9"), fail(time.Minute, "192.0.2.9"), fail(2*time.Minute, "::ffff:192.0.2.9")}, []string{"192.0.2.9/32"}},
		{"IPv6", []event.Event{fail(0, "2001:db8::1"), fail(time.Minute, "2001:db8::1"), fail(2*time.Minute, "2001:db8::1")}, []string{"2001:db8::1/128"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, Config{})
			var got []string
			for _, ev := range tt.events {
				for _, d := range e.Observe(ev) {
					got = append(got, d.Target.String())
				}
			}
			if len(got) != len(tt.bans) {
				t.Fatalf("bans = %v, want %v", got, tt.bans)
			}
			for i := range got {
				if got[i] != tt.bans[i] {
					t.Fatalf("bans = %v, want %v", got, tt.bans)
				}
			}
		})
	}
}

type allowList []netip.Prefix

func (a allowList) Contains(x netip.Addr) bool {
	for _, p := range a {
		if p.Contains(x) {
			return true
		}
	}
	return false
}

func (a allowList) Overlaps(q netip.Prefix) bool {
	for _, p := range a {
		if p.Overlaps(q) {
			return true
		}
	}
	return false
}

func TestAllowlistNeverBanned(t *testing.T) {
	e := newTestEngine(t, Config{Allow: allowList{netip.MustParsePrefix("192.0.2.0/28")}})
	for i := range 10 {
		if ds := e.Observe(fail(time.Duration(i)*time.Second, "192.0.2.5")); len(ds) > 0 {
			t.Fatalf("allowlisted address banned: %v", ds)
		}
	}
	if _, err := e.Ban(event.Decision{Target: netip.MustParsePrefix("192.0.2.0/24"), Duration: time.Hour}); err == nil {
		t.Fatal("manual ban of a prefix containing an allowlisted address accepted")
	}
	if e.Stats().Allowlisted != 10 {
		t.Fatalf("allowlisted count = %d", e.Stats().Allowlisted)
	}
}

func TestEscalationAndRecidive(t *testing.T) {
	e := newTestEngine(t, Config{Recidive: Recidive{Bans: 3, Window: 24 * time.Hour, BanTime: 7 * 24 * time.Hour}})
	var durs []time.Duration
	var scen []string
	at := time.Duration(0)
	for range 3 {
		for range 3 {
			for _, d := range e.Observe(fail(at, "198.51.100.7")) {
				durs = append(durs, d.Duration)
				scen = append(scen, d.Scenario)
				at = at + d.Duration // come back after the ban
			}
			at += time.Second
		}
	}
	want := []time.Duration{time.Hour, 2 * time.Hour, 7 * 24 * time.Hour}
	if len(durs) != 3 || durs[0] != want[0] || durs[1] != want[1] || durs[2] != want[2] {
		t.Fatalf("durations = %v, want %v", durs, want)
	}
	if scen[2] != "recidive" || scen[0] != "ip-failures" {
		t.Fatalf("scenarios = %v", scen)
	}
}

func TestEventsWhileBannedIgnored(t *testing.T) {
	e := newTestEngine(t, Config{})
	for i := range 3 {
		e.Observe(fail(time.Duration(i)*time.Second, "192.0.2.1"))
	}
	for i := range 5 {
		if ds := e.Observe(fail(time.Minute+time.Duration(i)*time.Second, "192.0.2.1")); len(ds) > 0 {
			t.Fatalf("re-banned while banned: %v", ds)
		}
	}
	if got := e.Stats().WhileBanned; got != 5 {
		t.Fatalf("WhileBanned = %d", got)
	}
	e.Tick(t0.Add(2 * time.Hour))
	if n := len(e.Active(t0.Add(2 * time.Hour))); n != 0 || e.Stats().ActiveBans != 0 {
		t.Fatalf("%d bans active after expiry", n)
	}
}

func TestBoundedMemory(t *testing.T) {
	e := newTestEngine(t, Config{MaxTracked: 1000})
	for i := range 50_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		e.Observe(event.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Service: "sshd", Kind: event.AuthFailure, Addr: a})
	}
	s := e.Stats()
	if s.Tracked > 1000 || s.Evicted < 49_000 {
		t.Fatalf("tracked %d evicted %d", s.Tracked, s.Evicted)
	}
}

func TestWeightsAndLargeMaxRetry(t *testing.T) {
	e := newTestEngine(t, Config{Jails: []Jail{{Name: "web", Services: []string{"nginx"}, MaxRetry: 20, FindTime: time.Hour, BanTime: time.Hour,
		Weights: map[event.Kind]int{event.Probe: 2, event.AuthSuccess: 0}}}})
	a := netip.MustParseAddr("203.0.113.4")
	n := 0
	for i := range 20 {
		ds := e.Observe(event.Event{Time: t0.Add(time.Duration(i) * time.Second), Service: "nginx", Kind: event.Probe, Addr: a})
		if len(ds) > 0 {
			n = i + 1
			break
		}
	}
	if n != 10 {
		t.Fatalf("banned after %d probes of weight 2, want 10", n)
	}
}

// TestActiveBansBounded: a flood that bans every address (each fails once
// for a sprayed user) keeps at most the cap of active bans in the engine,
// forgetting the ones that end soonest; a forgotten address is banned again
// when it comes back, and the newest bans and wide bans are still known.
func TestActiveBansBounded(t *testing.T) {
	const limit = 2000
	cfg := DefaultConfig(Jail{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 5, FindTime: time.Hour, BanTime: time.Hour})
	cfg.MaxTracked = limit
	cfg.KnownGood.Grace = 0 // spray bans at once
	cfg.Prefixes.Widen4, cfg.Prefixes.Widen6 = Widen{}, Widen{}
	e := newTestEngine(t, cfg)
	// A manual ban of a prefix, for ever: never the one to go.
	wide := netip.MustParsePrefix("198.51.100.0/24")
	if _, err := e.Ban(event.Decision{Target: wide, Start: t0, Scenario: "manual", Jail: "sshd"}); err != nil {
		t.Fatal(err)
	}
	const n = 10 * limit
	bans := 0
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 100 * time.Millisecond) }
	for i := range n {
		ev := event.Event{Time: at(i), Service: "sshd", Kind: event.AuthFailure, Addr: uniqueAddr(i), User: "root"}
		bans += len(e.Observe(ev)) + len(e.Tick(ev.Time))
	}
	s := e.Stats()
	if bans < n-10 {
		t.Fatalf("%d bans for %d sprayed addresses", bans, n)
	}
	// Every ban (and the manual one) was kept or evicted, none lost count of.
	if s.ActiveBans != limit || s.ActiveEvicted != uint64(bans+1-limit) {
		t.Fatalf("active bans %d (cap %d), evicted %d of %d", s.ActiveBans, limit, s.ActiveEvicted, bans+1)
	}
	now := at(n)
	if d, ok := e.Banned(netip.MustParseAddr("198.51.100.7"), now); !ok || d.Target != wide || d.Scenario != "manual" {
		t.Fatalf("the manual prefix ban was forgotten: %+v %v", d, ok)
	}
	last := uniqueAddr(n - 1)
	if d, ok := e.Banned(last, now); !ok || d.Scenario != "user-spray" || d.Jail != "sshd" || d.Origin != "local" || !d.Start.Equal(at(n-1)) {
		t.Fatalf("the newest ban is not known as it was made: %+v %v", d, ok)
	}
	if got := len(e.Active(now)); got != s.ActiveBans {
		t.Fatalf("Active lists %d of %d", got, s.ActiveBans)
	}
	// The first address's ban was forgotten (it ended soonest): it is
	// banned again when it fails again.
	first := uniqueAddr(0)
	if _, ok := e.Banned(first, now); ok {
		t.Fatalf("%s still known as banned after %d newer bans", first, n)
	}
	ds := e.Observe(event.Event{Time: now, Service: "sshd", Kind: event.AuthFailure, Addr: first, User: "root"})
	ds = append(ds, e.Tick(now)...)
	if len(ds) != 1 || ds[0].Target != event.AddrPrefix(first) {
		t.Fatalf("a forgotten address failing again: %+v", ds)
	}
	// Unban and expiry still work on the bounded table.
	if !e.Unban(wide) {
		t.Fatal("Unban of the prefix: not found")
	}
	e.Tick(now.Add(13 * time.Hour))
	if s := e.Stats(); s.ActiveBans != 0 {
		t.Fatalf("%d active bans after they all expired", s.ActiveBans)
	}
}

// The horizon is the longest window that can still count an event: the
// slow scenario's, not the jails' findtime.
func TestHorizon(t *testing.T) {
	e := defaultEngine(t, nil)
	if h := e.Horizon(); h != DefaultSlow.Window {
		t.Fatalf("horizon %v, want the slow window %v", h, DefaultSlow.Window)
	}
	e = defaultEngine(t, func(c *Config) { c.Slow = Slow{}; c.Prefixes.Window = 0; c.Spray = Spray{} })
	if h := e.Horizon(); h != DefaultASNs.Window {
		t.Fatalf("horizon %v, want the AS window %v", h, DefaultASNs.Window)
	}
}

// normUser's quick path gives what folding every name gives.
func TestNormUser(t *testing.T) {
	for _, u := range []string{"", "root", "Root", " root", "root\t", "admin@example.org", "ÉLODIE", "élodie",
		"user\u00a0", "\u2003x", "a b", "ADMIN", "x\x00", "\xff", "z"} {
		if got, want := normUser(u), strings.ToLower(strings.TrimSpace(u)); got != want {
			t.Errorf("normUser(%q) = %q, want %q", u, got, want)
		}
	}
}

// TestObserveAppend feeds two engines the same attack, one through
// Observe and one through ObserveAppend into a slice reused from event to
// event, already holding a decision: they must decide the same, in the
// same order, and ObserveAppend must keep what the slice held, whatever
// path the event takes (ignored ones too).
func TestObserveAppend(t *testing.T) {
	a, b := defaultEngine(t, nil), defaultEngine(t, nil)
	keep := event.Decision{Scenario: "kept"}
	var want, got []event.Decision
	buf := make([]event.Decision, 0, 4)
	for i := range 3000 {
		// 60 addresses in 6 /24s spray 3 users; a few log in.
		addr := fmt.Sprintf("198.51.%d.%d", 100+i%6, 1+i%60)
		kind, user := event.AuthFailure, fmt.Sprintf("user%d", i%3)
		if i%97 == 0 {
			kind = event.AuthSuccess
		}
		if i%89 == 0 {
			addr = "127.0.0.1" // never banned: ignored
		}
		e := ev(time.Duration(i)*time.Second, kind, addr, user)
		want = append(want, a.Observe(e)...)
		buf = b.ObserveAppend(append(buf[:0], keep), e)
		if len(buf) == 0 || buf[0].Scenario != "kept" {
			t.Fatalf("event %d: ObserveAppend dropped what the slice held: %v", i, buf)
		}
		got = append(got, buf[1:]...)
	}
	sc := map[string]int{}
	for _, d := range want {
		sc[d.Scenario]++
	}
	if sc["ip-failures"] == 0 || sc["prefix"] == 0 || sc["known-good"] == 0 {
		t.Fatalf("decisions by scenario %v: the attack should make per-address and prefix bans, and carve-outs", sc)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ObserveAppend decided %d, Observe %d (or in another order)", len(got), len(want))
	}
}

// TestPendingIndex sprays a user from more addresses than the pending
// bans may hold (1,024 with this cap), within the grace period: the index
// grows past its first sizes, bans past the limit take effect at once, a
// login cancels its address's pending ban, and when the grace ends every
// other pending ban takes effect, none twice and none lost.
func TestPendingIndex(t *testing.T) {
	cfg := DefaultConfig(Jail{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 5, FindTime: time.Hour, BanTime: time.Hour})
	cfg.MaxTracked = 1000 // pending limit: max(1000/10, 1024)
	e := newTestEngine(t, cfg)
	const n = 1500
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Millisecond) }
	banned := map[netip.Prefix]int{}
	count := func(ds []event.Decision) {
		for _, d := range ds {
			if d.Action == event.Ban {
				banned[d.Target]++
			}
		}
	}
	for i := range n {
		count(e.Observe(event.Event{Time: at(i), Service: "sshd", Kind: event.AuthFailure, Addr: uniqueAddr(i), User: "root"}))
	}
	count(e.Tick(at(n - 1))) // the last ban, due at once, is made at the next flush
	early := len(banned)
	if p := e.Pending(); p != 1024 || early != n-1024 {
		t.Fatalf("%d pending, %d banned at once, of %d sprayed: the limit is 1,024", p, early, n)
	}
	// An address whose ban waits out the grace logs in: the ban is dropped.
	// (The last addresses' bans, past the limit, are due at once: the next
	// event makes them.)
	var forgiven netip.Addr
	for i := range n {
		if a := uniqueAddr(i); banned[event.AddrPrefix(a)] == 0 {
			forgiven = a
			break
		}
	}
	before := e.Pending()
	count(e.Observe(event.Event{Time: at(n), Service: "sshd", Kind: event.AuthSuccess, Addr: forgiven, User: "root"}))
	if e.Pending() != before-1 {
		t.Fatalf("after %v logged in, %d pending, want %d", forgiven, e.Pending(), before-1)
	}
	count(e.Tick(at(n).Add(cfg.KnownGood.Grace + time.Second)))
	if e.Pending() != 0 || len(banned) != n-1 || banned[event.AddrPrefix(forgiven)] != 0 {
		t.Fatalf("%d pending, %d of %d banned after the grace (forgiven one banned %d times)", e.Pending(), len(banned), n, banned[event.AddrPrefix(forgiven)])
	}
	for p, c := range banned {
		if c != 1 {
			t.Fatalf("%v banned %d times", p, c)
		}
	}
}
