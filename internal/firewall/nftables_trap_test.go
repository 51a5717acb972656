package firewall

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/netnstest"
)

// tagServer listens on addr in the server namespace and greets every
// connection with tag, so a client can tell which server it reached.
func tagServer(t *testing.T, p *netnstest.Pair, addr netip.AddrPort, tag string) {
	t.Helper()
	var l net.Listener
	if err := p.Server.Do(func() (err error) { l, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(tag + "\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
}

// reach dials dst from src in the attacker namespace and returns the tag
// of the server that answered, or "" when the connection got nowhere.
func reach(t *testing.T, p *netnstest.Pair, src netip.Addr, dst netip.AddrPort) string {
	t.Helper()
	var tag string
	err := p.Attacker.Do(func() error {
		d := net.Dialer{Timeout: 300 * time.Millisecond, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return nil
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		tag = strings.TrimSpace(line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// TestNFTablesTrap: a trapped address reaches the trap listener when it
// dials a mail port, and nothing else; others reach the real servers and
// never the trap listener; a ban wins over the trap; revoking, Active and
// the repair after a flushed ruleset cover the trap set.
func TestNFTablesTrap(t *testing.T) {
	netnstest.RequireBinary(t, "nft")
	p := netnstest.New(t)
	e := newNFT(t, p.Server, func(c *NFTablesConfig) {
		c.Trap = &TrapRedirect{Ports: map[uint16]uint16{587: 10587, 465: 10465}}
	})
	for _, srv := range []netip.Addr{p.Server4, p.Server6} {
		tagServer(t, p, netip.AddrPortFrom(srv, 587), "real-587")
		tagServer(t, p, netip.AddrPortFrom(srv, 465), "real-465")
		tagServer(t, p, netip.AddrPortFrom(srv, 22), "ssh")
	}
	tagServer(t, p, netip.MustParseAddrPort("[::]:10587"), "trap-587")
	tagServer(t, p, netip.MustParseAddrPort("[::]:10465"), "trap-465")

	trapped4, other4, banned4 := p.Attacker4[0], p.Attacker4[1], p.Attacker4[2]
	trapped6, other6 := p.Attacker6[0], p.Attacker6[1]
	ctx := context.Background()
	now := time.Now()
	err := e.Apply(ctx, []event.Decision{
		{Target: event.AddrPrefix(trapped4), Action: event.Trap, Start: now, Duration: time.Hour},
		{Target: event.AddrPrefix(trapped6), Action: event.Trap, Start: now, Duration: time.Hour},
		{Target: event.AddrPrefix(banned4), Action: event.Trap, Start: now, Duration: time.Hour},
		{Target: event.AddrPrefix(banned4), Action: event.Ban, Start: now, Duration: time.Hour},
		// A prefix cannot be trapped: skipped.
		{Target: netip.MustParsePrefix("192.0.2.0/24"), Action: event.Trap, Start: now, Duration: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			src  netip.Addr
			dst  netip.AddrPort
			want string
		}{
			{trapped4, netip.AddrPortFrom(p.Server4, 587), "trap-587"},
			{trapped4, netip.AddrPortFrom(p.Server4, 465), "trap-465"},
			{trapped4, netip.AddrPortFrom(p.Server4, 22), ""}, // everything else dropped
			{trapped6, netip.AddrPortFrom(p.Server6, 587), "trap-587"},
			{trapped6, netip.AddrPortFrom(p.Server6, 22), ""},
			{other4, netip.AddrPortFrom(p.Server4, 587), "real-587"},
			{other4, netip.AddrPortFrom(p.Server4, 22), "ssh"},
			{other4, netip.AddrPortFrom(p.Server4, 10587), ""}, // the listener only through the redirect
			{other6, netip.AddrPortFrom(p.Server6, 465), "real-465"},
			{other6, netip.AddrPortFrom(p.Server6, 10465), ""},
			{banned4, netip.AddrPortFrom(p.Server4, 587), ""}, // the ban wins
		} {
			if got := reach(t, p, c.src, c.dst); got != c.want {
				t.Errorf("%s: %s → %s reached %q, want %q", when, c.src, c.dst, got, c.want)
			}
		}
	}
	check("trapped")

	act, err := e.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	traps := map[netip.Prefix]bool{}
	for _, d := range act {
		if d.Action == event.Trap {
			traps[d.Target] = d.Duration > 50*time.Minute
		}
	}
	if len(traps) != 3 || !traps[event.AddrPrefix(trapped4)] || !traps[event.AddrPrefix(trapped6)] {
		t.Errorf("active traps %v", traps)
	}
	out := p.Server.MustExec("nft", "list", "table", "inet", "rampart")
	for _, want := range []string{"set trap4", "set trap6", "hook prerouting priority mangle", "redirect to :10587", "ct status dnat", "hook input"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	// Another program flushes the ruleset: everything comes back.
	p.Server.MustExec("nft", "flush", "ruleset")
	rep, err := e.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Traps != 3 {
		t.Errorf("repair put back %d trapped addresses, want 3: %s", rep.Traps, rep)
	}
	check("after a flushed ruleset")

	// Revoked: the address reaches the real server again.
	if err := e.Revoke(ctx, []netip.Prefix{event.AddrPrefix(trapped4)}); err != nil {
		t.Fatal(err)
	}
	if got := reach(t, p, trapped4, netip.AddrPortFrom(p.Server4, 587)); got != "real-587" {
		t.Errorf("revoked address reached %q", got)
	}
	if got := reach(t, p, trapped4, netip.AddrPortFrom(p.Server4, 22)); got != "ssh" {
		t.Errorf("revoked address reached %q on 22", got)
	}

	// Trapping turned off: a new enforcer removes the trap's objects.
	e.Close()
	newNFT(t, p.Server, nil)
	out = p.Server.MustExec("nft", "list", "table", "inet", "rampart")
	if strings.Contains(out, "trap") {
		t.Errorf("trap objects left with trapping off:\n%s", out)
	}
	if got := reach(t, p, trapped6, netip.AddrPortFrom(p.Server6, 587)); got != "real-587" {
		t.Errorf("with trapping off, %s reached %q", trapped6, got)
	}
}
