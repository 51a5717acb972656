package daemon

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
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

	// A revocation by another peer leaves the ban; by its peer, lifts it.
	f.handle(msg(fleet.KindRevoke, "203.0.113.7"), fleet.Peer{Name: "mail1", Key: "UY", Trust: fleet.TrustBan}, fleet.Unban, time.Time{})
	if st := h.waitFor("status", func(Status) bool { return true }); !banned(st, "203.0.113.7") {
		t.Fatal("another peer's revocation lifted the ban")
	}
	f.handle(msg(fleet.KindRevoke, "203.0.113.7"), peer, fleet.Unban, time.Time{})
	h.waitFor("the revocation", func(st Status) bool { return !banned(st, "203.0.113.7") })
}
