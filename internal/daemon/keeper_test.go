package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/netnstest"
)

// nftSetSize counts the elements of a set in Rampart's table with the nft
// binary (not through Rampart, which would repair what it reads); -1 when
// the set is not there.
func nftSetSize(t *testing.T, ns *netnstest.Namespace, set string) int {
	t.Helper()
	out, err := ns.Exec("nft", "-j", "list", "set", "inet", "rampart", set)
	if err != nil {
		return -1
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v", err)
	}
	for _, o := range doc.Nftables {
		if raw, ok := o["set"]; ok {
			var s struct {
				Elem []json.RawMessage `json:"elem"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatalf("nft -j set: %v", err)
			}
			return len(s.Elem)
		}
	}
	return -1
}

// TestDaemonRestoresFlushedRuleset runs the daemon with 10,000 active bans
// from its store (nftables in a network namespace), a known-good client
// carved out of a banned /24, then flushes the whole ruleset the way
// another program would: within one second every ban and the carve-out are
// back in the kernel, a banned client is dropped again, the good client
// still gets through, and status counts the repair.
func TestDaemonRestoresFlushedRuleset(t *testing.T) {
	p := netnstest.New(t)
	netnstest.RequireBinary(t, "nft")
	ctx := context.Background()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(writeConfig(t, dir, logPath, 3))
	if err != nil {
		t.Fatal(err)
	}
	bad, good, neighbour := p.Attacker4[0], p.Attacker4[1], p.Attacker4[2]
	now := time.Now()
	bans := make([]event.Decision, 0, 10_000)
	for i := range 9_998 {
		a := netip.AddrFrom4([4]byte{10, 100 + byte(i>>16), byte(i >> 8), byte(i)})
		bans = append(bans, event.Decision{Target: event.AddrPrefix(a), Action: event.Ban, Start: now, Duration: time.Hour, Scenario: "ip-failures", Jail: "sshd"})
	}
	bans = append(bans,
		event.Decision{Target: event.AddrPrefix(bad), Action: event.Ban, Start: now, Duration: time.Hour, Scenario: "ip-failures", Jail: "sshd"},
		event.Decision{Target: netip.PrefixFrom(bad, 24).Masked(), Action: event.Ban, Start: now, Duration: time.Hour, Scenario: "prefix", Jail: "sshd"})
	st, err := openStore(ctx, cfg.Daemon.StateDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordDecisions(ctx, bans); err != nil {
		t.Fatal(err)
	}
	if err := st.AddKnownGood(ctx, good, "alice", now); err != nil {
		t.Fatal(err)
	}
	st.Close()

	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	enf, err := firewall.NewNFTables(ctx, firewall.NFTablesConfig{NetNSFd: p.Server.Fd(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// Only Watch triggers a check within the test's time.
	d, err := New(ctx, Options{Config: cfg, Logger: log, Enforcer: enf, EnforcerName: "nftables", ReconcileEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { err := d.Run(rctx, nil); d.Close(); done <- err }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	srv := p.Listen(netip.AddrPortFrom(p.Server4, 0))
	check := func(when string) {
		t.Helper()
		if p.CanConnect(p.Attacker, bad, srv, 400*time.Millisecond) {
			t.Errorf("%s: the banned address connects", when)
		}
		if p.CanConnect(p.Attacker, neighbour, srv, 400*time.Millisecond) {
			t.Errorf("%s: its neighbour in the banned /24 connects", when)
		}
		if !p.CanConnect(p.Attacker, good, srv, 3*time.Second) {
			t.Errorf("%s: the known-good client in the banned /24 cannot connect", when)
		}
	}
	check("before the flush")
	// Watch reports once when it starts listening; its check follows.
	deadline := time.Now().Add(10 * time.Second)
	for d.checks.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the firewall is not being watched")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := nftSetSize(t, p.Server, "ban4"); n != 9_999 {
		t.Fatalf("ban4 holds %d before the flush, want 9999", n)
	}

	p.Server.MustExec("nft", "flush", "ruleset")
	flushed := time.Now()
	deadline = flushed.Add(time.Second)
	for {
		if nftSetSize(t, p.Server, "ban4") == 9_999 && nftSetSize(t, p.Server, "bannet4") == 1 && nftSetSize(t, p.Server, "carve4") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("one second after nft flush ruleset: ban4 %d, bannet4 %d, carve4 %d elements; want 9999, 1, 1",
				nftSetSize(t, p.Server, "ban4"), nftSetSize(t, p.Server, "bannet4"), nftSetSize(t, p.Server, "carve4"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("everything back %v after the flush", time.Since(flushed).Round(time.Millisecond))
	check("after the flush")
	fw := d.Status().Firewall
	if fw.Repairs != 1 || fw.Restored < 10_001 || fw.CarvedOut != 1 {
		t.Errorf("status firewall = %+v, want 1 repair of at least 10,001 entries and 1 carved out", fw)
	}
}

// testLog sends log output to t.Log.
type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}
