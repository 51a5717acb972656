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
// One pass over s: each group of one to four hex digits is written as it
// is read, and a "::" (at most one) marks where the zero groups it stands
// for go, at least one of them; the groups after it move to the end once
// all are read. The last group may be a dotted quad (4 bytes).
func parseIPv6(s string) (netip.Addr, bool) {
	var ip [16]byte
	// Indexes are unsigned so that the compiler proves them in bounds: no
	// bounds checks in the loop.
	n, i, end := uint(0), uint(0), uint(len(s)) // bytes written; place in s
	gap := -1                                   // where "::" stands (-1: none)
	if end >= 2 && s[0] == ':' && s[1] == ':' {
		gap, i = 0, 2
	}
	for i < end {
		start, v := i, 0
		for i < end && i-start < 5 {
			d := hexDigit[s[i]]
			if d > 15 {
				break
			}
			v = v<<4 | int(d)
			i++
		}
		if i < end && s[i] == '.' {
			// A dotted quad: the rest of s, in the last 4 bytes there are.
			a, ok := parseIPv4(s[start:])
			if !ok || n > uint(len(ip))-4 {
				return netip.Addr{}, false
			}
			v4 := a.As4()
			n += uint(copy(ip[n:], v4[:]))
			break
		}
		if i == start || i-start > 4 || n > uint(len(ip))-2 {
			return netip.Addr{}, false
		}
		ip[n], ip[n+1] = byte(v>>8), byte(v)
		n += 2
		if i >= end {
			break
		}
		if s[i] != ':' || i+1 >= end {
			return netip.Addr{}, false // a stray byte, or a lone ':' at the end
		}
		i++
		if s[i] == ':' {
			if gap >= 0 {
				return netip.Addr{}, false // a second "::"
			}
			gap, i = int(n), i+1
		}
	}
	switch {
	case gap < 0 && n != uint(len(ip)), gap >= 0 && n > uint(len(ip))-2:
		return netip.Addr{}, false
	case gap >= 0:
		// The groups after "::" move to the end; zeros take their place.
		after := int(n) - gap
		copy(ip[len(ip)-after:], ip[gap:n])
		clear(ip[gap : len(ip)-after])
	}
	return netip.AddrFrom16(ip), true
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
