package daemon

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/fleet"
)

// TestFleetVerdicts: what the daemon does with each verdict on a peer's
// message (the fleet's transport is tested in package fleet and by
// TestFleetEndToEnd): a ban is enforced with the peer's origin, a
// known-good client's and an allowlisted address's are refused, a suspect
// verdict tightens the threshold, a revocation lifts only that peer's ban.
func TestFleetVerdicts(t *testing.T) {
	dir := t.TempDir()
	h := startHarness(t, dir, 5, "[allow]\nentries = [\"192.0.2.77\"]\n[fleet]\nsuspect_maxretry = 2\n")
	appendLine(t, h.logPath, time.Now().Format(time.Stamp)+" srv sshd[7]: Accepted password for alice from 198.51.100.20 port 5000 ssh2")
	h.waitFor("the login", func(st Status) bool { return st.Engine.Successes == 1 })
	f := &fleetLink{d: h.d, cfg: config.Default().Fleet, log: h.d.log}
	peer := fleet.Peer{Name: "web2", Key: "UX", Trust: fleet.TrustBan}
	now := time.Now()
	msg := func(kind fleet.Kind, target string) fleet.Message {
		return fleet.Message{V: 1, Kind: kind, Target: target, Start: now, End: now.Add(time.Hour), Scenario: "ip-failures"}
	}
	f.handle(msg(fleet.KindBan, "203.0.113.7"), peer, fleet.Ban, now.Add(time.Hour))
	f.handle(msg(fleet.KindBan, "198.51.100.20"), peer, fleet.Ban, now.Add(time.Hour)) // known-good here
	f.handle(msg(fleet.KindBan, "192.0.2.77"), peer, fleet.Ban, now.Add(time.Hour))    // allowlisted here
	f.handle(msg(fleet.KindBan, "203.0.113.7"), peer, fleet.Ban, now.Add(time.Hour))   // again: known
	st := h.waitFor("the peer's ban", func(st Status) bool { return banned(st, "203.0.113.7") })
	if banned(st, "198.51.100.20") || banned(st, "192.0.2.77") {
		t.Fatalf("banned a known-good or allowlisted address: %+v", st.Active)
	}
	for _, b := range st.Active {
		if b.IP == "203.0.113.7" && b.Origin != "fleet:web2" {
			t.Errorf("origin %q", b.Origin)
		}
	}
	if f.applied.Load() != 1 || f.refusedGood.Load() != 1 || f.refusedAllow.Load() != 1 || f.already.Load() != 1 {
		t.Errorf("applied %d, refused good %d, refused allowlisted %d, already %d", f.applied.Load(), f.refusedGood.Load(), f.refusedAllow.Load(), f.already.Load())
	}

	// Suspect: the flagged /24's addresses get suspect_maxretry.
	f.handle(msg(fleet.KindBadPrefix, "203.0.113.0/24"), peer, fleet.Suspect, now.Add(time.Hour))
	if a := h.d.currentPipe().Engine.Assess(netip.MustParseAddr("203.0.113.9"), "", time.Now()); a.Suspect != "peer-suspect" || a.MaxRetry != 2 {
		t.Errorf("a flagged prefix's address: %+v", a)
	}
	// A peer's suspect address: flagged alone.
	f.handle(msg(fleet.KindSuspect, "198.51.100.33"), peer, fleet.Suspect, now.Add(time.Hour))
	if a := h.d.currentPipe().Engine.Assess(netip.MustParseAddr("198.51.100.33"), "", time.Now()); a.Suspect != "peer-suspect" || a.MaxRetry != 2 {
		t.Errorf("a suspect address: %+v", a)
	}
	if a := h.d.currentPipe().Engine.Assess(netip.MustParseAddr("198.51.100.34"), "", time.Now()); a.Suspect != "" {
		t.Errorf("its neighbour: %+v", a)
	}

	// A revocation of one address inside the peer's prefix ban is not the
	// revocation of that ban: it stays, and nothing is lifted.
	f.handle(msg(fleet.KindBan, "203.0.113.128/25"), peer, fleet.Ban, now.Add(time.Hour))
	wide := netip.MustParsePrefix("203.0.113.128/25")
	inWide := func() bool {
		d, ok := h.d.currentPipe().Engine.Banned(netip.MustParseAddr("203.0.113.130"), time.Now())
		return ok && d.Target == wide
	}
	if !inWide() {
		t.Fatal("the peer's prefix ban is not in force")
	}
	f.handle(msg(fleet.KindRevoke, "203.0.113.130"), peer, fleet.Unban, time.Time{})
	if !inWide() || f.unbans.Load() != 0 {
		t.Fatalf("a revocation of an address inside the peer's prefix ban: prefix still banned %v, %d lifted", inWide(), f.unbans.Load())
	}

	// A revocation by another peer leaves the ban; by its peer, lifts it.
	f.handle(msg(fleet.KindRevoke, "203.0.113.7"), fleet.Peer{Name: "mail1", Key: "UY", Trust: fleet.TrustBan}, fleet.Unban, time.Time{})
	if st := h.waitFor("status", func(Status) bool { return true }); !banned(st, "203.0.113.7") {
		t.Fatal("another peer's revocation lifted the ban")
	}
	f.handle(msg(fleet.KindRevoke, "203.0.113.7"), peer, fleet.Unban, time.Time{})
	h.waitFor("the revocation", func(st Status) bool { return !banned(st, "203.0.113.7") })
}

// TestFleetSuspectSignal: which failures this node shares as a suspect
// address: the evidence_failures-th within evidence_window, not one its
// own ban answers, not a known-good client's; once per half signal_ttl
// per address; and a peer's signal marks the address (TestPeerSuspectAddress
// in package engine has the ban it leads to).
func TestFleetSuspectSignal(t *testing.T) {
	e, err := engine.New(engine.DefaultConfig(engine.Jail{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 5, FindTime: 10 * time.Minute, BanTime: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().Fleet
	f := &fleetLink{cfg: cfg}
	t0 := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	evAt := func(at time.Duration, kind event.Kind, addr, user string) event.Event {
		return event.Event{Time: t0.Add(at), Service: "sshd", Kind: kind, Addr: netip.MustParseAddr(addr), User: user}
	}
	e.Observe(evAt(0, event.AuthSuccess, "198.51.100.20", "alice"))
	shares := func(x event.Event, ds ...event.Decision) (fleet.Message, bool) {
		t.Helper()
		e.Observe(x)
		return f.suspectOf(e, x, ds, x.Time)
	}
	if _, ok := shares(evAt(time.Minute, event.AuthFailure, "203.0.113.7", "root")); ok {
		t.Error("shared at the first failure")
	}
	m, ok := shares(evAt(25*time.Minute, event.AuthFailure, "203.0.113.7", "root"))
	if !ok || m.Kind != fleet.KindSuspect || m.Target != "203.0.113.7/32" || !m.End.Equal(t0.Add(25*time.Minute+cfg.SignalTTL.D())) {
		t.Fatalf("second failure: %v %+v", ok, m)
	}
	if _, ok := shares(evAt(26*time.Minute, event.AuthFailure, "203.0.113.7", "root")); ok {
		t.Error("shared again within half the signal's life")
	}
	if _, ok := shares(evAt(26*time.Minute+cfg.SignalTTL.D()/2, event.AuthFailure, "203.0.113.7", "root")); !ok {
		t.Error("not shared again after half the signal's life")
	}
	for i := range 3 {
		if _, ok := shares(evAt(time.Duration(i+1)*time.Minute, event.AuthFailure, "198.51.100.20", "alice")); ok {
			t.Fatal("a known-good client shared as suspect")
		}
	}
	shares(evAt(time.Minute, event.AuthFailure, "203.0.113.8", "root"))
	ban := event.Decision{Target: netip.MustParsePrefix("203.0.113.8/32"), Action: event.Ban}
	if _, ok := shares(evAt(2*time.Minute, event.AuthFailure, "203.0.113.8", "root"), ban); ok {
		t.Error("shared although the failure was banned")
	}
	f.cfg.EvidenceFailures = 0
	if _, ok := shares(evAt(3*time.Minute, event.AuthFailure, "203.0.113.8", "root")); ok {
		t.Error("shared with evidence_failures = 0")
	}
	if f.evShared.Load() != 2 {
		t.Errorf("%d shared, want 2", f.evShared.Load())
	}
}
