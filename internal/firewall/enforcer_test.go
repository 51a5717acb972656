package firewall

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/netnstest"
)

// enforcer is what the daemon's Enforcer and Carver declare, with the
// listing and counters: every backend must satisfy it.
type enforcer interface {
	Apply(ctx context.Context, ds []event.Decision) error
	Revoke(ctx context.Context, targets []netip.Prefix) error
	Active(ctx context.Context) ([]event.Decision, error)
	SetAllow(ctx context.Context, allow []netip.Prefix) error
	Close() error
	Carve(ctx context.Context, cs []CarveOut) error
	Uncarve(ctx context.Context, addrs []netip.Addr) error
	CarveOuts(ctx context.Context) ([]CarveOut, error)
	Stats() Stats
}

// reconciler is what the kernel backends add.
type reconciler interface {
	enforcer
	Reconcile(ctx context.Context) (Repair, error)
}

var (
	_ reconciler = (*NFTables)(nil)
	_ reconciler = (*IPSet)(nil)
	_ enforcer   = (*Command)(nil)
	_ enforcer   = (*Log)(nil)
)

const (
	blockedWait = 400 * time.Millisecond // how long a dropped SYN is given
	connectWait = 3 * time.Second
)

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func banFor(p netip.Prefix, d time.Duration) event.Decision {
	return event.Decision{Target: p, Action: event.Ban, Duration: d, Scenario: "test", Reason: "test"}
}

func pfx(s string) netip.Prefix {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p
	}
	return event.AddrPrefix(netip.MustParseAddr(s))
}

func activeMap(t *testing.T, e enforcer) map[netip.Prefix]time.Duration {
	t.Helper()
	ds, err := e.Active(context.Background())
	if err != nil {
		t.Fatalf("Active: %v", err)
	}
	m := map[netip.Prefix]time.Duration{}
	for _, d := range ds {
		if d.Action != event.Ban {
			t.Errorf("Active returned action %v for %s", d.Action, d.Target)
		}
		if _, dup := m[d.Target]; dup {
			t.Errorf("Active returned %s twice", d.Target)
		}
		m[d.Target] = d.Duration
	}
	return m
}

// kernelBackend builds an enforcer working inside a Pair's server namespace.
type kernelBackend func(t *testing.T, p *netnstest.Pair) enforcer

// net24 returns the /24 (or /64) holding a.
func netOf(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, 24).Masked()
	}
	return netip.PrefixFrom(a, 64).Masked()
}

// targets pairs an IPv4 and an IPv6 check, so every scenario runs for both.
type family struct {
	name     string
	server   func(p *netnstest.Pair) netip.Addr
	service  func(p *netnstest.Pair) netip.Addr
	attacker func(p *netnstest.Pair) []netip.Addr
}

var families = []family{
	{"IPv4", func(p *netnstest.Pair) netip.Addr { return p.Server4 }, func(p *netnstest.Pair) netip.Addr { return p.Service4 }, func(p *netnstest.Pair) []netip.Addr { return p.Attacker4 }},
	{"IPv6", func(p *netnstest.Pair) netip.Addr { return p.Server6 }, func(p *netnstest.Pair) netip.Addr { return p.Service6 }, func(p *netnstest.Pair) []netip.Addr { return p.Attacker6 }},
}

// runKernelSuite runs the behaviour every kernel backend must show, with real
// TCP connections from the attacker namespace.
func runKernelSuite(t *testing.T, newEnforcer kernelBackend) {
	ctx := context.Background()
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			t.Run("BanBlocksOnlyTarget", func(t *testing.T) {
				p := netnstest.New(t)
				e := newEnforcer(t, p)
				srv := p.Listen(netip.AddrPortFrom(fam.server(p), 0))
				a := fam.attacker(p)
				if !p.CanConnect(p.Attacker, a[0], srv, connectWait) {
					t.Fatal("attacker cannot connect before any ban")
				}
				if err := e.Apply(ctx, []event.Decision{banFor(event.AddrPrefix(a[0]), time.Hour)}); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if p.CanConnect(p.Attacker, a[0], srv, blockedWait) {
					t.Error("banned address still connects")
				}
				if !p.CanConnect(p.Attacker, a[1], srv, connectWait) {
					t.Error("another attacker address cannot connect")
				}
			})

			t.Run("AllowInsideBannedPrefix", func(t *testing.T) {
				p := netnstest.New(t)
				e := newEnforcer(t, p)
				srv := p.Listen(netip.AddrPortFrom(fam.server(p), 0))
				a := fam.attacker(p)
				if err := e.SetAllow(ctx, []netip.Prefix{event.AddrPrefix(a[1])}); err != nil {
					t.Fatalf("SetAllow: %v", err)
				}
				if err := e.Apply(ctx, []event.Decision{banFor(netOf(a[0]), time.Hour)}); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if p.CanConnect(p.Attacker, a[0], srv, blockedWait) {
					t.Error("address in banned prefix still connects")
				}
				if p.CanConnect(p.Attacker, a[2], srv, blockedWait) {
					t.Error("another address in banned prefix still connects")
				}
				if !p.CanConnect(p.Attacker, a[1], srv, connectWait) {
					t.Error("allowlisted address in banned prefix cannot connect")
				}
			})

			t.Run("CarveOutInsideBannedPrefix", func(t *testing.T) {
				p := netnstest.New(t)
				e := newEnforcer(t, p)
				srv := p.Listen(netip.AddrPortFrom(fam.server(p), 0))
				a := fam.attacker(p) // all three in one /24 (/64)
				// a[1] carved out for a short while, a[2] carved out but
				// also banned as an address.
				short := time.Now().Add(2 * time.Second)
				cs := []CarveOut{{Addr: a[1], Until: short}, {Addr: a[2], Until: time.Now().Add(time.Hour)},
					{Addr: a[0], Until: time.Now().Add(-time.Second)}} // already over: skipped
				if err := e.Carve(ctx, cs); err != nil {
					t.Fatalf("Carve: %v", err)
				}
				if err := e.Apply(ctx, []event.Decision{banFor(netOf(a[0]), time.Hour), banFor(event.AddrPrefix(a[2]), time.Hour)}); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if !p.CanConnect(p.Attacker, a[1], srv, connectWait) {
					t.Error("carved-out address inside the banned prefix cannot connect")
				}
				if p.CanConnect(p.Attacker, a[0], srv, blockedWait) {
					t.Error("its neighbour in the banned prefix still connects")
				}
				if p.CanConnect(p.Attacker, a[2], srv, blockedWait) {
					t.Error("a carved-out address banned as an address still connects")
				}
				got, err := e.CarveOuts(ctx)
				if err != nil {
					t.Fatalf("CarveOuts: %v", err)
				}
				if len(got) != 2 || got[0].Addr != a[1] || got[1].Addr != a[2] ||
					got[0].Until.After(short.Add(time.Second)) || got[1].Until.Before(time.Now().Add(59*time.Minute)) {
					t.Errorf("CarveOuts = %v, want %s until about %v and %s for an hour", got, a[1], short, a[2])
				}
				if n := e.Stats().CarvedOut; n != 2 {
					t.Errorf("Stats().CarvedOut = %d, want 2", n)
				}
				// The kernel ends the carve-out; then the prefix ban covers it.
				waitFor(t, 15*time.Second, "the carve-out to expire", func() bool {
					return !p.CanConnect(p.Attacker, a[1], srv, blockedWait)
				})
				// Uncarve of present and absent addresses.
				if err := e.Uncarve(ctx, []netip.Addr{a[2], a[0]}); err != nil {
					t.Fatalf("Uncarve: %v", err)
				}
				if got, err := e.CarveOuts(ctx); err != nil || len(got) != 0 {
					t.Errorf("CarveOuts after expiry and Uncarve = %v, %v; want none", got, err)
				}
				if err := e.Carve(ctx, []CarveOut{{Addr: netip.Addr{}}}); err == nil {
					t.Error("Carve of an invalid address succeeded")
				}
			})

			t.Run("PerPortBan", func(t *testing.T) {
				p := netnstest.New(t)
				e := newEnforcer(t, p)
				ssh := p.Listen(netip.AddrPortFrom(fam.server(p), 0))
				web := p.Listen(netip.AddrPortFrom(fam.server(p), 0))
				a := fam.attacker(p)
				tcp := func(ap netip.AddrPort) event.PortRange {
					return event.PortRange{Proto: event.TCP, First: ap.Port(), Last: ap.Port()}
				}
				udp := event.PortRange{Proto: event.UDP, First: ssh.Port(), Last: ssh.Port()}
				sshBan := banFor(event.AddrPrefix(a[0]), time.Hour)
				sshBan.Ports = []event.PortRange{udp, tcp(ssh)}
				if err := e.Apply(ctx, []event.Decision{sshBan}); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if p.CanConnect(p.Attacker, a[0], ssh, blockedWait) {
					t.Error("address banned on a port still connects to it")
				}
				if !p.CanConnect(p.Attacker, a[0], web, connectWait) {
					t.Error("address banned on one port cannot connect to another")
				}
				if !p.CanConnect(p.Attacker, a[1], ssh, connectWait) {
					t.Error("another address cannot connect to the banned port")
				}
				checkPortBans(t, e, map[string]time.Duration{a[0].String() + " " + event.FormatPorts(event.NormalizePorts(sshBan.Ports)): time.Hour})

				// Another jail's shorter ban sharing the port: the port
				// keeps the longer ban.
				webBan := banFor(event.AddrPrefix(a[0]), 10*time.Minute)
				webBan.Ports = []event.PortRange{tcp(web), tcp(ssh)}
				if err := e.Apply(ctx, []event.Decision{webBan}); err != nil {
					t.Fatalf("Apply second: %v", err)
				}
				if p.CanConnect(p.Attacker, a[0], web, blockedWait) || p.CanConnect(p.Attacker, a[0], ssh, blockedWait) {
					t.Error("address banned on two ports still connects to one")
				}
				checkPortBans(t, e, map[string]time.Duration{
					a[0].String() + " " + event.FormatPorts(event.NormalizePorts(sshBan.Ports)): time.Hour,
					a[0].String() + " " + event.FormatPorts([]event.PortRange{tcp(web)}):        10 * time.Minute,
				})

				// A carve-out lets an address through prefix bans, not
				// through its own per-port ban.
				if err := e.Carve(ctx, []CarveOut{{Addr: a[0], Until: time.Now().Add(time.Hour)}}); err != nil {
					t.Fatalf("Carve: %v", err)
				}
				if p.CanConnect(p.Attacker, a[0], ssh, blockedWait) {
					t.Error("carved-out address gets through its per-port ban")
				}

				// Too many ports fail before anything changes.
				big := banFor(event.AddrPrefix(a[1]), time.Hour)
				big.Ports = []event.PortRange{{Proto: event.TCP, First: 1000, Last: 2000}}
				if err := e.Apply(ctx, []event.Decision{big}); err == nil {
					t.Error("a ban on 1001 ports was accepted")
				}

				// Revoke lifts every ban of the address.
				if err := e.Revoke(ctx, []netip.Prefix{event.AddrPrefix(a[0])}); err != nil {
					t.Fatalf("Revoke: %v", err)
				}
				if !p.CanConnect(p.Attacker, a[0], ssh, connectWait) || !p.CanConnect(p.Attacker, a[0], web, connectWait) {
					t.Error("revoked address cannot connect")
				}
				checkPortBans(t, e, map[string]time.Duration{})
			})

			t.Run("KernelExpiry", func(t *testing.T) {
				p := netnstest.New(t)
				e := newEnforcer(t, p)
				srv := p.Listen(netip.AddrPortFrom(fam.server(p), 0))
				a := fam.attacker(p)
				ds := []event.Decision{
					banFor(event.AddrPrefix(a[0]), 1500*time.Millisecond),
					banFor(netip.PrefixFrom(a[2], a[2].BitLen()-1).Masked(), 1500*time.Millisecond),
				}
				if err := e.Apply(ctx, ds); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if p.CanConnect(p.Attacker, a[0], srv, blockedWait) {
					t.Fatal("banned address connects before expiry")
				}
				// Nothing but the kernel removes the address ban.
				waitFor(t, 15*time.Second, "address ban to expire", func() bool {
					return p.CanConnect(p.Attacker, a[0], srv, blockedWait)
				})
				// The prefix ban too, except under the fallback for kernels
				// without interval timeouts, where Active expires it.
				waitFor(t, 15*time.Second, "prefix ban to expire and Active to be empty", func() bool {
					return len(activeMap(t, e)) == 0 && p.CanConnect(p.Attacker, a[2], srv, blockedWait)
				})
			})

			t.Run("Revoke", func(t *testing.T) {
				p := netnstest.New(t)
				e := newEnforcer(t, p)
				srv := p.Listen(netip.AddrPortFrom(fam.server(p), 0))
				a := fam.attacker(p)
				if err := e.Apply(ctx, []event.Decision{banFor(event.AddrPrefix(a[0]), time.Hour), banFor(netOf(a[1]), time.Hour)}); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if p.CanConnect(p.Attacker, a[0], srv, blockedWait) {
					t.Fatal("banned address connects")
				}
				absent := []netip.Prefix{pfx("192.0.2.7"), pfx("2001:db8::7"), pfx("198.51.100.0/24"), pfx("2001:db8:1::/48")}
				if err := e.Revoke(ctx, append([]netip.Prefix{event.AddrPrefix(a[0]), netOf(a[1])}, absent...)); err != nil {
					t.Fatalf("Revoke: %v", err)
				}
				if !p.CanConnect(p.Attacker, a[0], srv, connectWait) {
					t.Error("revoked address cannot connect")
				}
				if !p.CanConnect(p.Attacker, a[1], srv, connectWait) {
					t.Error("address in revoked prefix cannot connect")
				}
				if err := e.Revoke(ctx, []netip.Prefix{event.AddrPrefix(a[0]), netOf(a[1])}); err != nil {
					t.Errorf("Revoke of absent targets: %v", err)
				}
				if m := activeMap(t, e); len(m) != 0 {
					t.Errorf("Active after Revoke = %v, want empty", m)
				}
			})

			t.Run("ActiveAndRefresh", func(t *testing.T) {
				p := netnstest.New(t)
				e := newEnforcer(t, p)
				a := fam.attacker(p)
				single, wide := event.AddrPrefix(a[0]), netOf(a[0])
				perm := event.AddrPrefix(a[1])
				other := pfx("198.51.100.0/24")
				if fam.name == "IPv6" {
					other = pfx("2001:db8:5::/48")
				}
				ds := []event.Decision{
					banFor(single, time.Hour),
					banFor(wide, 30*time.Minute),
					banFor(perm, 0),
					banFor(other, 2*time.Hour),
					{Target: pfx("192.0.2.99"), Action: event.Tarpit, Duration: time.Hour}, // not a ban
				}
				if fam.name == "IPv4" {
					mapped := netip.AddrFrom16(netip.MustParseAddr("192.0.2.200").As16())
					ds = append(ds, banFor(netip.PrefixFrom(mapped, 128), time.Hour))
				}
				if err := e.Apply(ctx, ds); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				want := map[netip.Prefix]time.Duration{single: time.Hour, wide: 30 * time.Minute, perm: 0, other: 2 * time.Hour}
				if fam.name == "IPv4" {
					want[pfx("192.0.2.200")] = time.Hour
				}
				checkActive(t, e, want)

				// Re-applying replaces the timeout, shorter or longer, and
				// a timed ban can become permanent and back.
				ds = []event.Decision{banFor(single, 10*time.Minute), banFor(wide, 3*time.Hour), banFor(perm, time.Hour), banFor(other, 0)}
				if err := e.Apply(ctx, ds); err != nil {
					t.Fatalf("Apply again: %v", err)
				}
				want[single], want[wide], want[perm], want[other] = 10*time.Minute, 3*time.Hour, time.Hour, 0
				checkActive(t, e, want)

				// A decision from the store keeps its end.
				old := banFor(single, time.Hour)
				old.Start = time.Now().Add(-45 * time.Minute)
				expired := banFor(event.AddrPrefix(a[2]), time.Minute)
				expired.Start = time.Now().Add(-time.Hour)
				if err := e.Apply(ctx, []event.Decision{old, expired}); err != nil {
					t.Fatalf("Apply with Start: %v", err)
				}
				want[single] = 15 * time.Minute
				checkActive(t, e, want)
			})

			t.Run("SetAllowReplaces", func(t *testing.T) {
				p := netnstest.New(t)
				e := newEnforcer(t, p)
				srv := p.Listen(netip.AddrPortFrom(fam.server(p), 0))
				a := fam.attacker(p)
				if err := e.Apply(ctx, []event.Decision{banFor(netOf(a[0]), time.Hour)}); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if err := e.SetAllow(ctx, []netip.Prefix{event.AddrPrefix(a[0])}); err != nil {
					t.Fatalf("SetAllow: %v", err)
				}
				if !p.CanConnect(p.Attacker, a[0], srv, connectWait) || p.CanConnect(p.Attacker, a[1], srv, blockedWait) {
					t.Fatal("first allowlist not in force")
				}
				// Overlapping and duplicate entries are fine.
				allow := []netip.Prefix{event.AddrPrefix(a[1]), event.AddrPrefix(a[1]), pfx("192.0.2.0/24"), pfx("192.0.2.128/25"), pfx("2001:db8::/32")}
				if err := e.SetAllow(ctx, allow); err != nil {
					t.Fatalf("SetAllow replace: %v", err)
				}
				if p.CanConnect(p.Attacker, a[0], srv, blockedWait) {
					t.Error("address dropped from the allowlist still connects")
				}
				if !p.CanConnect(p.Attacker, a[1], srv, connectWait) {
					t.Error("address added to the allowlist cannot connect")
				}
				if err := e.SetAllow(ctx, nil); err != nil {
					t.Fatalf("SetAllow empty: %v", err)
				}
				if p.CanConnect(p.Attacker, a[1], srv, blockedWait) {
					t.Error("empty allowlist still lets an address through")
				}
			})

			t.Run("DNATPublishedPort", func(t *testing.T) {
				p := netnstest.New(t)
				e := newEnforcer(t, p)
				backend := p.Listen(netip.AddrPortFrom(fam.service(p), 0))
				pub := netip.AddrPortFrom(fam.server(p), 8080)
				p.PublishDNAT(pub, backend)
				a := fam.attacker(p)
				if !p.CanConnect(p.Attacker, a[0], pub, connectWait) {
					t.Fatal("published port not reachable before the ban")
				}
				if err := e.Apply(ctx, []event.Decision{banFor(event.AddrPrefix(a[0]), time.Hour)}); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if p.CanConnect(p.Attacker, a[0], pub, blockedWait) {
					t.Error("banned address reaches the DNAT-published port")
				}
				if !p.CanConnect(p.Attacker, a[1], pub, connectWait) {
					t.Error("another address cannot reach the published port")
				}
			})
		})
	}
}

// checkActive compares Active with want (target → full duration; 0 is no
// timeout), allowing for the seconds the test itself takes.
func checkActive(t *testing.T, e enforcer, want map[netip.Prefix]time.Duration) {
	t.Helper()
	got := activeMap(t, e)
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("Active lacks %s", p)
		case w == 0 && g != 0:
			t.Errorf("Active %s: duration %v, want none", p, g)
		case w != 0 && (g > w || g < w-10*time.Second):
			t.Errorf("Active %s: duration %v, want about %v", p, g, w)
		}
	}
	var extra []netip.Prefix
	for p := range got {
		if _, ok := want[p]; !ok {
			extra = append(extra, p)
		}
	}
	slices.SortFunc(extra, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if len(extra) > 0 {
		t.Errorf("Active has unexpected %v", extra)
	}
}

// checkPortBans compares the per-port bans Active reports (keyed "ADDR
// PORTS") with want, allowing for the seconds the test takes.
func checkPortBans(t *testing.T, e enforcer, want map[string]time.Duration) {
	t.Helper()
	ds, err := e.Active(context.Background())
	if err != nil {
		t.Fatalf("Active: %v", err)
	}
	got := map[string]time.Duration{}
	for _, d := range ds {
		if len(d.Ports) > 0 {
			got[d.Target.Addr().String()+" "+event.FormatPorts(d.Ports)] = d.Duration
		}
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || g > w || g < w-10*time.Second {
			t.Errorf("Active per-port %s: %v (present: %v), want about %v", k, g, ok, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("Active has unexpected per-port ban %s", k)
		}
	}
}

// reconcileEdit is one way another program changes a kernel backend's
// state behind its back: a command ({carved}: the carved-out address,
// {net}: the banned network) and what Reconcile must then put back
// (counts; fix: the structure itself was repaired, Fixed not empty).
type reconcileEdit struct {
	name string
	cmd  string
	want Repair
	fix  bool
}

// checkReconcile gives e an allowlist, a carve-out and bans (an address,
// a network, a permanent prefix, a port ban, and one revoked, which must
// not come back), runs ed's command with run, and checks that Reconcile
// restores exactly what e was told, the kernel dropping and passing as
// before.
func checkReconcile(t *testing.T, p *netnstest.Pair, e reconciler, ed reconcileEdit, run func(cmd string)) {
	t.Helper()
	ctx := context.Background()
	srv := p.Listen(netip.AddrPortFrom(p.Server4, 0))
	a := p.Attacker4
	other := pfx("198.51.100.0/24")
	if err := e.SetAllow(ctx, []netip.Prefix{pfx("192.0.2.0/24")}); err != nil {
		t.Fatal(err)
	}
	if err := e.Carve(ctx, []CarveOut{{Addr: a[1], Until: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	portBan := banFor(pfx("203.0.113.20"), time.Hour)
	portBan.Ports = []event.PortRange{{Proto: event.TCP, First: 22, Last: 22}, {Proto: event.UDP, First: 53, Last: 53}}
	if err := e.Apply(ctx, []event.Decision{banFor(event.AddrPrefix(a[2]), time.Hour), banFor(netOf(a[0]), time.Hour), banFor(other, 0), portBan}); err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, []event.Decision{banFor(pfx("203.0.113.9"), time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := e.Revoke(ctx, []netip.Prefix{pfx("203.0.113.9")}); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.Reconcile(ctx); err != nil || !rep.Empty() {
		t.Fatalf("Reconcile before any edit = %+v, %v; want nothing to do", rep, err)
	}
	cmd := strings.NewReplacer("{carved}", a[1].String(), "{net}", netOf(a[0]).String()).Replace(ed.cmd)
	run(cmd)
	if ed.fix && !p.CanConnect(p.Attacker, a[0], srv, connectWait) {
		t.Fatalf("after %q the banned prefix is still dropped: the edit did not take", cmd)
	}

	rep, err := e.Reconcile(ctx)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if rep.Bans != ed.want.Bans || rep.CarveOuts != ed.want.CarveOuts || rep.AllowEntries != ed.want.AllowEntries || (len(rep.Fixed) > 0) != ed.fix {
		t.Errorf("Reconcile = %+v, want %+v (structure repaired: %v)", rep, ed.want, ed.fix)
	}
	checkActive(t, e, map[netip.Prefix]time.Duration{event.AddrPrefix(a[2]): time.Hour, netOf(a[0]): time.Hour, other: 0, pfx("203.0.113.20"): time.Hour})
	checkPortBans(t, e, map[string]time.Duration{"203.0.113.20 22/tcp,53/udp": time.Hour})
	if cs, err := e.CarveOuts(ctx); err != nil || len(cs) != 1 || cs[0].Addr != a[1] {
		t.Errorf("CarveOuts after Reconcile = %v, %v", cs, err)
	}
	if p.CanConnect(p.Attacker, a[0], srv, blockedWait) || p.CanConnect(p.Attacker, a[2], srv, blockedWait) {
		t.Error("banned addresses connect after Reconcile")
	}
	if !p.CanConnect(p.Attacker, a[1], srv, connectWait) {
		t.Error("carved-out address cannot connect after Reconcile")
	}
	st := e.Stats()
	if st.Repairs != 1 || st.Restored != uint64(ed.want.Bans+ed.want.CarveOuts+ed.want.AllowEntries) || st.CarvedOut != 1 {
		t.Errorf("Stats = %+v", st)
	}
	if rep, err := e.Reconcile(ctx); err != nil || !rep.Empty() {
		t.Errorf("second Reconcile = %+v, %v; want nothing to do", rep, err)
	}
}
