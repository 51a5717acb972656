package engine

import (
	"net/netip"
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
