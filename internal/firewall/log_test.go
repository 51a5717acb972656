package firewall

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

func TestLog(t *testing.T) {
	ctx := context.Background()
	var buf bytes.Buffer
	l := NewLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l.now = clk.now

	ds := []event.Decision{
		{Target: pfx("::ffff:192.0.2.1/128"), Action: event.Ban, Duration: 90 * time.Second, Scenario: "ip-failures", Jail: "sshd", Reason: "5 failures"},
		{Target: pfx("2001:db8::/48"), Action: event.Ban, Scenario: "prefix"},
		{Target: pfx("198.51.100.1"), Action: event.Tarpit, Duration: time.Hour},
	}
	if err := l.Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		recs = append(recs, m)
	}
	if len(recs) != 2 {
		t.Fatalf("want 2 log records, got %d: %s", len(recs), buf.String())
	}
	first := recs[0]
	if first["msg"] != "ban" || first["addr"] != "192.0.2.1/32" || first["scenario"] != "ip-failures" ||
		first["duration_s"] != float64(90) || first["jail"] != "sshd" || first["reason"] != "5 failures" {
		t.Errorf("ban record = %v", first)
	}
	if recs[1]["addr"] != "2001:db8::/48" || recs[1]["duration_s"] != float64(0) {
		t.Errorf("second ban record = %v", recs[1])
	}

	checkActive(t, l, map[netip.Prefix]time.Duration{pfx("192.0.2.1"): 90 * time.Second, pfx("2001:db8::/48"): 0})
	clk.advance(60 * time.Second)
	checkActive(t, l, map[netip.Prefix]time.Duration{pfx("192.0.2.1"): 30 * time.Second, pfx("2001:db8::/48"): 0})
	clk.advance(31 * time.Second)
	checkActive(t, l, map[netip.Prefix]time.Duration{pfx("2001:db8::/48"): 0})

	buf.Reset()
	if err := l.Revoke(ctx, []netip.Prefix{pfx("2001:db8::/48"), pfx("203.0.113.1")}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"msg":"unban","addr":"2001:db8::/48","was_active":true`)) {
		t.Errorf("unban not logged: %s", buf.String())
	}
	checkActive(t, l, nil)
	if err := l.SetAllow(ctx, []netip.Prefix{pfx("10.0.0.0/8")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(ctx, []event.Decision{{Action: event.Ban}}); err == nil {
		t.Error("Apply with an invalid target succeeded")
	}
	if err := l.Apply(ctx, []event.Decision{banFor(pfx("192.0.2.1"), time.Hour), banFor(pfx("::/0"), time.Hour)}); err == nil {
		t.Error("Apply of a /0 succeeded")
	}
	checkActive(t, l, nil)
	l.Close()
	if _, err := l.Active(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Active after Close = %v, want ErrClosed", err)
	}
}

func TestLogPerPort(t *testing.T) {
	ctx := context.Background()
	var buf bytes.Buffer
	l := NewLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	ds := []event.Decision{
		{Target: pfx("192.0.2.1"), Action: event.Ban, Duration: time.Hour, Jail: "sshd",
			Ports: []event.PortRange{{Proto: event.TCP, First: 22, Last: 22}}},
		{Target: pfx("192.0.2.1"), Action: event.Ban, Duration: time.Hour, Jail: "recidive"},
		{Target: pfx("192.0.2.2"), Action: event.Ban, Duration: time.Hour, Jail: "postfix",
			Ports: []event.PortRange{{Proto: event.TCP, First: 25, Last: 25}, {Proto: event.TCP, First: 465, Last: 465}}},
		{Target: pfx("192.0.2.3"), Action: event.Ban, Duration: time.Hour, Jail: "sshd",
			Ports: []event.PortRange{{Proto: event.TCP, First: 22, Last: 22}}},
	}
	if err := l.Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"addr":"192.0.2.1/32","ports":"22/tcp"`, `"addr":"192.0.2.1/32","ports":""`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, buf.String())
		}
	}
	act, err := l.Active(ctx)
	if err != nil || len(act) != 4 {
		t.Fatalf("Active = %v, %v; want the four bans", act, err)
	}
	// Each ban comes back with its own ports.
	held := map[string]bool{}
	for _, d := range act {
		held[d.Target.String()+" "+event.FormatPorts(d.Ports)] = true
	}
	for _, want := range []string{"192.0.2.1/32 22/tcp", "192.0.2.1/32 ", "192.0.2.2/32 25/tcp,465/tcp", "192.0.2.3/32 22/tcp"} {
		if !held[want] {
			t.Errorf("Active lacks %q: %v", want, held)
		}
	}
	if err := l.Revoke(ctx, []netip.Prefix{pfx("192.0.2.2"), pfx("192.0.2.3")}); err != nil {
		t.Fatal(err)
	}
	if act, _ := l.Active(ctx); len(act) != 2 {
		t.Fatalf("Active after revoking two addresses = %v, want 192.0.2.1's two bans", act)
	}
	if err := l.Revoke(ctx, []netip.Prefix{pfx("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	if act, _ := l.Active(ctx); len(act) != 0 {
		t.Errorf("Active after Revoke = %v", act)
	}
}

func TestNormalizePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1/32":         "192.0.2.1/32",
		"192.0.2.77/24":        "192.0.2.0/24",
		"::ffff:192.0.2.1/128": "192.0.2.1/32",
		"::ffff:192.0.2.0/120": "192.0.2.0/24",
		"2001:db8::1/48":       "2001:db8::/48",
	} {
		got, err := normalizePrefix(netip.MustParsePrefix(in))
		if err != nil || got.String() != want {
			t.Errorf("normalizePrefix(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []netip.Prefix{{}, netip.MustParsePrefix("::ffff:0:0/95")} {
		if _, err := normalizePrefix(bad); err == nil {
			t.Errorf("normalizePrefix(%v) succeeded", bad)
		}
	}
}

func TestRanges(t *testing.T) {
	got := rangePrefixes(addrRange{netip.MustParseAddr("172.16.0.1"), netip.MustParseAddr("172.16.0.6")})
	want := []string{"172.16.0.1/32", "172.16.0.2/31", "172.16.0.4/31", "172.16.0.6/32"}
	if len(got) != len(want) {
		t.Fatalf("rangePrefixes = %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("rangePrefixes[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	all := rangePrefixes(addrRange{netip.MustParseAddr("::"), lastAddr(netip.MustParsePrefix("::/0"))})
	if len(all) != 1 || all[0].String() != "::/0" {
		t.Errorf("rangePrefixes(all IPv6) = %v", all)
	}
	m := mergeRanges([]addrRange{
		prefixRange(netip.MustParsePrefix("10.0.1.0/24")),
		prefixRange(netip.MustParsePrefix("10.0.0.0/24")),
		prefixRange(netip.MustParsePrefix("10.0.0.128/25")),
		prefixRange(netip.MustParsePrefix("10.0.3.0/24")),
		prefixRange(netip.MustParsePrefix("255.255.255.255/32")),
	})
	if len(m) != 3 || m[0].first.String() != "10.0.0.0" || m[0].last.String() != "10.0.1.255" || m[2].last.String() != "255.255.255.255" {
		t.Errorf("mergeRanges = %v", m)
	}
}

func TestLogCarveOuts(t *testing.T) {
	ctx := context.Background()
	var buf bytes.Buffer
	l := NewLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l.now = clk.now
	mapped := netip.AddrFrom16(netip.MustParseAddr("192.0.2.1").As16())
	cs := []CarveOut{
		{Addr: mapped, Until: clk.now().Add(time.Hour)},
		{Addr: netip.MustParseAddr("2001:db8::1"), Until: clk.now().Add(time.Minute)},
		{Addr: netip.MustParseAddr("2001:db8::2")},                                     // no end
		{Addr: netip.MustParseAddr("2001:db8::3"), Until: clk.now().Add(-time.Second)}, // over: skipped
	}
	if err := l.Carve(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"msg":"carve","addr":"192.0.2.1","until":"2023-11-14T23:13:20Z"`) ||
		strings.Contains(buf.String(), "2001:db8::3") {
		t.Errorf("carve log:\n%s", buf.String())
	}
	clk.advance(2 * time.Minute)
	got, err := l.CarveOuts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []CarveOut{{Addr: netip.MustParseAddr("192.0.2.1"), Until: time.Unix(1_700_003_600, 0)}, {Addr: netip.MustParseAddr("2001:db8::2")}}
	if !slices.Equal(got, want) {
		t.Errorf("CarveOuts = %v, want %v", got, want)
	}
	if err := l.Uncarve(ctx, []netip.Addr{netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("203.0.113.1")}); err != nil {
		t.Fatal(err)
	}
	if n := l.Stats().CarvedOut; n != 1 {
		t.Errorf("CarvedOut = %d, want 1", n)
	}
	if err := l.Carve(ctx, []CarveOut{{Addr: netip.Addr{}}}); err == nil {
		t.Error("Carve of an invalid address succeeded")
	}
}
