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

// parseIPv6 parses an IPv6 address without a zone exactly as
// netip.ParseAddr does (its parseIPv6, from Go's net/netip, BSD licence,
// minus the zone), but reports failure as false rather than an error:
// netip allocates each error, and the matcher tries <HOST> on many
// strings that are not addresses (every shorter end of a gap, when the
// rest fails). s must hold a ':' and no '%'. (netip reads a string whose
// first '.' comes before its first ':' as IPv4, and fails; so does this,
// at that '.'.) FuzzParseIPv6 checks it against netip.
func parseIPv6(s string) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // where in ip the "::" is

	// A leading "::", possibly the whole address.
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	// Hex fields, each followed by ':' (or "::") and more, or the end.
	i := 0
	for i < 16 {
		off, acc := 0, uint32(0)
		for ; off < len(s); off++ {
			d := hexDigit[s[off]]
			if d > 15 {
				break
			}
			if off > 3 { // more than 4 digits (so acc < 1<<16 always)
				return netip.Addr{}, false
			}
			acc = acc<<4 + uint32(d)
		}
		if off == 0 {
			return netip.Addr{}, false
		}
		if off < len(s) && s[off] == '.' {
			// An embedded IPv4 address, which must fill the last 4 bytes.
			if ellipsis < 0 && i != 12 || i+4 > 16 {
				return netip.Addr{}, false
			}
			if !parseIPv4Fields(s, ip[i:i+4]) {
				return netip.Addr{}, false
			}
			s = ""
			i += 4
			break
		}
		ip[i] = byte(acc >> 8)
		ip[i+1] = byte(acc)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return netip.Addr{}, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 { // a second "::"
				return netip.Addr{}, false
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return netip.Addr{}, false
	}
	// Expand the "::"; it must stand for at least one field.
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(ip), true
}

// parseIPv4Fields reads the dotted quad s into fields, as netip's function
// of that name does.
func parseIPv4Fields(s string, fields []byte) bool {
	val, pos, digits := 0, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			if digits == 1 && val == 0 { // a leading zero
				return false
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return false
			}
		case c == '.':
			if i == 0 || i == len(s)-1 || s[i-1] == '.' || pos == 3 {
				return false
			}
			fields[pos] = byte(val)
			pos++
			val, digits = 0, 0
		default:
			return false
		}
	}
	if pos < 3 {
		return false
	}
	fields[3] = byte(val)
	return true
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
