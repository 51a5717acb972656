package event

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestAppendAddr compares AppendAddr and AppendPrefix with netip's writers
// on addresses built to cover the cases: runs of zero groups of every
// length and place (ties, at either end, all zero), groups of one to four
// hex digits, IPv4 fields of one to three digits, IPv4-mapped and zoned
// addresses, and the zero values.
func TestAppendAddr(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	group := func() uint16 {
		switch rng.IntN(6) {
		case 0, 1:
			return 0
		case 2:
			return uint16(rng.IntN(0x10))
		case 3:
			return uint16(rng.IntN(0x100))
		case 4:
			return uint16(rng.IntN(0x1000))
		}
		return uint16(rng.IntN(0x10000))
	}
	addrs := []netip.Addr{{}, netip.IPv6Unspecified(), netip.IPv4Unspecified(), netip.IPv6Loopback(),
		netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:192.0.2.1"), netip.MustParseAddr("255.255.255.255")}
	for range 200000 {
		switch rng.IntN(4) {
		case 0:
			var ip [4]byte
			for i := range ip {
				ip[i] = byte(rng.IntN(256) >> rng.IntN(8))
			}
			addrs = append(addrs, netip.AddrFrom4(ip))
		case 1:
			var ip [4]byte
			for i := range ip {
				ip[i] = byte(rng.IntN(256))
			}
			addrs = append(addrs, netip.AddrFrom16(netip.AddrFrom4(ip).As16()))
		default:
			var ip [16]byte
			for i := 0; i < 16; i += 2 {
				v := group()
				ip[i], ip[i+1] = byte(v>>8), byte(v)
			}
			addrs = append(addrs, netip.AddrFrom16(ip))
		}
	}
	for _, a := range addrs {
		if got, want := string(AppendAddr([]byte("x"), a)), "x"+string(a.AppendTo(nil)); got != want {
			t.Fatalf("AppendAddr(%#v) = %q, want %q", a, got, want)
		}
		if !a.IsValid() || a.Zone() != "" {
			continue
		}
		p := netip.PrefixFrom(a, rng.IntN(a.BitLen()+1)).Masked()
		if got, want := string(AppendPrefix(nil, p)), string(p.AppendTo(nil)); got != want {
			t.Fatalf("AppendPrefix(%v) = %q, want %q", p, got, want)
		}
	}
	var zero netip.Prefix
	if got := string(AppendPrefix(nil, zero)); got != string(zero.AppendTo(nil)) {
		t.Fatalf("AppendPrefix(zero) = %q", got)
	}
}
