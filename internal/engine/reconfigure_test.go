package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

func reconfJail(name string, maxretry int) Jail {
	return Jail{Name: name, Services: []string{name}, MaxRetry: maxretry, FindTime: 10 * time.Minute, BanTime: time.Hour}
}

func failIn(jail string, at time.Duration, addr string) event.Event {
	return event.Event{Time: t0.Add(at), Service: jail, Jail: jail, Kind: event.AuthFailure, Addr: netip.MustParseAddr(addr), User: "root"}
}

func mustNew(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// observeN feeds n failures of addr in jail, one a second from at, and
// returns the decisions.
func observeN(e *Engine, jail, addr string, at time.Duration, n int) []event.Decision {
	var ds []event.Decision
	for i := range n {
		ds = append(ds, e.Observe(failIn(jail, at+time.Duration(i)*time.Second, addr))...)
	}
	return ds
}

func TestReconfigureKeepsFailuresByJailName(t *testing.T) {
	e := mustNew(t, Config{Jails: []Jail{reconfJail("sshd", 5), reconfJail("postfix", 5)}})
	if ds := observeN(e, "sshd", "192.0.2.1", 0, 4); len(ds) != 0 {
		t.Fatalf("banned early: %v", ds)
	}
	observeN(e, "postfix", "192.0.2.2", 0, 4)
	before := e.Stats()
	// The jails swap places, a new one comes first; maxretry unchanged.
	if err := e.Reconfigure(Config{Jails: []Jail{reconfJail("dovecot", 5), reconfJail("postfix", 5), reconfJail("sshd", 5)}}); err != nil {
		t.Fatal(err)
	}
	if got := e.Stats(); got.Events != before.Events || got.Tracked != before.Tracked {
		t.Fatalf("stats after reconfigure %+v, before %+v", got, before)
	}
	if ds := e.Observe(failIn("sshd", time.Minute, "192.0.2.1")); len(ds) != 1 || ds[0].Jail != "sshd" {
		t.Fatalf("5th sshd failure after reconfigure: %v, want a ban", ds)
	}
	if ds := e.Observe(failIn("postfix", time.Minute, "192.0.2.2")); len(ds) != 1 || ds[0].Jail != "postfix" {
		t.Fatalf("5th postfix failure after reconfigure: %v, want a ban", ds)
	}
	// The new jail starts from nothing.
	if ds := observeN(e, "dovecot", "192.0.2.1", 2*time.Minute, 4); len(ds) != 0 {
		t.Fatalf("dovecot inherited failures: %v", ds)
	}
}

func TestReconfigureDropsRemovedJail(t *testing.T) {
	e := mustNew(t, Config{Jails: []Jail{reconfJail("sshd", 5), reconfJail("postfix", 5)}})
	observeN(e, "sshd", "192.0.2.1", 0, 4)
	observeN(e, "postfix", "192.0.2.2", 0, 4)
	if err := e.Reconfigure(Config{Jails: []Jail{reconfJail("postfix", 5)}}); err != nil {
		t.Fatal(err)
	}
	if got := e.Stats().Tracked; got != 1 {
		t.Fatalf("tracked after dropping sshd = %d, want 1 (postfix's)", got)
	}
	if ds := e.Observe(failIn("sshd", time.Minute, "192.0.2.1")); len(ds) != 0 {
		t.Fatalf("event of a removed jail decided %v", ds)
	}
	// sshd comes back: its old failures are gone.
	if err := e.Reconfigure(Config{Jails: []Jail{reconfJail("postfix", 5), reconfJail("sshd", 5)}}); err != nil {
		t.Fatal(err)
	}
	if ds := e.Observe(failIn("sshd", 2*time.Minute, "192.0.2.1")); len(ds) != 0 {
		t.Fatalf("failures of a removed jail survived: %v", ds)
	}
}

func TestReconfigureThresholds(t *testing.T) {
	e := mustNew(t, Config{Jails: []Jail{reconfJail("sshd", 5)}})
	observeN(e, "sshd", "192.0.2.1", 0, 2)
	if err := e.Reconfigure(Config{Jails: []Jail{reconfJail("sshd", 3)}}); err != nil {
		t.Fatal(err)
	}
	if ds := e.Observe(failIn("sshd", time.Minute, "192.0.2.1")); len(ds) != 1 {
		t.Fatalf("3rd failure under maxretry 3: %v, want a ban", ds)
	}
	if got := e.Jails()[0].MaxRetry; got != 3 {
		t.Fatalf("maxretry = %d", got)
	}
}

func TestReconfigureInvalidLeavesEngine(t *testing.T) {
	e := mustNew(t, Config{Jails: []Jail{reconfJail("sshd", 5)}})
	observeN(e, "sshd", "192.0.2.1", 0, 4)
	bad := Config{Jails: []Jail{reconfJail("sshd", 2), reconfJail("sshd", 2)}}
	if err := e.Reconfigure(bad); err == nil {
		t.Fatal("duplicate jail accepted")
	}
	if got := e.Jails()[0].MaxRetry; got != 5 {
		t.Fatalf("maxretry changed by a refused configuration: %d", got)
	}
	if ds := e.Observe(failIn("sshd", time.Minute, "192.0.2.1")); len(ds) != 1 {
		t.Fatalf("5th failure: %v, want a ban", ds)
	}
}

func TestReconfigureAllowlist(t *testing.T) {
	cfg := DefaultConfig(reconfJail("sshd", 3))
	cfg.Spray = Spray{Addresses: 3, Window: time.Hour}
	cfg.Prefixes = Prefixes{}
	cfg.KnownGood.Grace = time.Minute
	e := mustNew(t, cfg)
	observeN(e, "sshd", "192.0.2.1", 0, 3) // banned
	// A user sprayed from three addresses: the third's ban is pending.
	for i, a := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		ev := failIn("sshd", time.Duration(i)*time.Second, a)
		ev.User = "sprayed"
		e.Observe(ev)
	}
	if e.Pending() == 0 {
		t.Fatal("no pending ban to test with")
	}
	cfg.Allow = allowList{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}
	if err := e.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	if n := e.Pending(); n != 0 {
		t.Fatalf("%d pending bans of allowlisted addresses kept", n)
	}
	if ds := e.Tick(t0.Add(time.Hour)); len(ds) != 0 {
		t.Fatalf("allowlisted addresses banned after the grace: %v", ds)
	}
	dropped := e.DropAllowlisted()
	if len(dropped) != 1 || dropped[0].Target != netip.MustParsePrefix("192.0.2.1/32") {
		t.Fatalf("DropAllowlisted = %v", dropped)
	}
	if _, banned := e.Banned(netip.MustParseAddr("192.0.2.1"), t0.Add(time.Minute)); banned {
		t.Fatal("allowlisted address still banned")
	}
	if ds := observeN(e, "sshd", "192.0.2.9", time.Minute, 5); len(ds) != 0 {
		t.Fatalf("allowlisted address banned: %v", ds)
	}
}

func TestReconfigureKeepsActiveAndHistory(t *testing.T) {
	e := mustNew(t, DefaultConfig(reconfJail("sshd", 2)))
	first := observeN(e, "sshd", "192.0.2.1", 0, 2)
	if len(first) != 1 {
		t.Fatalf("first ban: %v", first)
	}
	if err := e.Reconfigure(DefaultConfig(reconfJail("sshd", 2), reconfJail("postfix", 2))); err != nil {
		t.Fatal(err)
	}
	if _, banned := e.Banned(netip.MustParseAddr("192.0.2.1"), t0.Add(time.Minute)); !banned {
		t.Fatal("active ban lost")
	}
	// After the first ban ends, the second is escalated: history kept.
	second := observeN(e, "sshd", "192.0.2.1", 2*time.Hour, 2)
	if len(second) != 1 || second[0].Duration != 2*first[0].Duration {
		t.Fatalf("second ban %v, want twice %v", second, first[0].Duration)
	}
}
