package netnstest

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPair(t *testing.T) {
	var paths []string
	t.Run("Use", func(t *testing.T) {
		p := New(t)
		paths = append(paths, p.Server.Path, p.Attacker.Path)
		if p.Server.Fd() <= 0 {
			t.Fatal("no namespace fd")
		}
		if out := p.Server.MustExec("ip", "-br", "addr", "show", "dev", "veth0"); !strings.Contains(out, p.Server4.String()) {
			t.Errorf("server veth lacks %s: %s", p.Server4, out)
		}
		s4 := p.Listen(netip.AddrPortFrom(p.Server4, 0))
		s6 := p.Listen(netip.AddrPortFrom(p.Server6, 0))
		for _, a := range p.Attacker4 {
			if !p.CanConnect(p.Attacker, a, s4, 3*time.Second) {
				t.Errorf("%s cannot reach %s", a, s4)
			}
		}
		for _, a := range p.Attacker6 {
			if !p.CanConnect(p.Attacker, a, s6, 3*time.Second) {
				t.Errorf("%s cannot reach %s", a, s6)
			}
		}
		// Nothing listens here: refused, not reachable.
		if p.CanConnect(p.Attacker, p.Attacker4[0], netip.AddrPortFrom(p.Server4, 1), 3*time.Second) {
			t.Error("connected to a closed port")
		}
		// The host namespace does not have the pair's addresses.
		if out, _ := os.ReadFile("/proc/net/fib_trie"); strings.Contains(string(out), p.Server4.String()) {
			t.Error("server address visible in the host namespace")
		}

		backend := p.Listen(netip.AddrPortFrom(p.Service4, 0))
		pub := netip.AddrPortFrom(p.Server4, 8080)
		p.PublishDNAT(pub, backend)
		if !p.CanConnect(p.Attacker, p.Attacker4[0], pub, 3*time.Second) {
			t.Error("DNAT-published port not reachable")
		}
	})
	for _, path := range paths {
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s still exists after the test", path)
		}
	}
}
