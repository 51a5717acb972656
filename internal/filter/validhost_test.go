package filter

import (
	"net/netip"
	"strings"
	"testing"
)

// validHostSlow is validHost without the pre-checks that spare ParseAddr:
// the definition the fast path must agree with.
func validHostSlow(v string) bool {
	if v == "" || len(v) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(v); err == nil {
		return true
	}
	return strings.IndexByte(v, ':') < 0 && strings.IndexByte(v, '.') >= 0 && v[0] != '.' && v[0] != '-' && v[len(v)-1] != '.'
}

func TestValidHostFastPath(t *testing.T) {
	hosts := []string{
		"", "22", "port", "root", "1.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4",
		"::1", "::", "2001:db8::1", "2001:DB8::1", "::ffff:1.2.3.4", "fe80::1%eth0", "fe80::1%",
		"%eth0", "1.2.3.4%eth0", "2001:db8::g", "a.b", "mail.example.org", ".example.org",
		"-a.example.org", "example.org.", "abc", "ab:cd", "dead.beef", "cafe", "unknown",
		"mail-wm1-f54.google.com", "a:b.c", strings.Repeat("a.", 127), strings.Repeat("1", 254),
	}
	for _, h := range hosts {
		if got, want := validHost(h), validHostSlow(h); got != want {
			t.Errorf("validHost(%q) = %v, want %v", h, got, want)
		}
	}
}

func FuzzValidHost(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "::1", "fe80::1%eth0", "a.example", "22"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if got, want := validHost(h), validHostSlow(h); got != want {
			t.Errorf("validHost(%q) = %v, want %v", h, got, want)
		}
	})
}

func TestParseAddr(t *testing.T) {
	for _, s := range []string{
		"1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.02.3.4", "1.2.3.0",
		"1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4%eth0", "1.2.3.4:25", "1.2.3.-4",
		"", "a.b", "mail.example.org", "::1", "::ffff:1.2.3.4", "fe80::1%eth0", "2001:db8::1", "%1.2.3.4",
		"1000.2.3.4", "1.2.3.4 ", "१.2.3.4",
	} {
		checkParseAddr(t, s)
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "01.2.3.4", "::1", "a.b"} {
		f.Add(s)
	}
	f.Fuzz(checkParseAddr)
}

// checkParseAddr checks parseAddr against netip.ParseAddr, and that an
// address checkHost parsed is the same.
func checkParseAddr(t *testing.T, s string) {
	want, err := netip.ParseAddr(s)
	got, ok := parseAddr(s, netip.Addr{})
	if ok != (err == nil) || got != want {
		t.Errorf("parseAddr(%q) = %v, %v; ParseAddr: %v, %v", s, got, ok, want, err)
	}
	if a, ok := checkHost(s); a.IsValid() && (!ok || a != want) {
		t.Errorf("checkHost(%q) = %v, %v; ParseAddr: %v, %v", s, a, ok, want, err)
	}
}

func FuzzParseIPv6(f *testing.F) {
	for _, s := range []string{"::", "::1", "2001:db8::1", "2001:DB8:0:0:0:0:0:1", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
		"1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "1.2.3.4:5", "::1.2.3", "::1.2.3.04",
		"fe80::1%eth0", "fe80::1%", ":1", "1:", "1:::2", "a:b:c:d:e:f:0:1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, ':') < 0 {
			return
		}
		want, err := netip.ParseAddr(s)
		got, ok := parseIPv6Zoned(s)
		if ok != (err == nil) || got != want {
			t.Errorf("parseIPv6Zoned(%q) = %v %v, netip.ParseAddr %v %v", s, got, ok, want, err)
		}
	})
}

func FuzzValidHostPrefixes(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "2001:db8::1", "a.b-c.d", ".a.b", "-a.b", "1.2.3.", "::ffff:1.2.3.4", "a.b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		want := 0
		for k := 0; k < len(v); k++ {
			if validHost(v[:k]) {
				want++
			}
		}
		if got := validHostPrefixes(v); got != want {
			t.Errorf("validHostPrefixes(%q) = %d, want %d", v, got, want)
		}
	})
}
