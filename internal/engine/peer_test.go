package engine

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// TestPeerMarks: a target or user name flagged by a peer tightens the
// threshold to Peers.MaxRetry (after the grace a login may cancel); an
// allowlisted target cannot be flagged; a known-good client is not
// tightened; marks expire; the cap holds.
func TestPeerMarks(t *testing.T) {
	e := defaultEngine(t, func(c *Config) {
		c.Allow = allowList{netip.MustParsePrefix("192.0.2.77/32")}
		c.Peers = Peers{MaxRetry: 1, Max: 3}
	})
	e.Observe(ev(0, event.AuthSuccess, "203.0.113.9", "alice"))
	until := t0.Add(time.Hour)
	if !e.MarkSuspect(netip.MustParsePrefix("203.0.113.0/24"), until, "node-b") {
		t.Fatal("mark refused")
	}
	if e.MarkSuspect(netip.MustParsePrefix("192.0.2.0/24"), until, "node-b") {
		t.Error("a prefix holding an allowlisted address was flagged")
	}
	if e.MarkSuspect(netip.MustParsePrefix("198.51.100.1/32"), t0.Add(-time.Second), "node-b") {
		t.Error("an expired mark was taken")
	}
	if got := observe(e, ev(time.Second, event.AuthFailure, "203.0.113.5", "root")); len(got) != 0 {
		t.Fatalf("banned at once, before the grace: %v", got)
	}
	// A known-good client in the flagged prefix is counted as usual.
	observe(e, ev(2*time.Second, event.AuthFailure, "203.0.113.9", "alice"))
	if a := e.Assess(netip.MustParseAddr("203.0.113.5"), "", t0.Add(3*time.Second)); a.Suspect != "pending ban" && a.Suspect != "peer-suspect" {
		t.Errorf("assessment: %+v", a)
	}
	got := settle(e, 2*time.Minute)
	if !slices.Equal(got, []string{"peer-suspect 203.0.113.5/32"}) {
		t.Fatalf("after the grace: %v", got)
	}
	// A hot user name from a peer: one failure for it bans.
	if !e.MarkHotUser(" Admin ", until, "node-c") {
		t.Fatal("hot user refused")
	}
	if a := e.Assess(netip.MustParseAddr("198.51.100.4"), "admin", t0.Add(3*time.Minute)); !a.HotUser {
		t.Errorf("assessment does not say hot: %+v", a)
	}
	observe(e, ev(3*time.Minute, event.UnknownUser, "198.51.100.4", "admin"))
	if got := settle(e, 6*time.Minute); !slices.Equal(got, []string{"user-spray 198.51.100.4/32"}) {
		t.Fatalf("hot user: %v", got)
	}
	// After the mark's end, one failure is one failure.
	observe(e, ev(2*time.Hour, event.AuthFailure, "203.0.113.44", "root"))
	if got := settle(e, 2*time.Hour+5*time.Minute); len(got) != 0 {
		t.Errorf("banned on an expired mark: %v", got)
	}
	// The cap: 3 targets; the expired one makes room.
	for i, p := range []string{"10.1.0.0/16", "10.2.0.0/16"} {
		if !e.MarkSuspect(netip.MustParsePrefix(p), t0.Add(3*time.Hour), "node-b") {
			t.Errorf("mark %d refused", i)
		}
	}
	if !e.MarkSuspect(netip.MustParsePrefix("10.3.0.0/16"), t0.Add(3*time.Hour), "node-b") {
		t.Error("the expired mark did not make room")
	}
	if e.MarkSuspect(netip.MustParsePrefix("10.4.0.0/16"), t0.Add(3*time.Hour), "node-b") {
		t.Error("mark past the cap taken")
	}
	if n, _ := e.PeerMarks(); n != 3 {
		t.Errorf("%d marks held, want 3", n)
	}
}

// TestPeerSuspectAddress: the fleet's suspect signal end to end in one
// engine. Evidence counts an address's failures over the slow window and
// is 0 for a known-good client, an allowlisted or a banned address; a
// peer's mark of one address makes its next failure here a ban after the
// grace (a login in the grace cancels it); a known-good client so marked
// is never banned by one failure, an allowlisted address cannot be marked.
func TestPeerSuspectAddress(t *testing.T) {
	e := defaultEngine(t, func(c *Config) { c.Peers = Peers{MaxRetry: 1} })
	const window = 12 * time.Hour
	evidence := func(at time.Duration, addr string) int {
		return e.Evidence(ev(at, event.AuthFailure, addr, "root"), window)
	}
	observe(e, ev(0, event.AuthSuccess, "203.0.113.9", "alice"))
	// Two failures half an hour apart: past the jail's findtime, within
	// the slow window.
	for _, at := range []time.Duration{time.Minute, 31 * time.Minute} {
		if got := observe(e, ev(at, event.AuthFailure, "198.51.100.4", "root"), ev(at, event.AuthFailure, "203.0.113.9", "alice"),
			ev(at, event.AuthFailure, "192.0.2.77", "root")); len(got) != 0 {
			t.Fatalf("banned: %v", got)
		}
	}
	// 192.0.2.77 is allowlisted once its failures are counted (a reload
	// keeps them): they are no evidence.
	cfg := e.cfg
	cfg.Allow = allowList{netip.MustParsePrefix("192.0.2.77/32")}
	if err := e.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	if n := evidence(31*time.Minute, "198.51.100.4"); n != 2 {
		t.Errorf("evidence %d, want 2", n)
	}
	if n := e.Evidence(ev(31*time.Minute, event.AuthFailure, "198.51.100.4", "root"), 10*time.Minute); n != 1 {
		t.Errorf("evidence within 10 minutes %d, want 1", n)
	}
	for _, a := range []string{"203.0.113.9", "192.0.2.77", "198.51.100.99"} {
		if n := evidence(31*time.Minute, a); n != 0 {
			t.Errorf("evidence for %s: %d, want 0 (known-good, allowlisted, unseen)", a, n)
		}
	}
	// alice mistyping from another address of the network she logs in
	// from: her failures there are no evidence.
	for _, at := range []time.Duration{time.Minute, 31 * time.Minute} {
		observe(e, ev(at, event.AuthFailure, "203.0.113.10", "alice"))
	}
	if n := e.Evidence(ev(31*time.Minute, event.AuthFailure, "203.0.113.10", "alice"), window); n != 0 {
		t.Errorf("evidence for alice's typo from her own network: %d, want 0", n)
	}

	// On a peer: the same three addresses marked on that evidence.
	p := defaultEngine(t, func(c *Config) {
		c.Allow = allowList{netip.MustParsePrefix("192.0.2.77/32")}
		c.Peers = Peers{MaxRetry: 1}
	})
	p.Observe(ev(0, event.AuthSuccess, "203.0.113.9", "alice"))
	until := t0.Add(90 * time.Minute)
	for _, a := range []string{"198.51.100.4", "203.0.113.9", "198.51.100.5"} {
		if !p.MarkEvidence(netip.MustParseAddr(a), until, "node-a") {
			t.Fatalf("mark of %s refused", a)
		}
	}
	if p.MarkEvidence(netip.MustParseAddr("192.0.2.77"), until, "node-a") {
		t.Error("an allowlisted address was marked")
	}
	if got := observe(p, ev(40*time.Minute, event.AuthFailure, "198.51.100.4", "root"), ev(40*time.Minute, event.AuthFailure, "203.0.113.9", "alice"),
		ev(40*time.Minute, event.AuthFailure, "192.0.2.77", "root"), ev(40*time.Minute, event.AuthFailure, "198.51.100.5", "bob")); len(got) != 0 {
		t.Fatalf("banned at once, before the grace: %v", got)
	}
	// 198.51.100.5 was a person mistyping: it logs in within the grace.
	observe(p, ev(40*time.Minute+30*time.Second, event.AuthSuccess, "198.51.100.5", "bob"))
	ds := p.Tick(t0.Add(45 * time.Minute))
	if got := names(ds); !slices.Equal(got, []string{"peer-suspect 198.51.100.4/32"}) {
		t.Fatalf("after the grace: %v, want the marked attacker alone", got)
	}
	// Banned as a slow attacker is: its next attempt comes in 20-40 minutes,
	// past the jail's 10.
	if ds[0].Duration != DefaultSlow.BanTime || !strings.Contains(ds[0].Reason, "failed on node-a") {
		t.Errorf("ban for %s (%q), want %s", ds[0].Duration, ds[0].Reason, DefaultSlow.BanTime)
	}
	if n := p.Evidence(ev(45*time.Minute, event.AuthFailure, "198.51.100.4", "root"), window); n != 0 {
		t.Errorf("evidence for a banned address: %d", n)
	}
}
