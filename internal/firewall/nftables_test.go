package firewall

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/netnstest"
)

func newNFT(t testing.TB, ns *netnstest.Namespace, mod func(*NFTablesConfig)) *NFTables {
	t.Helper()
	cfg := NFTablesConfig{NetNSFd: ns.Fd(), Counters: true, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	if mod != nil {
		mod(&cfg)
	}
	e, err := NewNFTables(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewNFTables: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// testWriter sends log output to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func TestNFTables(t *testing.T) {
	runKernelSuite(t, func(t *testing.T, p *netnstest.Pair) enforcer {
		return newNFT(t, p.Server, nil)
	})
}

// TestNFTablesOldKernel runs the suite with the fallbacks for kernels that
// neither update an element's timeout on re-add nor time out interval
// elements: delete-and-re-add in one batch, and expiry kept by the enforcer.
func TestNFTablesOldKernel(t *testing.T) {
	runKernelSuite(t, func(t *testing.T, p *netnstest.Pair) enforcer {
		e := newNFT(t, p.Server, nil)
		e.mu.Lock()
		defer e.mu.Unlock()
		e.updatesTimeout, e.netTimeout = false, false
		e.defineSets()
		// The net sets now have the wrong flags; the next call re-creates them.
		return e
	})
}

func TestNFTablesKernelFeatures(t *testing.T) {
	ns := netnstest.NewNamespace(t, "srv")
	netnstest.RequireBinary(t, "nft")
	e := newNFT(t, ns, nil)
	t.Logf("kernel: timeout update on re-add: %v; interval+timeout sets: %v", e.updatesTimeout, e.netTimeout)
	if !e.netTimeout {
		t.Log("this kernel refuses interval+timeout sets; prefix bans use the in-daemon expiry fallback")
	}
	out := ns.MustExec("nft", "list", "tables")
	if strings.Contains(out, "probe") {
		t.Errorf("probe sets left behind: %s", out)
	}
	out = ns.MustExec("nft", "list", "table", "inet", "rampart")
	for _, want := range []string{"set ban4", "set ban6", "set bannet4", "set bannet6", "set allow4", "set allow6",
		"hook prerouting priority raw", "ip saddr @allow4", "ip6 saddr @bannet6", "counter"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "probe_") {
		t.Errorf("probe sets left in the table:\n%s", out)
	}
}

func TestNFTablesHandEdited(t *testing.T) {
	ctx := context.Background()
	edits := []struct {
		name string
		nft  []string
	}{
		// A set in use by a rule cannot be deleted (EBUSY): the rule goes first.
		{"DeleteSet", []string{"delete rule inet rampart prerouting handle H(ban4)", "delete set inet rampart ban4"}},
		{"DeleteChain", []string{"delete chain inet rampart prerouting"}},
		{"FlushChain", []string{"flush chain inet rampart prerouting"}},
		{"ChangeRule", []string{"replace rule inet rampart prerouting handle H(ban4) ip saddr @ban4 accept comment \"rampart ban4 drop\""}},
		{"AddRule", []string{"add rule inet rampart prerouting tcp dport 22 accept"}},
		{"RecreateSetWrongFlags", []string{"flush chain inet rampart prerouting", "delete set inet rampart bannet4", "add set inet rampart bannet4 { type ipv4_addr; }"}},
		{"DeleteTable", []string{"delete table inet rampart"}},
		{"ChainPolicy", []string{"add chain inet rampart prerouting { type filter hook prerouting priority raw; policy drop; }"}},
	}
	for _, ed := range edits {
		t.Run(ed.name, func(t *testing.T) {
			p := netnstest.New(t)
			netnstest.RequireBinary(t, "nft")
			var logs bytes.Buffer
			e := newNFT(t, p.Server, func(c *NFTablesConfig) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
			srv := p.Listen(netip.AddrPortFrom(p.Server4, 0))
			a := p.Attacker4
			if err := e.Apply(ctx, []event.Decision{banFor(event.AddrPrefix(a[0]), time.Hour)}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for _, cmd := range ed.nft {
				if strings.Contains(cmd, "H(ban4)") {
					cmd = strings.ReplaceAll(cmd, "H(ban4)", ruleHandle(t, p.Server, "@ban4"))
				}
				p.Server.MustExec("sh", "-c", "nft '"+cmd+"'")
			}
			// Apply notices, repairs and bans.
			if err := e.Apply(ctx, []event.Decision{banFor(event.AddrPrefix(a[1]), time.Hour)}); err != nil {
				t.Fatalf("Apply after hand edit: %v", err)
			}
			if !strings.Contains(logs.String(), "repaired") {
				t.Errorf("no repair logged; log:\n%s", logs.String())
			}
			t.Logf("log:\n%s", logs.String())
			if p.CanConnect(p.Attacker, a[1], srv, blockedWait) {
				t.Error("address banned after the repair still connects")
			}
			if !p.CanConnect(p.Attacker, a[2], srv, connectWait) {
				t.Error("unbanned address cannot connect after the repair")
			}
			if _, err := e.Active(ctx); err != nil {
				t.Errorf("Active after repair: %v", err)
			}
			out := p.Server.MustExec("nft", "list", "chain", "inet", "rampart", "prerouting")
			if strings.Contains(out, "dport 22") || strings.Contains(out, "policy drop") || strings.Count(out, "comment") != len(nftRules) {
				t.Errorf("chain not restored:\n%s", out)
			}
		})
	}

	t.Run("ActiveRepairs", func(t *testing.T) {
		ns := netnstest.NewNamespace(t, "srv")
		netnstest.RequireBinary(t, "nft")
		e := newNFT(t, ns, nil)
		ns.MustExec("nft", "delete", "table", "inet", "rampart")
		if m := activeMap(t, e); len(m) != 0 {
			t.Errorf("Active = %v, want empty", m)
		}
		ns.MustExec("nft", "list", "set", "inet", "rampart", "ban4")
	})
}

// ruleHandle returns the handle of the rule whose text contains match.
func ruleHandle(t *testing.T, ns *netnstest.Namespace, match string) string {
	t.Helper()
	out := ns.MustExec("nft", "-a", "list", "chain", "inet", "rampart", "prerouting")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, match) {
			if i := strings.LastIndex(line, "# handle "); i >= 0 {
				return strings.TrimSpace(line[i+len("# handle "):])
			}
		}
	}
	t.Fatalf("no rule matching %q in:\n%s", match, out)
	return ""
}

func TestNFTablesOverlappingPrefixes(t *testing.T) {
	ctx := context.Background()
	ns := netnstest.NewNamespace(t, "srv")
	netnstest.RequireBinary(t, "nft")
	e := newNFT(t, ns, nil)
	// Narrow first, then a wider one that swallows it, in separate and in
	// the same batch; then a narrower one inside the wide ban.
	steps := []struct {
		ds   []event.Decision
		want map[netip.Prefix]time.Duration
	}{
		{[]event.Decision{banFor(pfx("10.1.2.0/24"), time.Hour), banFor(pfx("10.9.0.0/16"), time.Hour)},
			map[netip.Prefix]time.Duration{pfx("10.1.2.0/24"): time.Hour, pfx("10.9.0.0/16"): time.Hour}},
		{[]event.Decision{banFor(pfx("10.1.0.0/16"), 2*time.Hour), banFor(pfx("10.1.3.0/24"), time.Hour)},
			map[netip.Prefix]time.Duration{pfx("10.1.0.0/16"): 2 * time.Hour, pfx("10.9.0.0/16"): time.Hour}},
		{[]event.Decision{banFor(pfx("10.1.7.0/24"), 5*time.Hour)},
			map[netip.Prefix]time.Duration{pfx("10.1.0.0/16"): 2 * time.Hour, pfx("10.9.0.0/16"): time.Hour}},
		{[]event.Decision{banFor(pfx("255.255.255.0/24"), time.Hour), banFor(pfx("ffff::/16"), time.Hour), banFor(pfx("10.10.0.0/16"), time.Hour)},
			map[netip.Prefix]time.Duration{pfx("10.1.0.0/16"): 2 * time.Hour, pfx("10.9.0.0/16"): time.Hour, pfx("10.10.0.0/16"): time.Hour,
				pfx("255.255.255.0/24"): time.Hour, pfx("ffff::/16"): time.Hour}},
	}
	for i, st := range steps {
		if err := e.Apply(ctx, st.ds); err != nil {
			t.Fatalf("step %d: Apply: %v", i, err)
		}
		t.Run(fmt.Sprint("step", i), func(t *testing.T) { checkActive(t, e, st.want) })
	}
	if err := e.Revoke(ctx, []netip.Prefix{pfx("10.9.0.0/16"), pfx("255.255.255.0/24"), pfx("ffff::/16"), pfx("10.1.7.0/24")}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	checkActive(t, e, map[netip.Prefix]time.Duration{pfx("10.1.0.0/16"): 2 * time.Hour, pfx("10.10.0.0/16"): time.Hour})

	// A range added by hand that is not a prefix is reported as prefixes.
	ns.MustExec("nft", "add element inet rampart bannet4 { 172.16.0.1-172.16.0.6 }")
	checkActive(t, e, map[netip.Prefix]time.Duration{pfx("10.1.0.0/16"): 2 * time.Hour, pfx("10.10.0.0/16"): time.Hour,
		pfx("172.16.0.1/32"): 0, pfx("172.16.0.2/31"): 0, pfx("172.16.0.4/31"): 0, pfx("172.16.0.6/32"): 0})
}

func TestNFTablesInvalidTarget(t *testing.T) {
	ns := netnstest.NewNamespace(t, "srv")
	e := newNFT(t, ns, nil)
	err := e.Apply(context.Background(), []event.Decision{banFor(pfx("192.0.2.1"), time.Hour), {Action: event.Ban}})
	if err == nil {
		t.Fatal("Apply with an invalid target succeeded")
	}
	if m := activeMap(t, e); len(m) != 0 {
		t.Errorf("Apply that failed changed the kernel: %v", m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Apply(ctx, []event.Decision{banFor(pfx("192.0.2.1"), time.Hour)}); err == nil {
		t.Error("Apply with a cancelled context succeeded")
	}
	e.Close()
	if err := e.Apply(context.Background(), nil); err == nil {
		t.Error("Apply after Close succeeded")
	}
}

func TestUninstallNFTables(t *testing.T) {
	ns := netnstest.NewNamespace(t, "srv")
	netnstest.RequireBinary(t, "nft")
	ns.MustExec("nft", "add table inet other; add chain inet other input { type filter hook input priority 0; }; add set inet other keep { type ipv4_addr; }")
	ns.MustExec("nft", "add table ip rampart") // same name, other family: not ours
	e := newNFT(t, ns, nil)
	if err := e.Apply(context.Background(), []event.Decision{banFor(pfx("192.0.2.1"), time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cfg := NFTablesConfig{NetNSFd: ns.Fd()}
	if err := UninstallNFTables(cfg); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	out := ns.MustExec("nft", "list", "tables")
	if strings.Contains(out, "inet rampart") {
		t.Errorf("table inet rampart survived:\n%s", out)
	}
	if !strings.Contains(out, "inet other") || !strings.Contains(out, "ip rampart") {
		t.Errorf("unrelated tables removed:\n%s", out)
	}
	ns.MustExec("nft", "list", "set", "inet", "other", "keep")
	if err := UninstallNFTables(cfg); err != nil {
		t.Errorf("second Uninstall: %v", err)
	}
}

// BenchmarkApply100k measures one Apply of 100,000 address bans (a fresh
// table each time: insertion, not refresh) inside a network namespace.
func BenchmarkApply100k(b *testing.B) {
	ns := netnstest.NewNamespace(b, "bench")
	ds := make([]event.Decision, 100_000)
	for i := range ds {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		ds[i] = banFor(event.AddrPrefix(a), time.Hour)
	}
	cfg := NFTablesConfig{NetNSFd: ns.Fd()}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := UninstallNFTables(cfg); err != nil {
			b.Fatal(err)
		}
		e, err := NewNFTables(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := e.Apply(ctx, ds); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(ds)), "bans/op")
}

// BenchmarkApply100kRefresh re-applies the same 100,000 bans to a set that
// holds them.
func BenchmarkApply100kRefresh(b *testing.B) {
	ns := netnstest.NewNamespace(b, "bench")
	ds := make([]event.Decision, 100_000)
	for i := range ds {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		ds[i] = banFor(event.AddrPrefix(a), time.Hour)
	}
	ctx := context.Background()
	e, err := NewNFTables(ctx, NFTablesConfig{NetNSFd: ns.Fd()})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Apply(ctx, ds); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := e.Apply(ctx, ds); err != nil {
			b.Fatal(err)
		}
	}
}
