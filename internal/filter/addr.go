package filter

import (
	"net/netip"
	"strings"
)

// parseIPv6Zoned is netip.ParseAddr(s) without the error, for s holding a
// ':'. An address with a zone (rare in logs, and never a <HOST>, which
// cannot hold '%') is left to netip.
func parseIPv6Zoned(s string) (netip.Addr, bool) {
	if strings.IndexByte(s, '%') >= 0 {
		a, err := netip.ParseAddr(s)
		return a, err == nil
	}
	return parseIPv6(s)
}

// parseIPv6 parses an IPv6 address without a zone, accepting exactly the
// strings netip.ParseAddr accepts (FuzzParseIPv6 checks the two agree),
// but reports failure as false rather than an error: netip allocates each
// error, and the matcher tries <HOST> on many strings that are not
// addresses (every shorter end of a gap, when the rest fails). s must hold
// a ':' and no '%'.
//
// The address is the groups before a "::" and those after it; without one,
// the groups must fill all 16 bytes; with one, it stands for at least one
// zero group. The last group of the address may be a dotted quad (4 bytes).
func parseIPv6(s string) (netip.Addr, bool) {
	var ip [16]byte
	head, tail, elided := strings.Cut(s, "::")
	if !elided {
		if n, ok := ipv6Groups(s, ip[:], true); !ok || n != 16 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16(ip), true
	}
	var rest [16]byte
	n, ok := ipv6Groups(head, ip[:], false)
	if !ok {
		return netip.Addr{}, false
	}
	m, ok := ipv6Groups(tail, rest[:], true)
	if !ok || n+m > 14 {
		return netip.Addr{}, false
	}
	copy(ip[16-m:], rest[:m])
	return netip.AddrFrom16(ip), true
}

// ipv6Groups writes the ':'-separated groups of s (each one to four hex
// digits, or with quad set the last a dotted quad) into dst, and returns
// how many bytes they took; "" holds none. It fails on an empty group, a
// malformed one, or more than dst holds.
func ipv6Groups(s string, dst []byte, quad bool) (int, bool) {
	if s == "" {
		return 0, true
	}
	n := 0
	for {
		group, more, sep := strings.Cut(s, ":")
		if !sep && quad && strings.IndexByte(group, '.') >= 0 {
			a, ok := parseIPv4(group)
			if !ok || n+4 > len(dst) {
				return 0, false
			}
			v4 := a.As4()
			n += copy(dst[n:], v4[:])
			return n, true
		}
		if group == "" || len(group) > 4 || n+2 > len(dst) {
			return 0, false
		}
		var v uint16
		for i := 0; i < len(group); i++ {
			d := hexDigit[group[i]]
			if d > 15 {
				return 0, false
			}
			v = v<<4 | uint16(d)
		}
		dst[n], dst[n+1] = byte(v>>8), byte(v)
		n += 2
		if !sep {
			return n, true
		}
		s = more
	}
}

// hexDigit holds each hex digit's value, and 0xff for other bytes.
var hexDigit = func() (t [256]uint8) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = uint8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = uint8(c - 'a' + 10)
		t[c-'a'+'A'] = uint8(c - 'a' + 10)
	}
	return t
}()
