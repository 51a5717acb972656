package firewall

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/netnstest"
	"github.com/rampart-dev/rampart/internal/nflog"
	"golang.org/x/sys/unix"
)

// holdServer listens on addr in the server namespace and keeps every
// connection open until the test ends, so the kernel counts them.
func holdServer(t *testing.T, p *netnstest.Pair, addr netip.AddrPort) netip.AddrPort {
	t.Helper()
	var l net.Listener
	if err := p.Server.Do(func() error {
		var err error
		l, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// dial opens a TCP connection from src in ns; nil when it does not complete
// within timeout (a dropped SYN). Open connections close when the test ends.
func dial(t *testing.T, ns *netnstest.Namespace, src netip.Addr, dst netip.AddrPort, timeout time.Duration) net.Conn {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, _ = d.Dial("tcp", dst.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c
}

// dialMany dials n connections at once and returns how many completed.
func dialMany(t *testing.T, ns *netnstest.Namespace, src netip.Addr, dst netip.AddrPort, n int, timeout time.Duration) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c := dial(t, ns, src, dst, timeout); c != nil {
				c.Close()
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok
}

func newShields(t *testing.T, ns *netnstest.Namespace, cfg ShieldsConfig) *Shields {
	t.Helper()
	cfg.NetNSFd = ns.Fd()
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	s, err := NewShields(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewShields: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func counters(t *testing.T, s *Shields) map[string]uint64 {
	t.Helper()
	cs, err := s.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, c := range cs {
		m[c.Group+" "+c.Kind] = c.Packets
	}
	return m
}

// TestShieldsConnectionLimits: a source holds at most Conns connections, a
// /24 (/64) at most NetConns; over-limit SYNs are dropped and counted;
// carved-out (known-good) and allowlisted sources are exempt; other ports
// are untouched.
func TestShieldsConnectionLimits(t *testing.T) {
	p := netnstest.New(t)
	e := newNFT(t, p.Server, nil)
	srv4 := holdServer(t, p, netip.AddrPortFrom(p.Server4, 0))
	srv6 := holdServer(t, p, netip.AddrPortFrom(p.Server6, srv4.Port()))
	other := holdServer(t, p, netip.AddrPortFrom(p.Server4, 0))
	s := newShields(t, p.Server, ShieldsConfig{Groups: []ShieldGroup{{Name: "test", Ports: []uint16{srv4.Port()}, Conns: 3, NetConns: 5}}})

	const quick = 400 * time.Millisecond
	a, b, good := p.Attacker4[0], p.Attacker4[1], p.Attacker4[2]
	for i := range 3 {
		if dial(t, p.Attacker, a, srv4, time.Second) == nil {
			t.Fatalf("connection %d from %s refused under the limit", i+1, a)
		}
	}
	if dial(t, p.Attacker, a, srv4, quick) != nil {
		t.Fatalf("a 4th connection from %s got through a limit of 3", a)
	}
	if dial(t, p.Attacker, a, other, time.Second) == nil {
		t.Fatalf("a port no group protects was limited")
	}
	for i := range 2 {
		if dial(t, p.Attacker, b, srv4, time.Second) == nil {
			t.Fatalf("connection %d from %s refused under the limits", i+1, b)
		}
	}
	if dial(t, p.Attacker, b, srv4, quick) != nil {
		t.Fatalf("a 6th connection from the /24 got through a limit of 5")
	}
	// A known-good client of the same /24 is carved out: no limit applies.
	if err := e.Carve(context.Background(), []CarveOut{{Addr: good}}); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if dial(t, p.Attacker, good, srv4, time.Second) == nil {
			t.Fatalf("connection %d from carved-out %s was limited", i+1, good)
		}
	}
	// IPv6: per source, on the same port.
	a6 := p.Attacker6[0]
	for i := range 3 {
		if dial(t, p.Attacker, a6, srv6, time.Second) == nil {
			t.Fatalf("IPv6 connection %d refused under the limit", i+1)
		}
	}
	if dial(t, p.Attacker, a6, srv6, quick) != nil {
		t.Fatalf("a 4th IPv6 connection got through a limit of 3")
	}
	// An allowlisted network is exempt too.
	if err := e.SetAllow(context.Background(), []netip.Prefix{netOf(a)}); err != nil {
		t.Fatal(err)
	}
	if dial(t, p.Attacker, a, srv4, time.Second) == nil {
		t.Fatalf("an allowlisted source was limited")
	}
	c := counters(t, s)
	if c["test conn"] < 2 || c["test net"] < 1 {
		t.Errorf("counters %v: want conn >= 2 (IPv4 and IPv6), net >= 1", c)
	}
}

// TestShieldsRates: a source opening connections faster than its rate is
// cut to the burst and the rate, while another source is untouched; the
// SYN guard caps everyone together.
func TestShieldsRates(t *testing.T) {
	p := netnstest.New(t)
	newNFT(t, p.Server, nil)
	srv := holdServer(t, p, netip.AddrPortFrom(p.Server4, 0))
	guarded := holdServer(t, p, netip.AddrPortFrom(p.Server4, 0))
	s := newShields(t, p.Server, ShieldsConfig{Groups: []ShieldGroup{
		{Name: "rate", Ports: []uint16{srv.Port()}, Rate: 1, Burst: 5},
		{Name: "guard", Ports: []uint16{guarded.Port()}, SYNRate: 1, SYNBurst: 8},
	}})
	got := dialMany(t, p.Attacker, p.Attacker4[0], srv, 30, 500*time.Millisecond)
	if got < 5 || got > 8 {
		t.Errorf("%d of 30 quick connections got through a rate of 1/s with a burst of 5", got)
	}
	if dial(t, p.Attacker, p.Attacker4[1], srv, time.Second) == nil {
		t.Errorf("another source was limited by the first one's rate")
	}
	total := 0
	for _, a := range p.Attacker4 {
		total += dialMany(t, p.Attacker, a, guarded, 10, 500*time.Millisecond)
	}
	if total < 8 || total > 11 {
		t.Errorf("%d of 30 connections from three sources got through a SYN guard of 1/s with a burst of 8", total)
	}
	c := counters(t, s)
	if c["rate rate"] < 20 || c["guard syn"] < 18 {
		t.Errorf("counters %v: want rate >= 20, syn >= 18", c)
	}
}

// TestShieldsReconcile: after `nft flush ruleset`, the enforcer's
// Reconcile and then the shields' put everything back, and the counters
// keep their totals; a port deleted by hand is put back; a reconfigured
// limit replaces the old one.
func TestShieldsReconcile(t *testing.T) {
	netnstest.RequireBinary(t, "nft")
	p := netnstest.New(t)
	e := newNFT(t, p.Server, nil)
	srv := holdServer(t, p, netip.AddrPortFrom(p.Server4, 0))
	cfg := ShieldsConfig{Groups: []ShieldGroup{{Name: "ssh", Ports: []uint16{srv.Port(), 2222}, Conns: 1}}}
	s := newShields(t, p.Server, cfg)
	ctx := context.Background()
	a := p.Attacker4[0]
	limited := func(n int) bool {
		t.Helper()
		for range n {
			if dial(t, p.Attacker, a, srv, time.Second) == nil {
				return false
			}
		}
		return dial(t, p.Attacker, a, srv, 300*time.Millisecond) == nil
	}
	if !limited(1) {
		t.Fatal("limit of 1 not enforced")
	}
	if rep, err := s.Reconcile(ctx); err != nil || !rep.Empty() {
		t.Fatalf("reconcile of an intact table: %v, %v", rep, err)
	}
	before := counters(t, s)["ssh conn"]

	p.Server.MustExec("nft", "flush", "ruleset")
	if _, err := e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Reconcile(ctx)
	if err != nil || rep.Empty() {
		t.Fatalf("reconcile after a flush: %v, %v", rep, err)
	}
	if after := counters(t, s)["ssh conn"]; after < before {
		t.Errorf("counter went from %d to %d across the repair", before, after)
	}
	if s.Stats().Repairs != 1 {
		t.Errorf("repairs = %d, want 1", s.Stats().Repairs)
	}
	// The per-source state was lost with the flush: the old connection no
	// longer counts, so one more gets in, then the limit holds.
	if !limited(1) {
		t.Fatal("limit not enforced after the repair")
	}

	p.Server.MustExec("nft", "delete", "element", "inet", "rampart", "shield_ssh_ports", "{ 2222 }")
	rep, err = s.Reconcile(ctx)
	if err != nil || !strings.Contains(strings.Join(rep.Fixed, ","), "shield_ssh_ports") {
		t.Fatalf("reconcile after a deleted port: %v, %v", rep, err)
	}
	if out := p.Server.MustExec("nft", "list", "set", "inet", "rampart", "shield_ssh_ports"); !strings.Contains(out, "2222") {
		t.Errorf("port 2222 not put back:\n%s", out)
	}

	cfg.Groups[0].Conns = 5
	if err := s.Reconfigure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if !limited(5) {
		t.Fatal("reconfigured limit of 5 not enforced")
	}
	if out := p.Server.MustExec("nft", "list", "table", "inet", "rampart"); !strings.Contains(out, "ct count over 5") || strings.Contains(out, "ct count over 1 ") {
		t.Errorf("table after reconfiguration:\n%s", out)
	}
	// The enforcer's own objects were left alone by the shields.
	if rep, err := e.Reconcile(ctx); err != nil || !rep.Empty() {
		t.Errorf("enforcer reconcile after the shields' changes: %v, %v", rep, err)
	}
}

// TestShieldsLog: drops and closed-port replies reach an NFLOG reader with
// their shield's prefix; the scanner is the reply's destination.
func TestShieldsLog(t *testing.T) {
	p := netnstest.New(t)
	newNFT(t, p.Server, nil)
	srv := holdServer(t, p, netip.AddrPortFrom(p.Server4, 0))
	const group = 4242
	s := newShields(t, p.Server, ShieldsConfig{LogGroup: group, LogDrops: true, Portscan: true,
		Groups: []ShieldGroup{{Name: "mail", Ports: []uint16{srv.Port()}, Conns: 1}}})
	r, err := nflog.Open(nflog.Config{Group: group, NetNSFd: p.Server.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type seen struct {
		prefix string
		h      nflog.Headers
	}
	got := make(chan seen, 100)
	done := make(chan error)
	go func() {
		done <- r.Run(ctx, func(pk nflog.Packet) {
			h, ok := nflog.ParseHeaders(pk.Payload)
			if !ok {
				t.Errorf("unparsable payload % x", pk.Payload)
			}
			select {
			case got <- seen{pk.Prefix, h}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		r.Close()
	})

	a := p.Attacker4[0]
	dial(t, p.Attacker, a, srv, time.Second)
	dial(t, p.Attacker, a, srv, 300*time.Millisecond) // over the limit
	closed := netip.AddrPortFrom(p.Server4, 1)        // nothing listens there
	if dial(t, p.Attacker, a, closed, time.Second) != nil {
		t.Fatal("port 1 is open")
	}
	// A UDP probe of a closed port is answered with ICMP port unreachable.
	if err := p.Attacker.Do(func() error {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Server4, 9)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("probe"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"rampart shield mail conn": false, "rampart portscan": false, "udp": false}
	deadline := time.After(5 * time.Second)
	for !want["rampart shield mail conn"] || !want["rampart portscan"] || !want["udp"] {
		select {
		case sn := <-got:
			group, kind, ok := ParseShieldPrefix(sn.prefix)
			switch {
			case !ok:
				t.Errorf("unknown prefix %q", sn.prefix)
			case kind == ShieldScan && sn.h.PortUnreachable:
				if sn.h.Dst != a || sn.h.InnerProto != unix.IPPROTO_UDP || sn.h.InnerDstPort != 9 {
					t.Errorf("scan log: %+v, want port unreachable for UDP port 9 to %s", sn.h, a)
				}
				want["udp"] = true
				continue
			case kind == ShieldScan:
				if sn.h.Dst != a || sn.h.Proto != unix.IPPROTO_TCP || sn.h.SrcPort != 1 || sn.h.TCPFlags&0x04 == 0 {
					t.Errorf("scan log: %+v, want a reset from port 1 to %s", sn.h, a)
				}
			case group == "mail" && kind == ShieldConn:
				if sn.h.Src != a || sn.h.DstPort != srv.Port() || sn.h.TCPFlags&0x02 == 0 {
					t.Errorf("drop log: %+v, want a SYN from %s to port %d", sn.h, a, srv.Port())
				}
			}
			want[sn.prefix] = true
		case <-deadline:
			t.Fatalf("logged so far: %v", want)
		}
	}
	if c := counters(t, s); c[" scan"] < 1 || c["mail conn"] < 1 {
		t.Errorf("counters %v", c)
	}
}
