package firewall

import (
	"maps"
	"net/netip"
	"testing"
	"time"
)

// TestBanMap: every kind of target and end comes back as it went in, an
// end taken from time.Now keeps its monotonic reading, and deletions.
func TestBanMap(t *testing.T) {
	now := time.Now()
	fixed := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	want := map[netip.Prefix]time.Time{
		netip.MustParsePrefix("192.0.2.1/32"):           now.Add(time.Hour),
		netip.MustParsePrefix("198.51.100.0/24"):        {},
		netip.MustParsePrefix("0.0.0.0/0"):              fixed,
		netip.MustParsePrefix("2001:db8::1/128"):        fixed.Add(-time.Minute),
		netip.MustParsePrefix("2001:db8::/64"):          now.Add(-time.Second),
		netip.MustParsePrefix("::ffff:192.0.2.0/120"):   now.Add(365 * 24 * time.Hour),
		netip.MustParsePrefix("::/0"):                   now,
		netip.MustParsePrefix("255.255.255.255/32"):     fixed.Add(time.Nanosecond),
		netip.MustParsePrefix("ffff:ffff::/32"):         now.Add(time.Nanosecond),
		netip.MustParsePrefix("203.0.113.128/25"):       {},
		netip.MustParsePrefix("2001:db8:ffff::/48"):     fixed.Add(30 * 24 * time.Hour),
		netip.MustParsePrefix("100.64.0.0/10"):          now.Add(2 * time.Hour),
		netip.MustParsePrefix("fe80::/10"):              fixed,
		netip.MustParsePrefix("10.0.0.0/8"):             now.Add(time.Millisecond),
		netip.MustParsePrefix("2001:db8::ffff:0:1/128"): now.Add(time.Minute),
	}
	b := newBanMap()
	for p, end := range want {
		b.set(p, end)
	}
	got := maps.Collect(b.all())
	if len(got) != len(want) || b.len() != len(want) {
		t.Fatalf("%d targets back (len %d), want %d", len(got), b.len(), len(want))
	}
	for p, end := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: missing", p)
		case end.IsZero() != g.IsZero() || !g.Equal(end):
			t.Errorf("%s: end %s, want %s", p, g, end)
		case !end.IsZero() && g.Sub(now) != end.Sub(now):
			t.Errorf("%s: %s from now, want %s", p, g.Sub(now), end.Sub(now))
		case (g != g.Round(0)) != (end != end.Round(0)):
			t.Errorf("%s: monotonic reading %v, want %v", p, g != g.Round(0), end != end.Round(0))
		}
	}
	b.delete(netip.MustParsePrefix("192.0.2.1/32"))
	b.delete(netip.MustParsePrefix("192.0.2.2/32")) // not there
	b.deleteFunc(func(p netip.Prefix, end time.Time) bool { return !end.IsZero() && end.Before(now) })
	got = maps.Collect(b.all())
	for p, end := range want {
		_, ok := got[p]
		if gone := p == netip.MustParsePrefix("192.0.2.1/32") || (!end.IsZero() && end.Before(now)); ok == gone {
			t.Errorf("%s: present %v after the deletions", p, ok)
		}
	}
}
