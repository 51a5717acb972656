package firewall

import (
	"context"
	"log/slog"
	"net/netip"
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
	if len(ds) != len(want) || ds[0] != want[0] || ds[1] != want[1] {
		t.Errorf("parse = %+v, want %+v", ds, want)
	}
	if _, err := parseIPSetSave([]byte("add s nonsense timeout 1\n"), "s", now); err == nil {
		t.Error("bad member accepted")
	}
}
