package engine

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// snapshotOf returns e's snapshot.
func snapshotOf(t *testing.T, e *Engine) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := e.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// restarted returns a new engine (made by mk) loaded with e's snapshot, as
// the daemon does at start-up.
func restarted(t *testing.T, e *Engine, mk func() *Engine) *Engine {
	t.Helper()
	n := mk()
	if _, err := n.Load(bytes.NewReader(snapshotOf(t, e))); err != nil {
		t.Fatal(err)
	}
	return n
}

// What was counted before a restart still counts after it: failures in
// progress (the 5th after the restart bans), the slow window, a sprayed
// user name, an enumerator, a prefix filling up, a ban waiting out its
// grace, surge mode.
func TestSnapshotRoundTrip(t *testing.T) {
	mk := func() *Engine { return defaultEngine(t, nil) }
	e := mk()
	// The sprayed name's owner logged in from her phone's carrier.
	evs := []event.Event{ev(0, event.AuthSuccess, "2a02:3032:1::1", "info@example.org")}
	for i := range 4 {
		evs = append(evs, ev(time.Duration(i)*time.Second, event.AuthFailure, "198.51.100.7", "bob"))
	}
	for i := range 3 { // an enumerator: flagged at three unknown recipients
		evs = append(evs, bounce(time.Duration(10+i)*time.Second, "203.0.113.50", fmt.Sprintf("x%d@example.org", i)))
	}
	for i := range 5 { // a sprayed name: hot at five addresses, each waiting for its ban
		evs = append(evs, ev(time.Duration(20+i)*time.Second, event.AuthFailure, fmt.Sprintf("192.0.%d.1", 10+i), "info@example.org"))
	}
	evs = append(evs, // two bad addresses of one /24
		ev(30*time.Second, event.AuthFailure, "45.134.7.1", "a"),
		ev(31*time.Second, event.AuthFailure, "45.134.7.2", "b"))
	if got := observe(e, evs...); len(got) != 0 {
		t.Fatalf("decisions before the restart: %v", got)
	}
	if e.Pending() != 5 {
		t.Fatalf("%d pending bans, want 5", e.Pending())
	}
	n := restarted(t, e, mk)
	at := t0.Add(40 * time.Second)
	if a := n.Assess(netip.MustParseAddr("203.0.113.50"), "", at); !a.Enumerating {
		t.Error("the enumerator is no longer flagged after the restart")
	}
	if a := n.Assess(netip.MustParseAddr("192.0.99.1"), "info@example.org", at); !a.HotUser {
		t.Error("the sprayed name is no longer hot after the restart")
	}
	if a := n.Assess(netip.MustParseAddr("2a02:3032:9999::1"), "info@example.org", at); !a.UserNetwork {
		t.Errorf("the user's network is forgotten after the restart: %+v", a)
	}
	if n.Pending() != 5 {
		t.Errorf("%d pending bans after the restart, want 5", n.Pending())
	}
	if got := settle(n, 5*time.Minute); len(got) != 5 || got[0] != "user-spray 192.0.14.1/32" {
		t.Errorf("the pending bans after the restart: %v", got)
	}
	if got := observe(n, ev(50*time.Second, event.AuthFailure, "198.51.100.7", "bob")); fmt.Sprint(got) != "[ip-failures 198.51.100.7/32]" {
		t.Errorf("5th failure after the restart: %v, want a ban", got)
	}
	if got := observe(n, ev(60*time.Second, event.AuthFailure, "45.134.7.3", "c")); fmt.Sprint(got) != "[prefix 45.134.7.0/24]" {
		t.Errorf("3rd bad address of a /24 after the restart: %v, want the prefix banned", got)
	}
}

// The previous version's snapshot (no users' home networks) is still read.
func TestSnapshotVersion1(t *testing.T) {
	e := defaultEngine(t, nil)
	observe(e, ev(0, event.AuthSuccess, "2a02:3032:1::1", "ann"))
	for i := range 4 {
		observe(e, ev(time.Duration(1+i)*time.Second, event.AuthFailure, "198.51.100.7", "bob"))
	}
	var b bytes.Buffer
	if _, err := e.snapshot(&b, 1); err != nil {
		t.Fatal(err)
	}
	n := defaultEngine(t, nil)
	if _, err := n.Load(&b); err != nil {
		t.Fatalf("version 1: %v", err)
	}
	if got := observe(n, ev(10*time.Second, event.AuthFailure, "198.51.100.7", "bob")); fmt.Sprint(got) != "[ip-failures 198.51.100.7/32]" {
		t.Errorf("5th failure after loading version 1: %v, want a ban", got)
	}
}

// Jails are matched by name: a jail moved in the list keeps its counts, one
// removed loses them, and a ban pending in it is dropped.
func TestSnapshotJailsByName(t *testing.T) {
	two := func(names ...string) func() *Engine {
		return func() *Engine {
			var js []Jail
			for _, n := range names {
				js = append(js, Jail{Name: n, Services: []string{n}, MaxRetry: 3, FindTime: time.Hour, BanTime: time.Hour})
			}
			return newTestEngine(t, Config{Jails: js})
		}
	}
	e := two("sshd", "dovecot")()
	for i := range 2 {
		e.Observe(event.Event{Time: t0.Add(time.Duration(i) * time.Second), Service: "sshd", Kind: event.AuthFailure, Addr: netip.MustParseAddr("192.0.2.1")})
		e.Observe(event.Event{Time: t0.Add(time.Duration(i) * time.Second), Service: "dovecot", Kind: event.AuthFailure, Addr: netip.MustParseAddr("192.0.2.2")})
	}
	n := restarted(t, e, two("postfix", "sshd"))
	third := func(service, addr string) []event.Decision {
		return n.Observe(event.Event{Time: t0.Add(time.Minute), Service: service, Kind: event.AuthFailure, Addr: netip.MustParseAddr(addr)})
	}
	if ds := third("sshd", "192.0.2.1"); len(ds) != 1 {
		t.Errorf("sshd, moved in the list: 3rd failure gave %v, want a ban", ds)
	}
	if ds := third("postfix", "192.0.2.2"); len(ds) != 0 {
		t.Errorf("dovecot's counts went to another jail: %v", ds)
	}
}

// A snapshot of another version, a truncated or a corrupt one is refused
// with ErrSnapshot, never a panic; the caller starts a fresh engine.
func TestSnapshotRefused(t *testing.T) {
	e := defaultEngine(t, nil)
	observe(e, ev(0, event.AuthFailure, "192.0.2.1", "x"))
	good := snapshotOf(t, e)
	version := bytes.Clone(good)
	version[len(snapshotMagic)+4] = 99 // the version's first byte, after the magic's length and text
	for name, b := range map[string][]byte{
		"empty":     nil,
		"not one":   []byte("hello, world"),
		"version":   version,
		"truncated": good[:len(good)-3],
		"trailing":  append(bytes.Clone(good), 0),
	} {
		if _, err := defaultEngine(t, nil).Load(bytes.NewReader(b)); !errors.Is(err, ErrSnapshot) {
			t.Errorf("%s: %v, want ErrSnapshot", name, err)
		}
	}
}

// Entries past every window that could count them are not written.
func TestSnapshotLeavesStaleOut(t *testing.T) {
	e := defaultEngine(t, nil)
	observe(e, ev(0, event.AuthFailure, "192.0.2.1", ""))
	observe(e, ev(13*time.Hour, event.AuthFailure, "192.0.2.2", "")) // the first is past the 12h slow window
	n := restarted(t, e, func() *Engine { return defaultEngine(t, nil) })
	if s := n.Stats(); s.Tracked != 1 {
		t.Fatalf("%d tracked after the restart, want 1 (the stale one left out)", s.Tracked)
	}
}

// A ban decided again for the same target at the same second as one in
// the history (log lines read again after a restart) is not made twice.
func TestBanNotRepeated(t *testing.T) {
	e := defaultEngine(t, nil)
	var first []event.Decision
	for i := range 5 {
		first = append(first, e.Observe(ev(time.Duration(i)*time.Second, event.AuthFailure, "192.0.2.9", "bob"))...)
	}
	if len(first) != 1 {
		t.Fatalf("first pass: %v", first)
	}
	// A restart after the ban ended: the history has it, the active bans not.
	n := defaultEngine(t, nil)
	for _, d := range first {
		n.RestoreBan(d.Target, d.Start)
	}
	for i := range 5 {
		if ds := n.Observe(ev(time.Duration(i)*time.Second, event.AuthFailure, "192.0.2.9", "bob")); len(ds) != 0 {
			t.Fatalf("the same lines read again banned again: %v", ds)
		}
	}
	if s := n.Stats(); s.Repeated != 1 || s.Decisions != 0 {
		t.Fatalf("stats %+v, want one repeat recognised and no decision", s)
	}
	// A later failure is a new ban, escalated by the first.
	var later []event.Decision
	for i := range 5 {
		later = append(later, n.Observe(ev(time.Hour+time.Duration(i)*time.Second, event.AuthFailure, "192.0.2.9", "bob"))...)
	}
	if len(later) != 1 || later[0].Duration != 20*time.Minute {
		t.Fatalf("a new ban after the restart: %+v, want one of 20m", later)
	}
}

// FuzzSnapshotLoad: any bytes give a loaded engine or ErrSnapshot.
func FuzzSnapshotLoad(f *testing.F) {
	e, err := New(DefaultConfig(Jail{Name: "sshd", Services: []string{"sshd"}}))
	if err != nil {
		f.Fatal(err)
	}
	for i := range 6 {
		e.Observe(event.Event{Time: t0.Add(time.Duration(i) * time.Second), Service: "sshd", Kind: event.AuthFailure, Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), User: "root"})
	}
	var b bytes.Buffer
	e.Snapshot(&b)
	f.Add(b.Bytes())
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := New(DefaultConfig(Jail{Name: "sshd", Services: []string{"sshd"}}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Load(bytes.NewReader(data)); err != nil && !errors.Is(err, ErrSnapshot) {
			t.Fatalf("error %v is not ErrSnapshot", err)
		}
		n.Observe(event.Event{Time: t0, Service: "sshd", Kind: event.AuthFailure, Addr: netip.MustParseAddr("192.0.2.77")})
		n.Tick(t0.Add(time.Hour))
	})
}

// A table larger than SnapshotMax keeps its most recently active entries
// across a restart: the address that failed last still has its failures,
// the first one has lost them.
func TestSnapshotKeepsTheMostRecent(t *testing.T) {
	if testing.Short() {
		t.Skip("observes SnapshotMax addresses")
	}
	mk := func() *Engine {
		return defaultEngine(t, func(c *Config) {
			c.MaxTracked = SnapshotMax + 20_000
			c.Jails[0].FindTime = time.Hour
			c.Prefixes.V4 = []Level{{Bits: 24, Addresses: distinctSize}}
			c.Prefixes.V6 = []Level{{Bits: 64, Addresses: distinctSize}}
			c.Spray = Spray{}
			c.Slow = Slow{}
		})
	}
	e := mk()
	// A hundred failures a second: the SnapshotMax most recent begin on a
	// whole second (stamps count seconds), so which are kept is exact.
	n := SnapshotMax + 10_000
	fail := event.Event{Service: "sshd", Kind: event.AuthFailure, User: "root"}
	for i := range n {
		fail.Time, fail.Addr = t0.Add(time.Duration(i)*10*time.Millisecond), uniqueAddr(i)
		if ds := e.Observe(fail); len(ds) > 0 {
			t.Fatalf("failure %d decided %v", i, ds)
		}
	}
	r := restarted(t, e, mk)
	if got := r.Stats().Tracked; got != SnapshotMax {
		t.Fatalf("%d addresses tracked after the restart, want %d", got, SnapshotMax)
	}
	at := t0.Add(time.Duration(n) * 10 * time.Millisecond)
	for _, c := range []struct {
		i    int
		bans bool
	}{{n - 1, true}, {n - SnapshotMax, true}, {n - SnapshotMax - 1, false}, {0, false}} {
		var ds []event.Decision
		for k := range 4 {
			fail.Time, fail.Addr = at.Add(time.Duration(k)*time.Second), uniqueAddr(c.i)
			ds = append(ds, r.Observe(fail)...)
		}
		if got := len(ds) > 0; got != c.bans {
			t.Errorf("address %d (%s): banned after 4 more failures %v, want %v", c.i, uniqueAddr(c.i), got, c.bans)
		}
	}
}

// shortWriter takes n bytes, then fails.
type shortWriter struct{ n int }

var errFull = errors.New("disk full")

func (w *shortWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errFull
	}
	w.n -= len(p)
	return len(p), nil
}

// A snapshot written in chunks reports its writer's error, whether the
// writer fails at the first chunk or a later one.
func TestSnapshotWriteError(t *testing.T) {
	e := defaultEngine(t, nil)
	fail := event.Event{Service: "sshd", Kind: event.AuthFailure, User: "root"}
	for i := range 5000 {
		fail.Time, fail.Addr = t0.Add(time.Duration(i)*time.Second), uniqueAddr(i)
		e.Observe(fail)
	}
	size := len(snapshotOf(t, e))
	if size < 2*snapChunk {
		t.Fatalf("snapshot of %d bytes, want several chunks", size)
	}
	for _, n := range []int{0, 10, snapChunk + 100, size - 1} {
		if _, err := e.Snapshot(&shortWriter{n: n}); !errors.Is(err, errFull) {
			t.Errorf("writer failing after %d of %d bytes: err %v", n, size, err)
		}
	}
	if _, err := e.Snapshot(&shortWriter{n: size}); err != nil {
		t.Errorf("writer taking all %d bytes: %v", size, err)
	}
}

// TestRestoreKeepsNewestBans: a target banned more often than its history
// holds keeps its most recent bans when they are restored oldest first, so
// that recidive still sees the last day's.
func TestRestoreKeepsNewestBans(t *testing.T) {
	e := defaultEngine(t, nil) // recidive: 5 bans within 1d
	target := netip.MustParsePrefix("192.0.2.9/32")
	day := 24 * time.Hour
	for i := range 8 { // 20 to 27 days ago
		e.RestoreBan(target, t0.Add(-time.Duration(27-i)*day))
	}
	for i := range 4 { // the last 4 hours
		e.RestoreBan(target, t0.Add(-time.Duration(4-i)*time.Hour))
	}
	var ds []event.Decision
	for i := range 5 {
		ds = append(ds, e.Observe(ev(time.Duration(i)*time.Second, event.AuthFailure, "192.0.2.9", "bob"))...)
	}
	if len(ds) != 1 || ds[0].Scenario != "recidive" {
		t.Fatalf("got %+v, want a recidive ban (the 5th within a day)", ds)
	}
}
