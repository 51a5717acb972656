package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// carves names the carve-outs among ds.
func carves(ds []event.Decision) []string {
	var out []string
	for _, d := range ds {
		if d.Action == event.Allow {
			out = append(out, fmt.Sprintf("%s %s %s", d.Scenario, d.Target, fmtDuration(d.Duration)))
		}
	}
	return out
}

func mail(at time.Duration, addr string) event.Event {
	return event.Event{Time: t0.Add(at), Service: "postfix", Kind: event.MailAccepted, Addr: netip.MustParseAddr(addr)}
}

func bounce(at time.Duration, addr, rcpt string) event.Event {
	return event.Event{Time: t0.Add(at), Service: "postfix", Kind: event.RecipientUnknown, Addr: netip.MustParseAddr(addr), User: rcpt}
}

// A big provider's relays deliver mail, and now and then one carries a
// stale recipient: their bounces never add up to a ban of their network,
// nor do those of its other addresses, while a relay that enumerates is
// still banned by its own count.
func TestRelayBounces(t *testing.T) {
	e := defaultEngine(t, nil)
	relays := []string{"209.85.220.41", "209.85.220.42", "209.85.220.43", "209.85.220.44"}
	var got []event.Decision
	for i, r := range relays {
		got = append(got, e.Observe(mail(time.Duration(i)*time.Minute, r))...)
	}
	if c := carves(got); len(c) != 4 || c[0] != "relay 209.85.220.41/32 30d" {
		t.Fatalf("accepted mail: carve-outs %v, want one 30d relay carve-out each", c)
	}
	// Each relay bounces once, an unseen address of the pool twice, all
	// for the same stale recipient.
	var evs []event.Event
	for i, r := range relays {
		evs = append(evs, bounce(time.Hour+time.Duration(i)*time.Minute, r, "old.staff@example.org"))
	}
	evs = append(evs,
		bounce(time.Hour+10*time.Minute, "209.85.220.99", "old.staff@example.org"),
		bounce(time.Hour+20*time.Minute, "209.85.220.99", "gone@example.org"))
	if got := append(observe(e, evs...), settle(e, 3*time.Hour)...); len(got) != 0 {
		t.Fatalf("bounces from a provider's pool: %v", got)
	}
	if a := e.Assess(netip.MustParseAddr("209.85.220.41"), "", t0.Add(2*time.Hour)); a.Enumerating || a.Banned {
		t.Fatalf("relay after one bounce: %+v", a)
	}
	// A relay that turns into an enumerator: 5 x maxretry unknown
	// recipients within findtime ban it, and only it.
	observe(e, mail(3*time.Hour, "209.85.220.45"))
	var bans []string
	for i := range 25 {
		bans = append(bans, observe(e, bounce(4*time.Hour+time.Duration(i)*10*time.Second, "209.85.220.45", fmt.Sprintf("guess%d@example.org", i)))...)
		if len(bans) > 0 && i < 24 {
			t.Fatalf("relay banned after %d unknown recipients: %v", i+1, bans)
		}
	}
	if fmt.Sprint(bans) != "[ip-failures 209.85.220.45/32]" {
		t.Fatalf("enumerating relay: %v", bans)
	}
	// A relay's failed logins count per address, as anyone's: a
	// compromised account spraying from the pool is banned, the pool is not.
	for i := range 5 {
		bans = observe(e, ev(6*time.Hour+time.Duration(i)*time.Second, event.AuthFailure, "209.85.220.43", fmt.Sprintf("user%d@example.org", i)))
	}
	if fmt.Sprint(bans) != "[ip-failures 209.85.220.43/32]" {
		t.Fatalf("relay spraying passwords: %v", bans)
	}
	if _, banned := e.Banned(netip.MustParseAddr("209.85.220.44"), t0.Add(7*time.Hour)); banned {
		t.Fatal("the pool's other relay is banned")
	}
}

// Without accepted mail, the same bounces from three addresses of one /24
// are three bad addresses: the prefix is banned.
func TestBouncesWithoutRelays(t *testing.T) {
	e := defaultEngine(t, nil)
	got := observe(e,
		bounce(0, "209.85.220.41", "old@example.org"),
		bounce(time.Minute, "209.85.220.42", "old@example.org"),
		bounce(2*time.Minute, "209.85.220.43", "old@example.org"))
	if fmt.Sprint(got) != "[prefix 209.85.220.0/24]" {
		t.Fatalf("decisions %v", got)
	}
}

// A user who logged in from a network and mistypes from another address
// of it (a phone's next privacy address) is not a bad address of that
// network.
func TestOwnNetworkTypos(t *testing.T) {
	e := defaultEngine(t, func(c *Config) { c.Spray = Spray{} })
	observe(e, ev(0, event.AuthSuccess, "2a02:3032:1:2::5", "anna@example.org"))
	got := observe(e,
		ev(time.Hour, event.AuthFailure, "2a02:3032:1:2:a::1", "anna@example.org"),
		ev(2*time.Hour, event.AuthFailure, "2a02:3032:1:2:b::1", "Anna@Example.org"),
		ev(3*time.Hour, event.AuthFailure, "2a02:3032:1:2:c::1", "anna@example.org"))
	if len(got) != 0 {
		t.Fatalf("a user's typos from new addresses of its own network: %v", got)
	}
	// Other names from the network are bad addresses as before.
	got = observe(e,
		ev(4*time.Hour, event.AuthFailure, "2a02:3032:1:2:d::1", "admin"),
		ev(4*time.Hour+time.Minute, event.AuthFailure, "2a02:3032:1:2:e::1", "root"),
		ev(4*time.Hour+2*time.Minute, event.AuthFailure, "2a02:3032:1:2:f::1", "test"))
	if fmt.Sprint(got) != "[prefix 2a02:3032:1:2::/64]" {
		t.Fatalf("attack from the network: %v", got)
	}
}

// Three /24s banned inside one /16 within the window ban the /16, for its
// own shorter time, with its good addresses carved out; /24s of different
// /16s do not. IPv6 likewise from /64 to /48.
func TestWidening(t *testing.T) {
	var reasons map[string]string
	spread := func(e *Engine, at time.Duration, prefixes ...string) []string {
		reasons = map[string]string{}
		var ds []event.Decision
		for i, p := range prefixes {
			for h := range 3 {
				a := strings.Replace(p, "X", fmt.Sprint(h+1), 1)
				ds = append(ds, e.Observe(ev(at+time.Duration(i*3+h)*time.Minute, event.AuthFailure, a, "root"))...)
			}
		}
		for _, d := range ds {
			reasons[d.Target.String()] = d.Reason
		}
		return names(ds)
	}
	t.Run("ipv4", func(t *testing.T) {
		e := defaultEngine(t, func(c *Config) { c.Spray = Spray{} })
		observe(e, ev(0, event.AuthSuccess, "45.134.200.9", "ops"))
		got := spread(e, time.Minute, "45.134.1.X", "45.135.1.X", "45.134.2.X", "45.134.3.X")
		want := "[prefix 45.134.1.0/24 prefix 45.135.1.0/24 prefix 45.134.2.0/24 prefix 45.134.3.0/24 prefix-wide 45.134.0.0/16]"
		if fmt.Sprint(got) != want {
			t.Fatalf("decisions %v\nwant %v", got, want)
		}
		at := t0.Add(20 * time.Minute)
		d, ok := e.Banned(netip.MustParseAddr("45.134.77.1"), at)
		if !ok || d.Target.String() != "45.134.0.0/16" || d.Duration != 30*time.Minute {
			t.Fatalf("an address of the /16: %+v %v", d, ok)
		}
		if _, ok := e.Banned(netip.MustParseAddr("45.134.200.9"), at); ok {
			t.Fatal("the known-good address of the /16 is banned")
		}
		if _, ok := e.Banned(netip.MustParseAddr("45.135.77.1"), at); ok {
			t.Fatal("the neighbouring /16 is banned")
		}
		if r := reasons["45.134.0.0/16"]; r != "3 prefixes banned in 45.134.0.0/16 within 6h (last: 45.134.3.0/24); 1 address carved out (known-good or delivering relay)" {
			t.Fatalf("reason %q", r)
		}
	})
	t.Run("ipv6", func(t *testing.T) {
		e := defaultEngine(t, func(c *Config) { c.Spray = Spray{} })
		got := spread(e, 0, "2a0e:97c0:10:1::X", "2a0e:97c0:10:2::X", "2a0e:97c0:11:1::X", "2a0e:97c0:10:3::X")
		want := "[prefix 2a0e:97c0:10:1::/64 prefix 2a0e:97c0:10:2::/64 prefix 2a0e:97c0:11:1::/64 prefix 2a0e:97c0:10:3::/64 prefix-wide 2a0e:97c0:10::/48]"
		if fmt.Sprint(got) != want {
			t.Fatalf("decisions %v\nwant %v", got, want)
		}
	})
	t.Run("outside the window", func(t *testing.T) {
		e := defaultEngine(t, func(c *Config) { c.Spray = Spray{} })
		got := spread(e, 0, "45.134.1.X", "45.134.2.X")
		got = append(got, spread(e, 7*time.Hour, "45.134.3.X")...)
		if strings.Contains(fmt.Sprint(got), "prefix-wide") {
			t.Fatalf("widened with two prefixes in the window: %v", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		e := defaultEngine(t, func(c *Config) { c.Spray = Spray{}; c.Prefixes.Widen4 = Widen{} })
		if got := spread(e, 0, "45.134.1.X", "45.134.2.X", "45.134.3.X"); strings.Contains(fmt.Sprint(got), "prefix-wide") {
			t.Fatalf("widened while off: %v", got)
		}
	})
}

func TestWideningLevelsChecked(t *testing.T) {
	for _, w := range []Widen{{Bits: 24, Prefixes: 3}, {Bits: 4, Prefixes: 3}, {Bits: 16}} {
		cfg := DefaultConfig(Jail{Name: "sshd", Services: []string{"sshd"}})
		cfg.Prefixes.Widen4 = w
		if _, err := New(cfg); err == nil {
			t.Errorf("widening %+v accepted", w)
		}
	}
}

// A carve-out is issued when an address turns good and renewed only when
// its end moves by half the TTL or more; logins in between issue none.
func TestCarveOutRenewal(t *testing.T) {
	e := defaultEngine(t, nil)
	login := func(at time.Duration) []string {
		return carves(e.Observe(ev(at, event.AuthSuccess, "192.0.2.7", "anna")))
	}
	if c := login(0); fmt.Sprint(c) != "[known-good 192.0.2.7/32 90d]" {
		t.Fatalf("first login: %v", c)
	}
	if c := login(time.Hour); len(c) != 0 {
		t.Fatalf("second login an hour later: %v", c)
	}
	if c := login(44 * 24 * time.Hour); len(c) != 0 {
		t.Fatalf("login after 44 days: %v", c)
	}
	if c := login(46 * 24 * time.Hour); fmt.Sprint(c) != "[known-good 192.0.2.7/32 90d]" {
		t.Fatalf("login after 46 days: %v", c)
	}
	// Mail accepted from a known-good address later extends nothing while
	// the login's end is later.
	if c := carves(e.Observe(mail(47*24*time.Hour, "192.0.2.7"))); len(c) != 0 {
		t.Fatalf("mail from a known-good address: %v", c)
	}
	if s := e.Stats(); s.CarveOuts != 2 || s.Successes != 4 || s.Deliveries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Addresses that must never be banned are never counted, and refused by
// hand.
func TestNeverBan(t *testing.T) {
	e := defaultEngine(t, nil)
	for _, a := range []string{"0.0.0.0", "::", "255.255.255.255", "224.0.0.251", "ff02::1", "fe80::1", "169.254.1.1", "127.0.0.2", "::1", "::ffff:0.0.0.0"} {
		for i := range 10 {
			if got := observe(e, ev(time.Duration(i)*time.Second, event.AuthFailure, a, "root")); len(got) != 0 {
				t.Fatalf("%s banned: %v", a, got)
			}
		}
		if _, err := e.Ban(event.Decision{Target: event.AddrPrefix(netip.MustParseAddr(a)), Duration: time.Hour}); !errors.Is(err, ErrNeverBan) {
			t.Fatalf("manual ban of %s: %v", a, err)
		}
	}
	for _, p := range []string{"0.0.0.0/8", "192.0.0.0/2", "fe80::/64"} {
		if _, err := e.Ban(event.Decision{Target: netip.MustParsePrefix(p), Duration: time.Hour}); !errors.Is(err, ErrNeverBan) {
			t.Fatalf("manual ban of %s: %v", p, err)
		}
	}
	if _, err := e.Ban(event.Decision{Target: netip.MustParsePrefix("192.0.2.0/24"), Duration: time.Hour}); err != nil {
		t.Fatalf("manual ban of an ordinary prefix: %v", err)
	}
}

// With BanLoopback (a test's [allow] loopback = false), loopback addresses
// are banned like others; the other never-ban ranges stay.
func TestBanLoopback(t *testing.T) {
	e := defaultEngine(t, func(c *Config) { c.BanLoopback = true })
	if _, err := e.Ban(event.Decision{Target: netip.MustParsePrefix("127.0.1.0/24"), Duration: time.Hour}); err != nil {
		t.Fatalf("ban of a loopback prefix: %v", err)
	}
	for _, p := range []string{"0.0.0.0/32", "126.0.0.0/7", "fe80::1/128"} {
		if _, err := e.Ban(event.Decision{Target: netip.MustParsePrefix(p), Duration: time.Hour}); !errors.Is(err, ErrNeverBan) {
			t.Fatalf("ban of %s: %v", p, err)
		}
	}
}
