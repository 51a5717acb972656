package event

import (
	"net/netip"
	"testing"
)

// NeverBanAddr, the fast check for one address, agrees with NeverBan.
func TestNeverBanAddr(t *testing.T) {
	for _, s := range []string{
		"0.0.0.0", "0.0.0.1", "127.0.0.1", "127.255.255.254", "169.254.3.4", "169.255.0.1", "224.0.0.1", "239.255.255.255",
		"240.0.0.1", "255.255.255.255", "255.255.255.254", "192.0.2.1", "::", "::1", "::2", "fe80::1", "fec0::1",
		"ff02::1", "2001:db8::1", "::ffff:127.0.0.1", "::ffff:192.0.2.1",
	} {
		a := netip.MustParseAddr(s)
		fast, fok := NeverBanAddr(a)
		slow, sok := NeverBan(AddrPrefix(a))
		if fast != slow || fok != sok {
			t.Errorf("%s: NeverBanAddr %v %v, NeverBan %v %v", s, fast, fok, slow, sok)
		}
	}
}
