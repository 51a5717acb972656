package allow

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// dnsTable answers lookups from a map; a missing name fails like NXDOMAIN.
type dnsTable map[string][]netip.Addr

func (d dnsTable) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := d[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestContainsAndOverlaps(t *testing.T) {
	l, err := New([]string{"192.0.2.10", "10.1.0.0/16", "::ffff:198.51.100.1", "2001:db8:1::/48"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"192.0.2.10", true}, {"192.0.2.11", false}, {"10.1.200.3", true}, {"127.0.0.1", true}, {"::1", true},
		{"198.51.100.1", true}, {"::ffff:192.0.2.10", true}, {"2001:db8:1:ff::1", true}, {"2001:db8:2::1", false},
	}
	for _, tt := range tests {
		if got := l.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Contains(%s) = %v", tt.addr, got)
		}
	}
	for p, want := range map[string]bool{"192.0.2.0/24": true, "192.0.3.0/24": false, "10.0.0.0/8": true, "10.1.2.0/24": true, "2001:db8::/32": true} {
		if got := l.Overlaps(netip.MustParsePrefix(p)); got != want {
			t.Errorf("Overlaps(%s) = %v", p, got)
		}
	}
}

func TestResolveKeepsLastKnown(t *testing.T) {
	dns := dnsTable{"home.example.org": {netip.MustParseAddr("203.0.113.5")}}
	l, err := New([]string{"home.example.org"}, Options{Resolver: dns})
	if err != nil {
		t.Fatal(err)
	}
	home := netip.MustParseAddr("203.0.113.5")
	if l.Contains(home) {
		t.Fatal("name allowed before resolving")
	}
	if changed, err := l.Resolve(context.Background()); !changed || err != nil {
		t.Fatalf("Resolve = %v, %v", changed, err)
	}
	if !l.Contains(home) {
		t.Fatal("resolved address not allowed")
	}
	delete(dns, "home.example.org") // DNS outage
	if _, err := l.Resolve(context.Background()); err == nil {
		t.Fatal("failed lookup not reported")
	}
	if !l.Contains(home) {
		t.Fatal("last known address dropped on a failed lookup")
	}
	dns["home.example.org"] = []netip.Addr{netip.MustParseAddr("203.0.113.77")} // new dynamic address
	if changed, _ := l.Resolve(context.Background()); !changed {
		t.Fatal("address change not reported")
	}
	if !l.Contains(netip.MustParseAddr("203.0.113.77")) || l.Contains(home) {
		t.Fatal("list did not follow the new address")
	}
}

func TestBadEntries(t *testing.T) {
	for _, e := range []string{"10.0.0.0/40", "a b", "1.2.3.4:80"} {
		if _, err := New([]string{e}, Options{}); err == nil {
			t.Errorf("New(%q) succeeded", e)
		}
	}
}

func TestNoLoopback(t *testing.T) {
	l, err := New([]string{"127.0.5.5"}, Options{NoLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]bool{"127.0.0.2": false, "::1": false, "127.0.5.5": true} {
		if got := l.Contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", a, got, want)
		}
	}
}

// Contains agrees with a walk over every prefix, on a long list of random
// prefixes of every length and addresses in and around them.
func TestContainsLongList(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randAddr := func(v6 bool) netip.Addr {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if v6 {
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	var entries []string
	var prefixes []netip.Prefix
	for i := range 2000 {
		a := randAddr(i%2 == 1)
		p := netip.PrefixFrom(a, r.IntN(a.BitLen()+1)).Masked()
		entries, prefixes = append(entries, p.String()), append(prefixes, p)
	}
	l, err := New(entries, Options{NoLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	in := 0
	for i := range 20000 {
		a := randAddr(i%2 == 1)
		if i%4 < 2 { // an address inside a listed prefix, or just past it
			p := prefixes[r.IntN(len(prefixes))]
			a = p.Addr()
			if i%4 == 1 && p.Bits() > 0 {
				a = netip.PrefixFrom(a, p.Bits()).Masked().Addr()
				if last, ok := lastOf(p); ok {
					a = last.Next()
				}
			}
		}
		want := false
		for _, p := range prefixes {
			want = want || p.Contains(a)
		}
		if want {
			in++
		}
		if got := l.Contains(a); got != want {
			t.Fatalf("Contains(%s) = %v, want %v", a, got, want)
		}
	}
	if in < 5000 {
		t.Fatalf("only %d of 20000 addresses listed: the test proves little", in)
	}
	zoned := netip.MustParseAddr("fe80::1%eth0")
	l, _ = New([]string{"fe80::/10"}, Options{NoLoopback: true})
	if l.Contains(zoned) || !l.Contains(zoned.WithZone("")) {
		t.Errorf("a zoned address is listed, or the same address without its zone is not")
	}
}

// lastOf returns the last address of p.
func lastOf(p netip.Prefix) (netip.Addr, bool) {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, ok := netip.AddrFromSlice(b)
	return a, ok && a.IsValid()
}
