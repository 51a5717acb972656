package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/netnstest"
	"github.com/rampart-dev/rampart/internal/store"
)

// TestFlushEndsBansInStore flushes a firewall holding the store's bans
// (nftables in a network namespace) and checks that the store ends them,
// with the history kept, so the next start does not put them back; and that
// flush refuses while a daemon answers on the control socket.
func TestFlushEndsBansInStore(t *testing.T) {
	ns := netnstest.NewNamespace(t, "flush")
	netnstest.RequireBinary(t, "nft")
	ctx := context.Background()
	dir := t.TempDir()
	cfg, err := config.Load(writeConfig(t, dir, filepath.Join(dir, "auth.log"), 3))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	bans := []event.Decision{
		{Target: netip.MustParsePrefix("192.0.2.7/32"), Action: event.Ban, Start: now, Duration: time.Hour, Scenario: "ip-failures", Reason: "5 failures", Jail: "sshd"},
		{Target: netip.MustParsePrefix("198.51.100.0/24"), Action: event.Ban, Start: now, Duration: time.Hour, Scenario: "prefix", Reason: "3 addresses", Jail: "sshd"},
	}
	st, err := openStore(ctx, cfg.Daemon.StateDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordDecisions(ctx, bans); err != nil {
		t.Fatal(err)
	}
	st.Close()
	nftCfg := firewall.NFTablesConfig{Table: cfg.Firewall.Table, NetNSFd: ns.Fd()}
	ipsCfg := firewall.IPSetConfig{Prefix: cfg.Firewall.Table + "-", Run: ns.Runner()}
	enf, err := firewall.NewNFTables(ctx, nftCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := enf.Apply(ctx, bans); err != nil {
		t.Fatal(err)
	}
	enf.Close()

	// A daemon answering on the socket: flush refuses and changes nothing.
	ln, err := net.Listen("unix", cfg.Daemon.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flush(ctx, cfg, nftCfg, ipsCfg); err == nil || !strings.Contains(err.Error(), "daemon is running") {
		t.Errorf("flush with a daemon running = %v, want a refusal", err)
	}
	ln.Close()
	if out := ns.MustExec("nft", "list", "tables"); !strings.Contains(out, "inet "+cfg.Firewall.Table) {
		t.Fatalf("refused flush removed the table:\n%s", out)
	}

	res, err := flush(ctx, cfg, nftCfg, ipsCfg)
	if err != nil {
		t.Fatalf("flush: %v", err)
	}
	if res.Ended != len(bans) {
		t.Errorf("flush ended %d bans, want %d", res.Ended, len(bans))
	}
	if out := ns.MustExec("nft", "list", "tables"); strings.Contains(out, "inet "+cfg.Firewall.Table) {
		t.Errorf("table survived the flush:\n%s", out)
	}

	// The next start re-applies nothing, and the history says why.
	log := slog.New(slog.DiscardHandler)
	next := firewall.NewLog(log)
	d, err := New(ctx, Options{Config: cfg, Logger: log, Enforcer: next, EnforcerName: "log"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if act, err := next.Active(ctx); err != nil || len(act) != 0 {
		t.Errorf("start after flush applied %v (err %v), want nothing", act, err)
	}
	hs, err := d.store.History(ctx, store.HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, h := range hs {
		if h.Revocation && h.Decision.Reason == FlushReason {
			revoked++
		}
		if !h.Revocation && h.RevokedAt.IsZero() {
			t.Errorf("ban %s not marked as ended: %+v", h.Decision.Target, h)
		}
	}
	if revoked != len(bans) || len(hs) != 2*len(bans) {
		t.Errorf("history has %d entries, %d ended by the flush; want %d and %d:\n%+v", len(hs), revoked, 2*len(bans), len(bans), hs)
	}
}
