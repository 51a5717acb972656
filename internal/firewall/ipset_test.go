package firewall

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/netnstest"
)

func requireIPSetTools(t testing.TB) {
	t.Helper()
	for _, b := range []string{"ipset", "iptables", "ip6tables", "iptables-restore", "ip6tables-restore"} {
		netnstest.RequireBinary(t, b)
	}
}

// countingRunner wraps a runner and counts the processes started.
type countingRunner struct {
	run   Runner
	calls []string
}

func (c *countingRunner) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	c.calls = append(c.calls, name+" "+strings.Join(args, " "))
	return c.run(ctx, stdin, name, args...)
}

func newIPSet(t testing.TB, ns *netnstest.Namespace) (*IPSet, *countingRunner) {
	t.Helper()
	requireIPSetTools(t)
	cr := &countingRunner{run: ns.Runner()}
	e, err := NewIPSet(context.Background(), IPSetConfig{Run: cr.Run, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatalf("NewIPSet: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e, cr
}

func TestIPSet(t *testing.T) {
	runKernelSuite(t, func(t *testing.T, p *netnstest.Pair) enforcer {
		e, _ := newIPSet(t, p.Server)
		return e
	})
}

func TestIPSetOneProcessPerApply(t *testing.T) {
	ns := netnstest.NewNamespace(t, "srv")
	e, cr := newIPSet(t, ns)
	ds := make([]event.Decision, 5000)
	for i := range ds {
		ds[i] = banFor(event.AddrPrefix(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})), time.Hour)
	}
	ds = append(ds, banFor(pfx("2001:db8::/48"), time.Hour), banFor(pfx("2001:db8:1::1"), 0))
	cr.calls = nil
	if err := e.Apply(context.Background(), ds); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(cr.calls) != 1 || !strings.HasPrefix(cr.calls[0], "ipset -exist restore") {
		t.Errorf("Apply ran %d processes: %v", len(cr.calls), cr.calls)
	}
	if got := len(activeMap(t, e)); got != len(ds) {
		t.Errorf("Active has %d bans, want %d", got, len(ds))
	}
}

func TestIPSetHandEdited(t *testing.T) {
	for _, edit := range [][]string{
		{"iptables", "-t", "raw", "-F", "RAMPART"},
		{"iptables", "-t", "raw", "-D", "PREROUTING", "-j", "RAMPART"},
		{"ip6tables", "-t", "raw", "-A", "RAMPART", "-j", "ACCEPT"},
	} {
		t.Run(strings.Join(edit, " "), func(t *testing.T) {
			p := netnstest.New(t)
			e, _ := newIPSet(t, p.Server)
			srv := p.Listen(netip.AddrPortFrom(p.Server4, 0))
			srv6 := p.Listen(netip.AddrPortFrom(p.Server6, 0))
			if err := e.Apply(context.Background(), []event.Decision{banFor(netOf(p.Attacker4[0]), time.Hour), banFor(netOf(p.Attacker6[0]), time.Hour)}); err != nil {
				t.Fatal(err)
			}
			p.Server.MustExec(edit...)
			if _, err := e.Active(context.Background()); err != nil {
				t.Fatalf("Active: %v", err)
			}
			if p.CanConnect(p.Attacker, p.Attacker4[0], srv, blockedWait) || p.CanConnect(p.Attacker, p.Attacker6[0], srv6, blockedWait) {
				t.Error("ban not in force after the repair")
			}
			out := p.Server.MustExec("iptables", "-t", "raw", "-S", "PREROUTING")
			if strings.Count(out, "-j RAMPART") != 1 {
				t.Errorf("want one jump to RAMPART:\n%s", out)
			}
		})
	}
}

func TestUninstallIPSet(t *testing.T) {
	ns := netnstest.NewNamespace(t, "srv")
	requireIPSetTools(t)
	ns.MustExec("ipset", "create", "other-set", "hash:ip")
	ns.MustExec("iptables", "-t", "raw", "-A", "PREROUTING", "-m", "set", "--match-set", "other-set", "src", "-j", "DROP")
	ns.MustExec("ip6tables", "-t", "raw", "-N", "OTHER")
	e, _ := newIPSet(t, ns)
	ctx := context.Background()
	if err := e.Apply(ctx, []event.Decision{banFor(pfx("192.0.2.1"), time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetAllow(ctx, []netip.Prefix{pfx("198.51.100.0/24")}); err != nil {
		t.Fatal(err)
	}
	if err := Uninstall(ctx, NFTablesConfig{NetNSFd: ns.Fd()}, IPSetConfig{Run: ns.Runner()}); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	sets := ns.MustExec("ipset", "list", "-n")
	if strings.Contains(sets, "rampart") || !strings.Contains(sets, "other-set") {
		t.Errorf("ipsets after Uninstall:\n%s", sets)
	}
	raw := ns.MustExec("iptables", "-t", "raw", "-S")
	if strings.Contains(raw, "RAMPART") || !strings.Contains(raw, "other-set") {
		t.Errorf("iptables raw after Uninstall:\n%s", raw)
	}
	raw6 := ns.MustExec("ip6tables", "-t", "raw", "-S")
	if strings.Contains(raw6, "RAMPART") || !strings.Contains(raw6, "-N OTHER") {
		t.Errorf("ip6tables raw after Uninstall:\n%s", raw6)
	}
	if err := UninstallIPSet(ctx, IPSetConfig{Run: ns.Runner()}); err != nil {
		t.Errorf("second Uninstall: %v", err)
	}
}

func TestParseIPSetSave(t *testing.T) {
	now := time.Unix(1000, 0)
	save := "create rampart-bannet4 hash:net family inet hashsize 1024 maxelem 1048576 timeout 0 bucketsize 12 initval 0x1\n" +
		"add rampart-bannet4 10.0.0.0/8 timeout 3599\n" +
		"add rampart-bannet4 192.0.2.0/24 timeout 0\n" +
		"add other 1.2.3.4\n"
	ds, err := parseIPSetSave([]byte(save), "rampart-bannet4", now)
	if err != nil {
		t.Fatal(err)
	}
	want := []event.Decision{
		{Target: pfx("10.0.0.0/8"), Action: event.Ban, Start: now, Duration: 3599 * time.Second},
		{Target: pfx("192.0.2.0/24"), Action: event.Ban, Start: now},
	}
	if !reflect.DeepEqual(ds, want) {
		t.Errorf("parse = %+v, want %+v", ds, want)
	}
	if _, err := parseIPSetSave([]byte("add s nonsense timeout 1\n"), "s", now); err == nil {
		t.Error("bad member accepted")
	}
}

// TestIPSetReconcile removes Rampart's state in the ways other programs do
// (a firewall manager's iptables-restore, ipset flush, a deleted member)
// and checks that Reconcile puts back what the enforcer was told.
func TestIPSetReconcile(t *testing.T) {
	reload := `printf '*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' | iptables-restore && ` +
		`printf '*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' | ip6tables-restore && ` +
		`for s in $(ipset list -n | grep ^rampart-); do ipset destroy $s; done`
	edits := []reconcileEdit{
		{"FirewallReload", reload, Repair{Bans: 5, CarveOuts: 1, AllowEntries: 1}, true},
		{"FlushBanSet", "ipset flush rampart-ban4", Repair{Bans: 1}, false},
		{"DeleteMembers", "ipset del rampart-carve4 {carved} && ipset del rampart-bannet4 {net}", Repair{Bans: 1, CarveOuts: 1}, false},
		{"FlushAllowSet", "ipset flush rampart-allow4", Repair{AllowEntries: 1}, false},
		{"DeletePortMember", "ipset del rampart-banport4 203.0.113.20,udp:53", Repair{Bans: 1}, false},
	}
	for _, ed := range edits {
		t.Run(ed.name, func(t *testing.T) {
			p := netnstest.New(t)
			e, _ := newIPSet(t, p.Server)
			checkReconcile(t, p, e, ed, func(cmd string) { p.Server.MustExec("sh", "-c", cmd) })
		})
	}
}

// TestIPSetUpgradeOldChain starts on the chain an earlier Rampart made (no
// carve rule) and checks that it is rewritten in place, its sets' members
// kept.
func TestIPSetUpgradeOldChain(t *testing.T) {
	ns := netnstest.NewNamespace(t, "srv")
	requireIPSetTools(t)
	for _, c := range [][]string{
		{"ipset", "create", "rampart-ban4", "hash:ip", "family", "inet", "timeout", "0", "maxelem", "1048576"},
		{"ipset", "create", "rampart-bannet4", "hash:net", "family", "inet", "timeout", "0", "maxelem", "1048576"},
		{"ipset", "create", "rampart-allow4", "hash:net", "family", "inet", "maxelem", "1048576"},
		{"ipset", "add", "rampart-ban4", "192.0.2.1", "timeout", "3600"},
		{"iptables", "-t", "raw", "-N", "RAMPART"},
		{"iptables", "-t", "raw", "-A", "RAMPART", "-m", "set", "--match-set", "rampart-allow4", "src", "-j", "RETURN"},
		{"iptables", "-t", "raw", "-A", "RAMPART", "-m", "set", "--match-set", "rampart-ban4", "src", "-j", "DROP"},
		{"iptables", "-t", "raw", "-A", "RAMPART", "-m", "set", "--match-set", "rampart-bannet4", "src", "-j", "DROP"},
		{"iptables", "-t", "raw", "-I", "PREROUTING", "1", "-j", "RAMPART"},
	} {
		ns.MustExec(c...)
	}
	var logs bytes.Buffer
	e, err := NewIPSet(context.Background(), IPSetConfig{Run: ns.Runner(), NoIPv6: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !strings.Contains(logs.String(), "upgraded") || strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("upgrade not logged as such:\n%s", logs.String())
	}
	out := ns.MustExec("iptables", "-t", "raw", "-S", "RAMPART")
	if !strings.Contains(out, "rampart-carve4 src -j RETURN") || strings.Index(out, "carve4") > strings.Index(out, "bannet4") {
		t.Errorf("chain not upgraded:\n%s", out)
	}
	checkActive(t, e, map[netip.Prefix]time.Duration{pfx("192.0.2.1"): time.Hour})
}

func TestParseIPSetTerse(t *testing.T) {
	out := "Name: rampart-ban4\nType: hash:ip\nNumber of entries: 12\n\nName: other\nNumber of entries: 3\n\nName: rampart-carve6\nHeader: family inet6\nNumber of entries: 0\n"
	got, err := parseIPSetTerse([]byte(out), "rampart-")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["rampart-ban4"] != 12 || got["rampart-carve6"] != 0 {
		t.Errorf("counts = %v", got)
	}
	if _, err := parseIPSetTerse([]byte("Name: rampart-x\nNumber of entries: many\n"), "rampart-"); err == nil {
		t.Error("bad count accepted")
	}
}
