package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/store"
)

// TestCarvesWriteRarely follows one good client's logins and checks when
// the kernel is written: at the first login, then only when the kernel's
// entry has less than half the TTL left, and by the sweep before the
// kernel's entry would end while the client is still known-good.
func TestCarvesWriteRarely(t *testing.T) {
	var c carves
	t0 := time.Unix(1_700_000_000, 0)
	ttl := 10 * time.Hour
	addr := netip.MustParseAddr("::ffff:192.0.2.9")
	steps := []struct {
		at    time.Duration // since t0
		login bool          // a login (else a sweep)
		write bool          // a kernel write is queued
		until time.Duration // the end written, since t0
	}{
		{0, true, true, 10 * time.Hour},
		{time.Minute, true, false, 0},                            // 9h59m left of 10h
		{4 * time.Hour, true, false, 0},                          // 6h left: more than half
		{4*time.Hour + time.Minute, false, false, 0},             // the sweep: 6h left of 10h wanted
		{6*time.Hour + time.Minute, false, true, 14 * time.Hour}, // 3h59m left of 7h59m wanted: refresh to the latest login's end
		{6*time.Hour + 2*time.Minute, true, false, 0},            // 7h58m left of 10h
		{11 * time.Hour, true, true, 21 * time.Hour},             // 3h left of 10h
		{40 * time.Hour, false, false, 0},                        // ended: forgotten
	}
	for i, st := range steps {
		now := t0.Add(st.at)
		var queued bool
		if st.login {
			queued = c.good(addr, now.Add(ttl), now)
		} else {
			queued = c.sweep(now)
		}
		cs := c.take()
		if queued != st.write || len(cs) != map[bool]int{true: 1}[st.write] {
			t.Fatalf("step %d (%v): queued %v, writes %v; want a write: %v", i, st.at, queued, cs, st.write)
		}
		if st.write && (cs[0].Addr != addr.Unmap() || !cs[0].Until.Equal(t0.Add(st.until))) {
			t.Fatalf("step %d: wrote %+v, want %s until +%v", i, cs[0], addr.Unmap(), st.until)
		}
	}
	if len(c.rec) != 0 {
		t.Errorf("an ended carve-out is still recorded: %v", c.rec)
	}
	// Past ends and invalid addresses are ignored; a refused write is
	// retried at the next login.
	if c.good(addr, t0, t0) || c.good(netip.Addr{}, t0.Add(ttl), t0) {
		t.Error("a carve-out that has ended, or of no address, was queued")
	}
	c.good(addr, t0.Add(ttl), t0)
	c.failed(c.take())
	if !c.good(addr, t0.Add(ttl), t0.Add(time.Minute)) {
		t.Error("the login after a refused write did not write again")
	}
}

// TestCarvesBounded fills the record beyond its cap.
func TestCarvesBounded(t *testing.T) {
	var c carves
	now := time.Unix(1_700_000_000, 0)
	for i := range carveRecordCap + 5000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !c.good(a, now.Add(time.Hour), now) {
			t.Fatalf("login %d not written", i)
		}
		if i%1000 == 0 {
			c.take()
		}
	}
	if len(c.rec) > carveRecordCap {
		t.Errorf("record holds %d, cap %d", len(c.rec), carveRecordCap)
	}
}

// countingCarver counts the Carve calls reaching a Log enforcer.
type countingCarver struct {
	*firewall.Log
	calls int
}

func (c *countingCarver) Carve(ctx context.Context, cs []firewall.CarveOut) error {
	c.calls++
	return c.Log.Carve(ctx, cs)
}

// TestKnownGoodCarvedOut checks the daemon's wiring: a successful login is
// carved out until its known-good TTL ends, repeated logins do not write
// again, and at the next start the known-good clients in the store are
// carved out again.
func TestKnownGoodCarvedOut(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg, err := config.Load(writeConfig(t, dir, filepath.Join(dir, "auth.log"), 3, "[known_good]\nttl = \"2h\""))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	enf := &countingCarver{Log: firewall.NewLog(log)}
	d, err := New(ctx, Options{Config: cfg, Logger: log, Enforcer: enf, EnforcerName: "log"})
	if err != nil {
		t.Fatal(err)
	}
	good := netip.MustParseAddr("192.0.2.9")
	now := time.Now().Truncate(time.Second) // the engine's resolution
	for i := range 3 {
		// What Daemon.line does with a login: the store remembers it, the
		// engine's decisions (here, the carve-out) go to the applier.
		ev := event.Event{Time: now.Add(time.Duration(i) * time.Second), Service: "sshd", Kind: event.AuthSuccess, Addr: good, User: "alice"}
		d.apply.knownGood(ev)
		d.apply.submit(d.currentPipe().Engine.Observe(ev))
		d.apply.flush(ctx)
	}
	cs, err := enf.CarveOuts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Addr != good || cs[0].Until.Sub(now) != 2*time.Hour {
		t.Errorf("carve-outs = %+v, want %s until two hours after the login", cs, good)
	}
	if enf.calls != 1 {
		t.Errorf("three logins made %d kernel writes, want 1", enf.calls)
	}
	if st := d.Status(); st.Firewall.CarvedOut != 1 {
		t.Errorf("status carved_out = %d, want 1", st.Firewall.CarvedOut)
	}
	d.Close()

	// A known-good client recorded an hour ago: carved out for the hour
	// left of its TTL at the next start.
	st, err := store.Open(ctx, filepath.Join(cfg.Daemon.StateDir, "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	old := netip.MustParseAddr("2001:db8::7")
	if err := st.AddKnownGood(ctx, old, "bob", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	next := &countingCarver{Log: firewall.NewLog(log)}
	d2, err := New(ctx, Options{Config: cfg, Logger: log, Enforcer: next, EnforcerName: "log"})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	cs, err = next.CarveOuts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// (the store has the latest of the three logins)
	want := map[netip.Addr]time.Time{good: now.Add(2*time.Hour + 2*time.Second), old: now.Add(time.Hour)}
	if len(cs) != 2 || next.calls != 1 {
		t.Fatalf("carve-outs after restart = %+v in %d writes, want %v in one", cs, next.calls, want)
	}
	for _, c := range cs {
		if w, ok := want[c.Addr]; !ok || c.Until.Sub(w).Abs() > time.Millisecond {
			t.Errorf("carve-out %+v, want until %v", c, w)
		}
	}
}
