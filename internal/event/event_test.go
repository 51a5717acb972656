package event

import (
	"net/netip"
	"testing"
)

// NeverBanAddr, the fast check for one address, agrees with NeverBan.
func TestNeverBanAddr(t *testing.T) {
	check := func(a netip.Addr) {
		fast, fok := NeverBanAddr(a)
		slow, sok := NeverBan(AddrPrefix(a))
		if fast != slow || fok != sok {
			t.Errorf("%s: NeverBanAddr %v %v, NeverBan %v %v", a, fast, fok, slow, sok)
		}
	}
	for _, s := range []string{
		"0.0.0.0", "0.0.0.1", "127.0.0.1", "127.255.255.254", "169.254.3.4", "169.255.0.1", "224.0.0.1", "239.255.255.255",
		"240.0.0.1", "255.255.255.255", "255.255.255.254", "192.0.2.1", "::", "::1", "::2", "fe80::1", "fec0::1",
		"ff02::1", "2001:db8::1", "::ffff:127.0.0.1", "::ffff:192.0.2.1",
	} {
		check(netip.MustParseAddr(s))
	}
	// Every first byte of IPv4, with second bytes around the ranges'
	// edges: the quick path rules ranges out by them.
	for b0 := range 256 {
		for _, b1 := range []byte{0, 1, 253, 254, 255} {
			check(netip.AddrFrom4([4]byte{byte(b0), b1, 255, 255}))
			check(netip.AddrFrom4([4]byte{byte(b0), b1, 0, 0}))
		}
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct{ in, want string }{ // want "" : refused
		{"192.0.2.7", "192.0.2.7/32"},
		{" 192.0.2.7\n", "192.0.2.7/32"},
		{"192.0.2.7/24", "192.0.2.0/24"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::1/64", "2001:db8::/64"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7/120", "192.0.2.0/24"},
		{"::ffff:0.0.0.0/96", "0.0.0.0/0"},
		{"::ffff:0:0/90", ""}, // wider than IPv4 space
		{"fe80::1%eth0", ""},
		{"fe80::1%eth0/64", ""},
		{"192.0.2.7/33", ""},
		{"192.0.2.300", ""},
		{"example.org", ""},
		{"", ""},
	}
	for _, tc := range tests {
		p, err := ParseTarget(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseTarget(%q) = %v, want an error", tc.in, p)
		case tc.want != "" && (err != nil || p.String() != tc.want):
			t.Errorf("ParseTarget(%q) = %v, %v, want %s", tc.in, p, err, tc.want)
		}
	}
}
