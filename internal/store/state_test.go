package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

func TestPositions(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if p, ok, err := s.LoadPosition(ctx, "/var/log/auth.log"); err != nil || ok || p != "" {
		t.Errorf("LoadPosition(missing) = %q, %v, %v", p, ok, err)
	}
	steps := []struct {
		origin, pos string
	}{
		{"/var/log/auth.log", "dev=2049 ino=1234 off=0 hash=00"},
		{"/var/log/auth.log", "dev=2049 ino=1234 off=98765 hash=ab"},
		{"journald", "s=6c4f;i=1a2b;b=77;m=0;t=5f;x=1"},
		{"", "empty origin is a key like any other"},
		{"unicode ✓", "pos with\nnewline and \x00 byte"},
	}
	for _, st := range steps {
		if err := s.SavePosition(ctx, st.origin, st.pos); err != nil {
			t.Fatal(err)
		}
		if p, ok, err := s.LoadPosition(ctx, st.origin); err != nil || !ok || p != st.pos {
			t.Errorf("LoadPosition(%q) = %q, %v, %v; want %q", st.origin, p, ok, err, st.pos)
		}
	}
	batch := map[string]string{"journald": "s=new", "/var/log/mail.log": "off=5"}
	for i := range 100 {
		batch[fmt.Sprintf("/var/log/app%d.log", i)] = fmt.Sprint(i)
	}
	if err := s.SavePositions(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePositions(ctx, nil); err != nil {
		t.Errorf("SavePositions(nil) = %v", err)
	}
	all, err := s.Positions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 105 || all["journald"] != "s=new" || all["/var/log/app42.log"] != "42" ||
		all["/var/log/auth.log"] != steps[1].pos {
		t.Errorf("Positions = %d entries: journald=%q app42=%q", len(all), all["journald"], all["/var/log/app42.log"])
	}
}

func TestKnownGood(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	a := netip.MustParseAddr("198.51.100.7")
	b := netip.MustParseAddr("2001:db8::7")
	steps := []struct {
		addr netip.Addr
		user string
		at   time.Time
	}{
		{a, "alice", t0},
		{netip.MustParseAddr("::ffff:198.51.100.7"), "alice", t0.Add(time.Hour)}, // same client
		{a, "", t0.Add(2 * time.Hour)},                                           // no user: keep alice
		{a, "root", t0.Add(-time.Hour)},                                          // late, older report: count it, keep alice
		{b, "bob", t0.Add(30 * time.Minute)},
	}
	for _, st := range steps {
		if err := s.AddKnownGood(ctx, st.addr, st.user, st.at); err != nil {
			t.Fatal(err)
		}
	}
	ks, err := s.KnownGood(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := []KnownGood{
		{Addr: a, User: "alice", FirstSeen: t0.Add(-time.Hour), LastSeen: t0.Add(2 * time.Hour), Count: 4},
		{Addr: b, User: "bob", FirstSeen: t0.Add(30 * time.Minute), LastSeen: t0.Add(30 * time.Minute), Count: 1},
	}
	if fmt.Sprint(ks) != fmt.Sprint(want) {
		t.Errorf("KnownGood =\n%v\nwant\n%v", ks, want)
	}
	for _, tc := range []struct {
		since time.Time
		want  int
	}{
		{t0, 2},
		{t0.Add(30 * time.Minute), 2},
		{t0.Add(31 * time.Minute), 1},
		{t0.Add(2 * time.Hour), 1},
		{t0.Add(3 * time.Hour), 0},
	} {
		if ks, err := s.KnownGood(ctx, tc.since); err != nil || len(ks) != tc.want {
			t.Errorf("KnownGood(%v) = %d, %v; want %d", tc.since.Sub(t0), len(ks), err, tc.want)
		}
	}
	if err := s.ForgetKnownGood(ctx, netip.MustParseAddr("::ffff:198.51.100.7")); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetKnownGood(ctx, a); err != nil {
		t.Errorf("forgetting an unknown client = %v", err)
	}
	if ks, _ := s.KnownGood(ctx, time.Time{}); len(ks) != 1 || ks[0].Addr != b {
		t.Errorf("after forget: %v", ks)
	}
	if err := s.AddKnownGood(ctx, netip.Addr{}, "x", t0); err == nil {
		t.Error("AddKnownGood(invalid) succeeded")
	}
}

func TestMeta(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if v, ok, err := s.Meta(ctx, "node_id"); err != nil || ok || v != "" {
		t.Errorf("Meta(missing) = %q, %v, %v", v, ok, err)
	}
	for _, v := range []string{"a", "", "b"} {
		if err := s.SetMeta(ctx, "node_id", v); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := s.Meta(ctx, "node_id"); err != nil || !ok || got != v {
			t.Errorf("Meta = %q, %v, %v; want %q", got, ok, err, v)
		}
	}
}

func TestRelays(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	a := netip.MustParseAddr("209.85.220.41")
	b := netip.MustParseAddr("2a00:1450:4864::1")
	for _, st := range []struct {
		addr netip.Addr
		at   time.Time
	}{
		{a, t0},
		{netip.MustParseAddr("::ffff:209.85.220.41"), t0.Add(time.Hour)},
		{a, t0.Add(-time.Hour)},
		{b, t0.Add(30 * time.Minute)},
	} {
		if err := s.AddRelay(ctx, st.addr, st.at); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.Relays(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Relay{
		{Addr: a, FirstSeen: t0.Add(-time.Hour), LastSeen: t0.Add(time.Hour), Count: 3},
		{Addr: b, FirstSeen: t0.Add(30 * time.Minute), LastSeen: t0.Add(30 * time.Minute), Count: 1},
	}
	if fmt.Sprint(rs) != fmt.Sprint(want) {
		t.Errorf("Relays =\n%v\nwant\n%v", rs, want)
	}
	if rs, _ := s.Relays(ctx, t0.Add(31*time.Minute)); len(rs) != 1 || rs[0].Addr != a {
		t.Errorf("Relays since 31m: %v", rs)
	}
	if err := s.AddRelay(ctx, netip.Addr{}, t0); err == nil {
		t.Error("AddRelay of an invalid address accepted")
	}
}

func TestEngineSnapshot(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if _, _, ok, err := s.Snapshot(ctx); ok || err != nil {
		t.Fatalf("empty store: snapshot %v, %v", ok, err)
	}
	for i, data := range [][]byte{[]byte("first"), []byte("second, longer")} {
		pos := map[string]string{"file:/var/log/auth.log": fmt.Sprintf("dev=1 ino=2 off=%d", i)}
		if err := s.SaveSnapshot(ctx, data, pos, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	data, saved, ok, err := s.Snapshot(ctx)
	if err != nil || !ok || string(data) != "second, longer" || !saved.Equal(t0.Add(time.Minute)) {
		t.Fatalf("snapshot %q at %v, %v %v: want the second one", data, saved, ok, err)
	}
	// The positions were saved with it.
	if pos, ok, err := s.LoadPosition(ctx, "file:/var/log/auth.log"); err != nil || !ok || pos != "dev=1 ino=2 off=1" {
		t.Fatalf("position %q %v %v, want the second snapshot's", pos, ok, err)
	}
	// A snapshot of several parts comes back whole and in order, and a
	// shorter one saved after it leaves none of its parts behind.
	for _, size := range []int{4*snapshotPart + 12345, snapshotPart, snapshotPart + 1, 0, 3} {
		want := make([]byte, size)
		r := rand.New(rand.NewPCG(uint64(size), 1))
		for i := range want {
			want[i] = byte(r.Uint32())
		}
		if err := s.SaveSnapshot(ctx, want, nil, t0); err != nil {
			t.Fatal(err)
		}
		got, _, ok, err := s.Snapshot(ctx)
		if err != nil || !ok || !bytes.Equal(got, want) {
			t.Fatalf("snapshot of %d bytes: got %d bytes (equal %v), %v %v", size, len(got), bytes.Equal(got, want), ok, err)
		}
		var parts int
		s.r.QueryRow(`SELECT count(*) FROM engine_snapshot`).Scan(&parts)
		if wantParts := max(1, (size+snapshotPart-1)/snapshotPart); parts != wantParts {
			t.Fatalf("snapshot of %d bytes in %d rows, want %d", size, parts, wantParts)
		}
	}
}

// A snapshot saved by the schema before parts (one row, id 1) is read after
// the migration.
func TestEngineSnapshotMigrated(t *testing.T) {
	ctx := context.Background()
	db, path := openAtVersion(t, 9) // the schema before 0010_snapshot_parts.sql
	old := bytes.Repeat([]byte("engine state "), 100_000)
	if _, err := db.Exec(`INSERT INTO engine_snapshot (id, saved_ns, data) VALUES (1, ?, ?)`, toNS(t0), old); err != nil {
		t.Fatal(err)
	}
	s := upgraded(t, db, path)
	got, saved, ok, err := s.Snapshot(ctx)
	if err != nil || !ok || !bytes.Equal(got, old) || !saved.Equal(t0) {
		t.Fatalf("migrated snapshot: %d bytes (equal %v) at %v, %v %v", len(got), bytes.Equal(got, old), saved, ok, err)
	}
}

// TestRecordBatchSightings: the good clients seen are written in the
// decisions' transaction, with the positions; an invalid address among them
// is skipped, and a bad decision writes none of it.
func TestRecordBatchSightings(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	user := netip.MustParseAddr("198.51.100.7")
	relay := netip.MustParseAddr("209.85.220.41")
	seen := []Sighting{
		{Addr: user, User: "alice", At: t0},
		{Addr: relay, Relay: true, At: t0},
		{Addr: netip.Addr{}, At: t0},
		{Addr: user, At: t0.Add(time.Minute)},
		{Addr: relay, Relay: true, At: t0.Add(2 * time.Minute)},
	}
	pos := map[string]string{"file:/var/log/mail.log": "dev=1 ino=2 off=10"}

	bad := []event.Decision{{Target: netip.MustParsePrefix("192.0.2.2/32"), Start: t0}}
	if _, err := s.RecordBatch(ctx, bad, pos, seen); err == nil {
		t.Fatal("RecordBatch with a bad decision succeeded")
	}
	if ks, _ := s.KnownGood(ctx, time.Time{}); len(ks) != 0 {
		t.Errorf("known-good clients after a failed batch: %v", ks)
	}
	if m, _ := s.Positions(ctx); len(m) != 0 {
		t.Errorf("positions after a failed batch: %v", m)
	}

	if _, err := s.RecordBatch(ctx, nil, pos, seen); err != nil {
		t.Fatal(err)
	}
	ks, err := s.KnownGood(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	wantK := []KnownGood{{Addr: user, User: "alice", FirstSeen: t0, LastSeen: t0.Add(time.Minute), Count: 2}}
	if fmt.Sprint(ks) != fmt.Sprint(wantK) {
		t.Errorf("KnownGood = %v, want %v", ks, wantK)
	}
	rs, err := s.Relays(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	wantR := []Relay{{Addr: relay, FirstSeen: t0, LastSeen: t0.Add(2 * time.Minute), Count: 2}}
	if fmt.Sprint(rs) != fmt.Sprint(wantR) {
		t.Errorf("Relays = %v, want %v", rs, wantR)
	}
	if m, _ := s.Positions(ctx); m["file:/var/log/mail.log"] != pos["file:/var/log/mail.log"] {
		t.Errorf("positions = %v, want %v", m, pos)
	}
}

// TestSightingsMerged records random batches of sightings, many of the same
// few clients, and checks that a batch written at once (merged per client)
// leaves the tables as upserting the sightings one at a time in order
// would: counts, first and last times, and the user of the latest login
// that named one (worked out here by that rule, sighting by sighting).
func TestSightingsMerged(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	r := rand.New(rand.NewPCG(7, 11))
	addrs := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.2"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("198.51.100.7"),
	}
	users := []string{"", "", "alice", "bob", "carol"}
	good, relays := map[netip.Addr]*KnownGood{}, map[netip.Addr]*Relay{}
	for range 40 {
		batch := make([]Sighting, 1+r.IntN(30))
		for i := range batch {
			x := Sighting{
				Addr:  addrs[r.IntN(len(addrs))],
				User:  users[r.IntN(len(users))],
				Relay: r.IntN(4) == 0,
				// Times go back and forth, and repeat.
				At: t0.Add(time.Duration(r.IntN(20)) * time.Minute),
			}
			batch[i] = x
			a := x.Addr.Unmap()
			switch g, rl := good[a], relays[a]; {
			case x.Relay && rl == nil:
				relays[a] = &Relay{Addr: a, FirstSeen: x.At, LastSeen: x.At, Count: 1}
			case x.Relay:
				rl.FirstSeen, rl.LastSeen, rl.Count = minTime(rl.FirstSeen, x.At), maxTime(rl.LastSeen, x.At), rl.Count+1
			case g == nil:
				good[a] = &KnownGood{Addr: a, User: x.User, FirstSeen: x.At, LastSeen: x.At, Count: 1}
			default:
				if x.User != "" && !x.At.Before(g.LastSeen) {
					g.User = x.User
				}
				g.FirstSeen, g.LastSeen, g.Count = minTime(g.FirstSeen, x.At), maxTime(g.LastSeen, x.At), g.Count+1
			}
		}
		if err := s.addSightings(ctx, batch); err != nil {
			t.Fatal(err)
		}
		gs, err := s.KnownGood(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			if w := good[g.Addr]; w == nil || !g.FirstSeen.Equal(w.FirstSeen) || !g.LastSeen.Equal(w.LastSeen) || g.User != w.User || g.Count != w.Count {
				t.Fatalf("known-good %v, want %v", g, w)
			}
		}
		rs, err := s.Relays(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, rl := range rs {
			if w := relays[rl.Addr]; w == nil || !rl.FirstSeen.Equal(w.FirstSeen) || !rl.LastSeen.Equal(w.LastSeen) || rl.Count != w.Count {
				t.Fatalf("relay %v, want %v", rl, w)
			}
		}
		if len(gs) != len(good) || len(rs) != len(relays) {
			t.Fatalf("%d known-good clients and %d relays, want %d and %d", len(gs), len(rs), len(good), len(relays))
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
