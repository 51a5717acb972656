package engine

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// TestPerPortBans: a jail with ports bans only them; the address is still
// counted, and banned, by a jail with other ports; events of the banned
// ports are not counted again; recidive and prefix bans are whole-host.
func TestPerPortBans(t *testing.T) {
	ssh := []event.PortRange{{Proto: event.TCP, First: 22, Last: 22}}
	smtp := []event.PortRange{{Proto: event.TCP, First: 587, Last: 587}, {Proto: event.TCP, First: 25, Last: 25}}
	e := newTestEngine(t, Config{
		Jails: []Jail{
			{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 2, FindTime: 10 * time.Minute, BanTime: time.Hour, Ports: ssh},
			{Name: "postfix", Services: []string{"postfix"}, MaxRetry: 2, FindTime: 10 * time.Minute, BanTime: time.Hour, Ports: smtp},
			{Name: "web", Services: []string{"nginx"}, MaxRetry: 2, FindTime: 10 * time.Minute, BanTime: time.Hour},
		},
		Recidive: Recidive{Bans: 3, Window: 24 * time.Hour, BanTime: 7 * 24 * time.Hour},
	})
	a := netip.MustParseAddr("192.0.2.1")
	ev := func(at time.Duration, service string) []event.Decision {
		return e.Observe(event.Event{Time: t0.Add(at), Service: service, Kind: event.AuthFailure, Addr: a, User: "root"})
	}
	ev(0, "sshd")
	ds := ev(time.Second, "sshd")
	if len(ds) != 1 || event.FormatPorts(ds[0].Ports) != "22/tcp" || ds[0].Jail != "sshd" {
		t.Fatalf("sshd ban = %+v, want one ban on 22/tcp", ds)
	}
	if _, banned := e.Banned(a, t0.Add(2*time.Second)); banned {
		t.Error("an address banned on one port is banned for the whole host")
	}
	// Its sshd failures are not counted again while banned.
	before := e.Stats().WhileBanned
	ev(3*time.Second, "sshd")
	if e.Stats().WhileBanned != before+1 {
		t.Error("a failure on the banned port was counted")
	}
	// Postfix still counts it, and bans its own ports.
	ev(4*time.Second, "postfix")
	ds = ev(5*time.Second, "postfix")
	if len(ds) != 1 || event.FormatPorts(ds[0].Ports) != "25/tcp,587/tcp" {
		t.Fatalf("postfix ban = %+v, want one ban on 25/tcp,587/tcp", ds)
	}
	act := e.Active(t0.Add(6 * time.Second))
	if len(act) != 2 || event.FormatPorts(act[0].Ports) != "22/tcp" || event.FormatPorts(act[1].Ports) != "25/tcp,587/tcp" {
		t.Fatalf("Active = %+v, want the two per-port bans", act)
	}
	// A jail without ports bans the whole host; the third ban within the
	// recidive window is recidive's, also whole-host.
	ev(7*time.Second, "nginx")
	ds = ev(8*time.Second, "nginx")
	if len(ds) != 1 || len(ds[0].Ports) != 0 || ds[0].Scenario != "recidive" {
		t.Fatalf("third ban = %+v, want a whole-host recidive ban", ds)
	}
	if _, banned := e.Banned(a, t0.Add(9*time.Second)); !banned {
		t.Error("whole-host ban not seen by Banned")
	}
	if !e.Unban(event.AddrPrefix(a)) {
		t.Error("Unban found nothing")
	}
	if act := e.Active(t0.Add(10 * time.Second)); len(act) != 0 {
		t.Errorf("Active after Unban = %+v, want none", act)
	}

	// Restored per-port bans count for their jail again.
	e.Restore([]event.Decision{{Target: event.AddrPrefix(a), Action: event.Ban, Start: t0.Add(11 * time.Second), Duration: time.Hour, Jail: "sshd", Ports: ssh}})
	before = e.Stats().WhileBanned
	ev(12*time.Second, "sshd")
	if e.Stats().WhileBanned != before+1 {
		t.Error("a restored per-port ban does not stop its jail's counting")
	}
}

func TestJailCounts(t *testing.T) {
	e := newTestEngine(t, Config{Jails: []Jail{
		{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: time.Hour},
		{Name: "postfix", Services: []string{"postfix"}, MaxRetry: 3, FindTime: time.Minute, BanTime: time.Hour},
	}})
	for i, a := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		e.Observe(fail(time.Duration(i)*time.Second, a))
	}
	e.Observe(event.Event{Time: t0, Service: "postfix", Kind: event.AuthFailure, Addr: netip.MustParseAddr("192.0.2.9")})
	// 192.0.2.1 was banned at its third failure and its fourth came
	// while banned: two addresses still failing, six failures, one ban.
	got := e.JailCounts(t0.Add(2 * time.Minute))
	want := []JailCounts{{Name: "sshd", Failing: 2, Failed: 6, Banned: 1, Active: 1}, {Name: "postfix", Failing: 0, Failed: 1}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("JailCounts = %+v, want %+v", got, want)
	}
	// Reconfigure keeps the totals of jails kept.
	if err := e.Reconfigure(Config{Jails: []Jail{{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 5}}}); err != nil {
		t.Fatal(err)
	}
	if got := e.JailCounts(t0.Add(2 * time.Minute)); len(got) != 1 || got[0].Failed != 6 || got[0].Banned != 1 {
		t.Errorf("JailCounts after Reconfigure = %+v", got)
	}
}

// TestRecent: the most recent bans in force, of one jail or all, as many as
// asked for, and how many there are.
func TestRecent(t *testing.T) {
	e := newTestEngine(t, Config{Jails: []Jail{
		{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 1, FindTime: time.Minute, BanTime: time.Hour},
		{Name: "postfix", Services: []string{"postfix"}, MaxRetry: 1, FindTime: time.Minute, BanTime: 10 * time.Second},
	}})
	for i, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		e.Observe(fail(time.Duration(i)*time.Second, a))
	}
	e.Observe(event.Event{Time: t0.Add(3 * time.Second), Service: "postfix", Kind: event.AuthFailure, Addr: netip.MustParseAddr("198.51.100.1")})
	targets := func(ds []event.Decision) string {
		var s []string
		for _, d := range ds {
			s = append(s, d.Target.Addr().String())
		}
		return strings.Join(s, " ")
	}
	now := t0.Add(5 * time.Second)
	for _, tc := range []struct {
		jail  string
		n     int
		want  string
		total int
	}{
		{"", -1, "192.0.2.1 192.0.2.2 192.0.2.3 198.51.100.1", 4},
		{"", 2, "192.0.2.3 198.51.100.1", 4},
		{"", 0, "", 4},
		{"sshd", 2, "192.0.2.2 192.0.2.3", 3},
		{"postfix", -1, "198.51.100.1", 1},
		{"nope", -1, "", 0},
	} {
		ds, total := e.Recent(now, tc.jail, tc.n)
		if got := targets(ds); got != tc.want || total != tc.total {
			t.Errorf("Recent(%q, %d) = %q of %d, want %q of %d", tc.jail, tc.n, got, total, tc.want, tc.total)
		}
	}
	// The postfix ban has ended 20 seconds later: neither listed nor counted.
	if ds, total := e.Recent(t0.Add(20*time.Second), "", 1); targets(ds) != "192.0.2.3" || total != 3 {
		t.Errorf("after the postfix ban ended: %q of %d", targets(ds), total)
	}
	if got := targets(e.Active(now)); got != "192.0.2.1 192.0.2.2 192.0.2.3 198.51.100.1" {
		t.Errorf("Active = %q", got)
	}

	// Many bans in a shuffled order: the n latest are Active's last n.
	rng := rand.New(rand.NewPCG(1, 2))
	for _, i := range rng.Perm(500) {
		e.Observe(fail(time.Duration(i)*time.Second/10, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String()))
	}
	now = t0.Add(time.Minute)
	all := e.Active(now)
	for _, n := range []int{1, 7, 100, len(all), len(all) + 5} {
		ds, total := e.Recent(now, "", n)
		want := all[max(0, len(all)-n):]
		if total != len(all) || len(ds) != len(want) {
			t.Fatalf("Recent(%d): %d of %d, want %d of %d", n, len(ds), total, len(want), len(all))
		}
		for i := range ds {
			if !ds[i].Start.Equal(want[i].Start) {
				t.Fatalf("Recent(%d)[%d] starts %v, want %v", n, i, ds[i].Start, want[i].Start)
			}
		}
	}
}
