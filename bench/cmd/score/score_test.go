package main

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 10, 6, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func mustBans(t *testing.T, jsonl string) []Ban {
	t.Helper()
	bans, err := readBans(strings.NewReader(jsonl))
	if err != nil {
		t.Fatal(err)
	}
	return bans
}

func TestCovered(t *testing.T) {
	// Bans start at t0+100s; the /32 lasts 60s, the /24 and the /64 600s,
	// the ::ffff:-mapped /120 is an IPv4 /24 in disguise, 0 never ends.
	bans := mustBans(t, `
{"ip":"192.0.2.7","time":"2025-03-10T06:01:40Z","duration_s":60,"scenario":"ip-failures"}
{"ip":"198.51.100.0/24","time":"2025-03-10T06:01:40Z","duration_s":600,"scenario":"prefix"}
{"ip":"2001:db8:1:2::/64","time":"2025-03-10T06:01:40Z","duration_s":600,"scenario":"prefix"}
{"ip":"::ffff:203.0.113.0/120","time":"2025-03-10T06:01:40Z","duration_s":600,"scenario":"prefix"}
{"ip":"2001:db8::9","time":"2025-03-10T06:01:40+00:00","duration_s":0,"scenario":"manual"}
`)
	ix := newIndex(bans)
	tests := []struct {
		addr string
		t    int
		want bool
		why  string
	}{
		{"192.0.2.7", 99, false, "before the ban"},
		{"192.0.2.7", 100, false, "the ban's own second: the attempt that triggered it was already checked"},
		{"192.0.2.7", 101, true, "inside"},
		{"192.0.2.7", 159, true, "last second inside"},
		{"192.0.2.7", 160, false, "start+duration is outside"},
		{"192.0.2.8", 120, false, "neighbour of a single-address ban"},
		{"198.51.100.200", 300, true, "inside the banned /24"},
		{"198.51.101.1", 300, false, "next /24"},
		{"198.51.100.200", 700, false, "prefix ban expired"},
		{"2001:db8:1:2:abcd::1", 300, true, "inside the banned /64"},
		{"2001:db8:1:3::1", 300, false, "next /64"},
		{"203.0.113.77", 300, true, "IPv4-mapped prefix read as IPv4"},
		{"::ffff:203.0.113.77", 300, true, "IPv4-mapped attempt address"},
		{"2001:db8::9", 1_000_000, true, "duration 0 never ends"},
	}
	for _, tc := range tests {
		a := netip.MustParseAddr(tc.addr).Unmap()
		if got := ix.covered(a, at(tc.t)); got != tc.want {
			t.Errorf("%s at +%ds: covered %v, want %v (%s)", tc.addr, tc.t, got, tc.want, tc.why)
		}
	}
	if !ix.everBanned(netip.MustParseAddr("198.51.100.1")) || ix.everBanned(netip.MustParseAddr("192.0.2.1")) {
		t.Error("everBanned wrong")
	}
}

func TestReadErrors(t *testing.T) {
	for _, bad := range []string{
		`{"ip":"nope","time":"2025-03-10T06:00:00Z","duration_s":1}`,
		`{"ip":"192.0.2.1","duration_s":1}`,
		`{"ip":"192.0.2.1/33","time":"2025-03-10T06:00:00Z"}`,
		`not json`,
	} {
		if _, err := readBans(strings.NewReader(bad)); err == nil {
			t.Errorf("readBans(%s): no error", bad)
		}
	}
	if _, err := readTruth(strings.NewReader(`{"time":"2025-03-10T06:00:00Z","ip":"192.0.2.1","role":"bot","scenario":"x"}`)); err == nil {
		t.Error("unknown role accepted")
	}
}

func truthLine(sec int, ip, role, scenario string) Attempt {
	return Attempt{Time: at(sec), IP: ip, Role: role, Scenario: scenario, addr: netip.MustParseAddr(ip)}
}

func TestScore(t *testing.T) {
	truth := []Attempt{
		// rot: 4 attempts from one /24; the prefix is banned at +100s.
		truthLine(0, "198.51.100.1", "attacker", "rot"),
		truthLine(100, "198.51.100.2", "attacker", "rot"), // triggers the ban: through
		truthLine(650, "198.51.100.3", "attacker", "rot"), // after 10 min, covered
		truthLine(800, "198.51.100.4", "attacker", "rot"), // after 10 min, ban over: through
		// slow: one address, banned once for 60s.
		truthLine(10, "192.0.2.7", "attacker", "slow"),
		truthLine(130, "192.0.2.7", "attacker", "slow"),
		truthLine(5000, "192.0.2.7", "attacker", "slow"),
		// A legitimate user inside the banned /24, but only before the ban:
		// banned all the same ("at any moment" means the address, not the
		// attempt), its attempt not blocked.
		truthLine(50, "198.51.100.99", "legit", "legit-x"),
		truthLine(60, "203.0.113.5", "legit", "legit-x"),
	}
	bans := mustBans(t, `
{"ip":"198.51.100.0/24","time":"2025-03-10T06:01:40Z","duration_s":600,"scenario":"prefix"}
{"ip":"192.0.2.7","time":"2025-03-10T06:02:00Z","duration_s":60,"scenario":"user-spray"}
{"ip":"192.0.2.200","time":"2025-03-10T06:02:00Z","duration_s":60,"scenario":"user-spray"}
`)
	got := map[string]Score{}
	for _, s := range score(truth, bans) {
		got[s.Scenario] = s
	}
	rot := got["rot"]
	if rot.Attempts != 4 || rot.Through != 3 || rot.After != 2 || rot.AfterThrough != 1 || rot.Bans != 1 || rot.Banned != 4 {
		t.Errorf("rot = %+v", rot)
	}
	slow := got["slow"]
	if slow.Attempts != 3 || slow.Through != 2 || slow.After != 1 || slow.AfterThrough != 1 || slow.Bans != 1 || slow.ByRule["user-spray"] != 1 {
		t.Errorf("slow = %+v", slow)
	}
	lx := got["legit-x"]
	if lx.Attempts != 2 || lx.Blocked() != 0 || lx.Addresses != 2 || lx.Banned != 1 || lx.BannedList[0] != "198.51.100.99" || lx.Bans != 1 {
		t.Errorf("legit-x = %+v", lx)
	}
}

func TestRunTwoTools(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	truth := write("truth.jsonl", `{"time":"2025-03-10T06:00:00Z","ip":"192.0.2.1","role":"attacker","scenario":"naive","service":"sshd","result":"failure"}
{"time":"2025-03-10T06:00:05Z","ip":"192.0.2.1","role":"attacker","scenario":"naive","service":"sshd","result":"failure"}
{"time":"2025-03-10T06:00:00Z","ip":"198.51.100.1","role":"attacker","scenario":"rotation","service":"postfix","result":"failure"}
{"time":"2025-03-10T06:00:00Z","ip":"203.0.113.1","role":"legit","scenario":"legit-nat","service":"dovecot","result":"success"}
`)
	a := write("a.jsonl", `{"ip":"192.0.2.1","time":"2025-03-10T06:00:01Z","duration_s":600,"scenario":"ip-failures","reason":""}`+"\n")
	b := write("b.jsonl", "")
	var out bytes.Buffer
	if err := run(&out, truth, []string{"A=" + a, "B=" + b}, []string{"naive"}, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| naive | 2 | 1 (50.0%) | 2 (100.0%) | 50.0% |",
		"- naive: through 1 <= B's 2: met",
		"- rotation: through 1 <= 10% of B's 1: MISSED",
		"- legit-nat: legitimate addresses banned 0 = 0: met",
		"- naive: ip-failures 1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// A carve-out keeps its address out of prefix bans while it is in force,
// never out of an address ban; an address carved out for a prefix ban's
// whole length was never banned by it.
func TestCarveOuts(t *testing.T) {
	bans := mustBans(t, `
{"ip":"198.51.100.7","action":"allow","time":"2025-03-10T06:00:00Z","duration_s":0,"scenario":"known-good"}
{"ip":"198.51.100.8","action":"allow","time":"2025-03-10T06:00:00Z","duration_s":200,"scenario":"relay"}
{"ip":"198.51.100.0/24","action":"ban","time":"2025-03-10T06:01:40Z","duration_s":600,"scenario":"prefix"}
{"ip":"198.51.100.9","action":"allow","time":"2025-03-10T06:00:00Z","duration_s":0,"scenario":"known-good"}
{"ip":"198.51.100.9","time":"2025-03-10T06:05:00Z","duration_s":60,"scenario":"ip-failures"}
`)
	ix := newIndex(bans)
	for _, tc := range []struct {
		addr string
		t    int
		want bool
	}{
		{"198.51.100.7", 300, false},
		{"198.51.100.8", 150, false}, // carved out until +200s
		{"198.51.100.8", 250, true},
		{"198.51.100.1", 150, true},
		{"198.51.100.9", 200, false},
		{"198.51.100.9", 320, true}, // its own address ban
	} {
		if got := ix.covered(netip.MustParseAddr(tc.addr), at(tc.t)); got != tc.want {
			t.Errorf("%s at +%ds: covered %v, want %v", tc.addr, tc.t, got, tc.want)
		}
	}
	for addr, want := range map[string]bool{"198.51.100.7": false, "198.51.100.8": true, "198.51.100.9": true, "198.51.100.1": true} {
		if got := ix.everBanned(netip.MustParseAddr(addr)); got != want {
			t.Errorf("everBanned(%s) = %v, want %v", addr, got, want)
		}
	}
	if _, err := readBans(strings.NewReader(`{"ip":"198.51.100.0/24","action":"allow","time":"2025-03-10T06:00:00Z"}`)); err == nil {
		t.Error("a carve-out of a prefix accepted")
	}
	if _, err := readBans(strings.NewReader(`{"ip":"198.51.100.1","action":"tarpit","time":"2025-03-10T06:00:00Z"}`)); err == nil {
		t.Error("an unknown action accepted")
	}
}
