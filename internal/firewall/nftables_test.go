package firewall

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
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
	for _, want := range []string{"set ban4", "set ban6", "set bannet4", "set bannet6", "set allow4", "set allow6", "set carve4", "set carve6",
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

// TestNFTablesReconcile removes Rampart's state from the kernel in the ways
// other programs do and checks that Reconcile puts back exactly what the
// enforcer was told: bans (address and prefix), carve-outs, the allowlist.
func TestNFTablesReconcile(t *testing.T) {
	edits := []reconcileEdit{
		{"FlushRuleset", "flush ruleset", Repair{Bans: 5, CarveOuts: 1, AllowEntries: 1}, true},
		{"DeleteTable", "delete table inet rampart", Repair{Bans: 5, CarveOuts: 1, AllowEntries: 1}, true},
		{"FlushBanSet", "flush set inet rampart ban4", Repair{Bans: 1}, false},
		{"DeleteElements", "delete element inet rampart carve4 { {carved} }; delete element inet rampart bannet4 { {net} }", Repair{Bans: 1, CarveOuts: 1}, false},
		{"FlushAllowSet", "flush set inet rampart allow4", Repair{AllowEntries: 1}, false},
		{"FlushPortSet", "flush set inet rampart banport4", Repair{Bans: 2}, false},
	}
	for _, ed := range edits {
		t.Run(ed.name, func(t *testing.T) {
			p := netnstest.New(t)
			netnstest.RequireBinary(t, "nft")
			e := newNFT(t, p.Server, nil)
			checkReconcile(t, p, e, ed, func(cmd string) { p.Server.MustExec("nft", cmd) })
			if out := p.Server.MustExec("nft", "list", "set", "inet", "rampart", "allow4"); !strings.Contains(out, "192.0.2.0/24") {
				t.Errorf("allowlist not restored:\n%s", out)
			}
		})
	}
}

// TestNFTablesOwnCommitsStayCheap checks that the enforcer's own batches
// keep the kernel known to hold its intent, so Reconcile after them only
// reads the generation; and that someone else's commit, anywhere in the
// ruleset, makes the next Reconcile compare the sets.
func TestNFTablesOwnCommitsStayCheap(t *testing.T) {
	ctx := context.Background()
	ns := netnstest.NewNamespace(t, "srv")
	netnstest.RequireBinary(t, "nft")
	e := newNFT(t, ns, nil)
	if _, err := e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	known := func() bool { e.mu.Lock(); defer e.mu.Unlock(); return e.genOK }
	if !known() {
		t.Fatal("the kernel is not known to hold the intent after Reconcile")
	}
	steps := []func() error{
		func() error {
			return e.Apply(ctx, []event.Decision{banFor(pfx("192.0.2.1"), time.Hour), banFor(pfx("198.51.100.0/24"), time.Hour)})
		},
		func() error {
			return e.Carve(ctx, []CarveOut{{Addr: netip.MustParseAddr("198.51.100.7"), Until: time.Now().Add(time.Hour)}})
		},
		func() error { return e.SetAllow(ctx, []netip.Prefix{pfx("203.0.113.0/24")}) },
		func() error { return e.Revoke(ctx, []netip.Prefix{pfx("192.0.2.1")}) },
		func() error { _, err := e.Active(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if !known() {
			t.Fatalf("step %d: an own commit made the next Reconcile compare everything", i)
		}
	}
	ns.MustExec("nft", "add table ip other")
	if rep, err := e.Reconcile(ctx); err != nil || !rep.Empty() {
		t.Errorf("Reconcile after an unrelated commit = %+v, %v; want a comparison that finds nothing", rep, err)
	}
	if !known() {
		t.Error("not known to hold the intent after a comparison")
	}
	// An Apply that fails after it was accepted (here: cancelled before
	// its batch is sent) leaves the next Reconcile to compare, and to send
	// the ban.
	if err := e.Apply(&cancelLater{Context: ctx}, []event.Decision{banFor(pfx("192.0.2.2"), time.Hour)}); err == nil {
		t.Fatal("cancelled Apply succeeded")
	}
	if known() {
		t.Error("a failed Apply left the kernel known to hold the intent")
	}
	if rep, err := e.Reconcile(ctx); err != nil || rep.Bans != 1 {
		t.Errorf("Reconcile after the failed Apply = %+v, %v; want the ban put back", rep, err)
	}
}

// TestNFTablesWatch checks that Watch asks for a Reconcile after another
// program touched Rampart's table, and not after a commit that left it
// alone (which it notes as harmless, so the Reconcile stays cheap).
func TestNFTablesWatch(t *testing.T) {
	ns := netnstest.NewNamespace(t, "srv")
	netnstest.RequireBinary(t, "nft")
	e := newNFT(t, ns, nil)
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- e.Watch(ctx, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}()
	wake := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Fatalf("Watch did not report %s", what)
		}
	}
	wake("its start")
	known := func() bool { e.mu.Lock(); defer e.mu.Unlock(); return e.genOK }
	// Watch reads commits once it has joined: touch the table until it
	// reports one.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		if _, err := e.Reconcile(context.Background()); err != nil || !known() {
			t.Fatalf("Reconcile: %v", err)
		}
		ns.MustExec("nft", fmt.Sprintf("add element inet rampart ban4 { 192.0.2.%d }", i+1))
		select {
		case <-changed:
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("Watch reported no change to Rampart's table")
			}
			continue
		}
		break
	}
	if _, err := e.Reconcile(context.Background()); err != nil || !known() {
		t.Fatalf("Reconcile: %v", err)
	}
	// Commits elsewhere: noted, no report, the kernel still known to hold
	// the intent at the new generation.
	ns.MustExec("nft", "add table ip other")
	ns.MustExec("nft", "add chain ip other c")
	gen := func() uint32 {
		nl, err := e.dialNetlink()
		if err != nil {
			t.Fatal(err)
		}
		defer nl.Close()
		g, err := getGen(nl)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}()
	waitFor(t, 5*time.Second, "Watch to note the commits elsewhere", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.genOK && e.gen == gen
	})
	select {
	case <-changed:
		t.Error("Watch reported commits that left Rampart's table alone")
	default:
	}
	ns.MustExec("nft", "flush ruleset")
	wake("nft flush ruleset")
	if rep, err := e.Reconcile(context.Background()); err != nil || len(rep.Fixed) == 0 {
		t.Errorf("Reconcile after the flush = %+v, %v", rep, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch returned %v after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

// TestNFTablesUpgradeOldTable starts on the table an earlier Rampart made
// (no carve sets, the old rule order) and checks that it is upgraded in
// place with its bans kept.
func TestNFTablesUpgradeOldTable(t *testing.T) {
	ns := netnstest.NewNamespace(t, "srv")
	netnstest.RequireBinary(t, "nft")
	old := `table inet rampart {
	set ban4 { type ipv4_addr; flags timeout; elements = { 192.0.2.1 timeout 1h } }
	set ban6 { type ipv6_addr; flags timeout; }
	set bannet4 { type ipv4_addr; flags interval,timeout; elements = { 198.51.100.0/24 timeout 1h } }
	set bannet6 { type ipv6_addr; flags interval,timeout; }
	set allow4 { type ipv4_addr; flags interval; }
	set allow6 { type ipv6_addr; flags interval; }
	chain prerouting {
		type filter hook prerouting priority raw; policy accept;
		ip saddr @allow4 counter accept comment "rampart allow4 accept"
		ip6 saddr @allow6 counter accept comment "rampart allow6 accept"
		ip saddr @ban4 counter drop comment "rampart ban4 drop"
		ip saddr @bannet4 counter drop comment "rampart bannet4 drop"
		ip6 saddr @ban6 counter drop comment "rampart ban6 drop"
		ip6 saddr @bannet6 counter drop comment "rampart bannet6 drop"
	}
}
`
	f := filepath.Join(t.TempDir(), "old.nft")
	if err := os.WriteFile(f, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.MustExec("nft", "-f", f)
	var logs bytes.Buffer
	e := newNFT(t, ns, func(c *NFTablesConfig) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	if !strings.Contains(logs.String(), "upgraded in place") || strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("upgrade not logged as such:\n%s", logs.String())
	}
	checkActive(t, e, map[netip.Prefix]time.Duration{pfx("192.0.2.1"): time.Hour, pfx("198.51.100.0/24"): time.Hour})
	out := ns.MustExec("nft", "list", "chain", "inet", "rampart", "prerouting")
	order := []string{"@allow4", "@allow6", "@ban4", "@ban6", "@carve4", "@carve6", "@bannet4", "@bannet6"}
	last := -1
	for _, s := range order {
		i := strings.Index(out, s)
		if i < last {
			t.Errorf("rule for %s out of order:\n%s", s, out)
		}
		last = i
	}
	if st := e.Stats(); st.Repairs != 0 {
		t.Errorf("an upgrade counted as a repair: %+v", st)
	}
}

// cancelLater is a context that turns cancelled after its first Err call.
type cancelLater struct {
	context.Context
	calls int
}

func (c *cancelLater) Err() error {
	c.calls++
	if c.calls > 1 {
		return context.Canceled
	}
	return nil
}

// reconcileBench is an enforcer holding 100,000 address bans, 1,000 prefix
// bans and 1,000 carve-outs, whose kernel is known to hold them.
func reconcileBench(b *testing.B) (*NFTables, *netnstest.Namespace) {
	ns := netnstest.NewNamespace(b, "bench")
	ds := make([]event.Decision, 0, 101_000)
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		ds = append(ds, banFor(event.AddrPrefix(a), time.Hour))
	}
	for i := range 1000 {
		ds = append(ds, banFor(netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16 + byte(i>>8), byte(i), 0}), 24), time.Hour))
	}
	cs := make([]CarveOut, 1000)
	for i := range cs {
		cs[i] = CarveOut{Addr: netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}), Until: time.Now().Add(time.Hour)}
	}
	ctx := context.Background()
	e, err := NewNFTables(ctx, NFTablesConfig{NetNSFd: ns.Fd()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	if err := e.Apply(ctx, ds); err != nil {
		b.Fatal(err)
	}
	if err := e.Carve(ctx, cs); err != nil {
		b.Fatal(err)
	}
	if err := e.SetAllow(ctx, []netip.Prefix{pfx("203.0.113.0/24")}); err != nil {
		b.Fatal(err)
	}
	if _, err := e.Reconcile(ctx); err != nil {
		b.Fatal(err)
	}
	return e, ns
}

// BenchmarkReconcile100kUnchanged is the periodic pass when nobody else
// has committed: it reads the ruleset's generation.
func BenchmarkReconcile100kUnchanged(b *testing.B) {
	e, _ := reconcileBench(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if rep, err := e.Reconcile(ctx); err != nil || !rep.Empty() {
			b.Fatal(rep, err)
		}
	}
}

// BenchmarkReconcile100kCompare is the pass after another program
// committed something that did not touch Rampart's table: every set is
// dumped and compared, nothing is sent.
func BenchmarkReconcile100kCompare(b *testing.B) {
	e, _ := reconcileBench(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e.mu.Lock()
		e.genOK = false
		e.mu.Unlock()
		if rep, err := e.Reconcile(ctx); err != nil || !rep.Empty() {
			b.Fatal(rep, err)
		}
	}
}

// BenchmarkReconcile100kRestore is the pass after `nft flush ruleset`:
// the table is re-created and all 102,000 entries put back in one batch.
func BenchmarkReconcile100kRestore(b *testing.B) {
	e, ns := reconcileBench(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		ns.MustExec("nft", "flush", "ruleset")
		b.StartTimer()
		if rep, err := e.Reconcile(ctx); err != nil || rep.Bans != 101_000 || rep.CarveOuts != 1000 {
			b.Fatal(rep, err)
		}
	}
}
