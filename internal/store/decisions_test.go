package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func ban(target string, start time.Time, d time.Duration) event.Decision {
	return event.Decision{
		Target:   pfx(target),
		Action:   event.Ban,
		Start:    start,
		Duration: d,
		Scenario: "ip-failures",
		Reason:   "5 failures in 10m",
		Jail:     "sshd",
		Origin:   "local",
	}
}

// manyDecisions returns n one-hour bans of distinct addresses, IPv4 and IPv6
// alternating, starting one millisecond apart.
func manyDecisions(n int, start time.Time) []event.Decision {
	ds := make([]event.Decision, n)
	for i := range ds {
		var a netip.Addr
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		} else {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		}
		ds[i] = ban("0.0.0.0/32", start.Add(time.Duration(i)*time.Millisecond), time.Hour)
		ds[i].Target = event.AddrPrefix(a)
	}
	return ds
}

func equalDecision(a, b event.Decision) bool {
	return a.Target == b.Target && a.Action == b.Action && a.Start.Equal(b.Start) &&
		a.Duration == b.Duration && a.Scenario == b.Scenario && a.Reason == b.Reason &&
		a.Jail == b.Jail && a.Origin == b.Origin
}

func activeTargets(t *testing.T, s *Store, now time.Time) []string {
	t.Helper()
	ds, err := s.ActiveDecisions(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, d.Target.String())
	}
	return out
}

func TestRecordDecisionRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	tests := []event.Decision{
		ban("192.0.2.1/32", t0, time.Hour),
		ban("2001:db8::1/128", t0.Add(time.Nanosecond), 90*time.Second),
		ban("198.51.100.0/24", t0, 0), // until revoked
		{Target: pfx("203.0.113.9/32"), Action: event.Tarpit, Start: t0, Duration: time.Minute},
		{Target: pfx("203.0.113.10/32"), Action: event.Trap, Start: t0.In(time.FixedZone("X", 3600)), Duration: time.Minute, Origin: "peer-a"},
		{Target: pfx("203.0.113.11/32"), Action: event.Allow, Start: t0, Duration: -time.Second, Reason: "admin"},
	}
	for _, d := range tests {
		t.Run(d.Target.String(), func(t *testing.T) {
			id, err := s.RecordDecision(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			hs, err := s.History(ctx, HistoryFilter{Target: d.Target})
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) != 1 || hs[0].ID != id || hs[0].Revocation {
				t.Fatalf("History = %+v, want one entry %d", hs, id)
			}
			want := d
			if want.Duration < 0 {
				want.Duration = 0
			}
			if got := hs[0].Decision; !equalDecision(got, want) {
				t.Errorf("history decision\n got %+v\nwant %+v", got, want)
			}
			if hs[0].Decision.Start.Location() != time.UTC {
				t.Errorf("Start not in UTC: %v", hs[0].Decision.Start)
			}
			ds, err := s.ActiveDecisions(ctx, d.Start)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, a := range ds {
				if a.Target == d.Target {
					found = true
					if !equalDecision(a, want) {
						t.Errorf("active decision\n got %+v\nwant %+v", a, want)
					}
				}
			}
			if !found {
				t.Errorf("%s not active at its start", d.Target)
			}
		})
	}
}

func TestRecordDecisionRejects(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	for name, d := range map[string]event.Decision{
		"invalid target": {Action: event.Ban, Start: t0},
		"no action":      {Target: pfx("192.0.2.1/32"), Start: t0},
		"bad action":     {Target: pfx("192.0.2.1/32"), Action: 200, Start: t0},
		"no start":       {Target: pfx("192.0.2.1/32"), Action: event.Ban},
	} {
		if _, err := s.RecordDecision(ctx, d); err == nil {
			t.Errorf("%s: RecordDecision succeeded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// A bad decision in a batch writes nothing.
	ds := []event.Decision{ban("192.0.2.1/32", t0, time.Hour), {Target: pfx("192.0.2.2/32"), Start: t0}}
	if _, err := s.RecordDecisions(ctx, ds); err == nil {
		t.Fatal("RecordDecisions with a bad decision succeeded")
	}
	if hs, _ := s.History(ctx, HistoryFilter{}); len(hs) != 0 {
		t.Errorf("history after failed batch: %d entries", len(hs))
	}
}

func TestExpiryBoundaries(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if _, err := s.RecordDecisions(ctx, []event.Decision{
		ban("192.0.2.1/32", t0, time.Hour),
		ban("192.0.2.2/32", t0, 0),
		ban("192.0.2.3/32", t0, time.Nanosecond),
	}); err != nil {
		t.Fatal(err)
	}
	end := t0.Add(time.Hour)
	for _, tc := range []struct {
		at   time.Time
		want []string
	}{
		{t0.Add(-time.Nanosecond), nil}, // not started
		{t0, []string{"192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"}},
		{t0.Add(time.Nanosecond), []string{"192.0.2.1/32", "192.0.2.2/32"}},
		{end.Add(-time.Nanosecond), []string{"192.0.2.1/32", "192.0.2.2/32"}},
		{end, []string{"192.0.2.2/32"}}, // ends exactly now: over, like Decision.Active
		{t0.AddDate(100, 0, 0), []string{"192.0.2.2/32"}},
	} {
		got := activeTargets(t, s, tc.at)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("active at %v = %v, want %v", tc.at.Sub(t0), got, tc.want)
		}
	}

	// PruneExpired removes exactly what ended at or before now.
	for _, tc := range []struct {
		at   time.Time
		want int
	}{
		{end.Add(-time.Nanosecond), 1}, // the 1ns ban
		{end.Add(-time.Nanosecond), 0},
		{end, 1},
		{t0.AddDate(100, 0, 0), 0}, // permanent stays
	} {
		n, err := s.PruneExpired(ctx, tc.at)
		if err != nil || n != tc.want {
			t.Errorf("PruneExpired(%v) = %d, %v; want %d", tc.at.Sub(t0), n, err, tc.want)
		}
	}
	if got := activeTargets(t, s, t0); fmt.Sprint(got) != "[192.0.2.2/32]" {
		t.Errorf("after prune: %v", got)
	}
	// History keeps everything.
	if hs, _ := s.History(ctx, HistoryFilter{}); len(hs) != 3 {
		t.Errorf("history has %d entries, want 3", len(hs))
	}
}

// TestActiveMergedInBulk checks that decisions wait in the history until
// the active table is changed, or until mergeEvery of them wait; that
// waiting ones are read as active; and that they are not lost when the
// store is closed.
func TestActiveMergedInBulk(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	activeRows := func() int {
		t.Helper()
		var n int
		if err := s.w.QueryRow(`SELECT count(*) FROM active`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := s.RecordDecisions(ctx, manyDecisions(100, t0)); err != nil {
		t.Fatal(err)
	}
	if n := activeRows(); n != 0 {
		t.Errorf("a batch of 100 went to the active table at once: %d rows", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ds, err := s.ActiveDecisions(ctx, t0.Add(time.Minute)); err != nil || len(ds) != 100 {
		t.Fatalf("after reopening: %d active, %v; want 100", len(ds), err)
	}
	if n := activeRows(); n != 0 {
		t.Errorf("a read wrote the active table: %d rows", n)
	}
	if _, err := s.PruneExpired(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if n := activeRows(); n != 100 {
		t.Errorf("active table after a prune: %d rows, want 100", n)
	}
	// A batch that brings mergeEvery rows merges them itself. Its first
	// 100 targets are the first batch's.
	if _, err := s.RecordDecisions(ctx, manyDecisions(mergeEvery, t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if n := activeRows(); n != mergeEvery {
		t.Errorf("active table after %d waiting rows: %d rows", mergeEvery, n)
	}
}

// TestIDsAboveMerged checks that a decision recorded after the newest
// history rows were pruned gets an id above the merged ones, so that it
// still becomes active.
func TestIDsAboveMerged(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	ids, err := s.RecordDecisions(ctx, []event.Decision{ban("192.0.2.1/32", t0, time.Hour), ban("192.0.2.2/32", t0, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(3 * time.Hour)
	if n, err := s.PruneExpired(ctx, later); err != nil || n != 2 {
		t.Fatalf("PruneExpired = %d, %v", n, err)
	}
	if n, err := s.PruneHistory(ctx, later); err != nil || n != 2 {
		t.Fatalf("PruneHistory = %d, %v", n, err)
	}
	id, err := s.RecordDecision(ctx, ban("192.0.2.3/32", later, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if id <= ids[1] {
		t.Errorf("id %d after pruned ids %v", id, ids)
	}
	if got := activeTargets(t, s, later); fmt.Sprint(got) != "[192.0.2.3/32]" {
		t.Errorf("active = %v, want [192.0.2.3/32]", got)
	}
}

func TestLatestDecisionWins(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	first := ban("192.0.2.1/32", t0, 24*time.Hour)
	second := ban("192.0.2.1/32", t0.Add(time.Minute), time.Hour)
	second.Scenario = "recidive"
	id1, _ := s.RecordDecision(ctx, first)
	id2, err := s.RecordDecision(ctx, second)
	if err != nil || id2 <= id1 {
		t.Fatalf("ids %d, %d, %v", id1, id2, err)
	}
	ds, _ := s.ActiveDecisions(ctx, t0.Add(2*time.Minute))
	if len(ds) != 1 || !equalDecision(ds[0], second) {
		t.Fatalf("active = %+v, want the second decision", ds)
	}
	// The same with the first decision in the active table and the second
	// waiting in the history: the second, shorter one wins.
	third := ban("192.0.2.2/32", t0, 24*time.Hour)
	fourth := ban("192.0.2.2/32", t0.Add(time.Minute), time.Hour)
	if _, err := s.RecordDecision(ctx, third); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneExpired(ctx, t0); err != nil { // merges
		t.Fatal(err)
	}
	if _, err := s.RecordDecision(ctx, fourth); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.ActiveDecisionsOf(ctx, t0.Add(2*time.Minute), []netip.Prefix{third.Target}); len(ds) != 1 || !equalDecision(ds[0], fourth) {
		t.Errorf("active = %+v, want the fourth decision", ds)
	}
	if got := activeTargets(t, s, t0.Add(2*time.Hour)); len(got) != 0 {
		t.Errorf("active after the later decisions ended = %v", got)
	}
	// The first decision's history entry is no longer active but stays.
	if hs, _ := s.History(ctx, HistoryFilter{Target: first.Target}); len(hs) != 2 {
		t.Errorf("history = %d entries", len(hs))
	}
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	target := pfx("192.0.2.1/32")
	if _, err := s.RecordDecision(ctx, ban("192.0.2.1/32", t0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordDecision(ctx, ban("192.0.2.2/32", t0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(10 * time.Minute)
	if err := s.Revoke(ctx, target, at, "admin: my office"); err != nil {
		t.Fatal(err)
	}
	if got := activeTargets(t, s, at); fmt.Sprint(got) != "[192.0.2.2/32]" {
		t.Errorf("active after revoke = %v", got)
	}
	hs, err := s.History(ctx, HistoryFilter{Target: target})
	if err != nil || len(hs) != 2 {
		t.Fatalf("history = %+v, %v", hs, err)
	}
	rev, orig := hs[0], hs[1] // newest first
	if !rev.Revocation || !rev.Decision.Start.Equal(at) || rev.Decision.Reason != "admin: my office" ||
		rev.Decision.Action != event.Ban || rev.Decision.Jail != "sshd" || rev.Decision.Duration != 0 {
		t.Errorf("revocation entry = %+v", rev)
	}
	if orig.Revocation || !orig.RevokedAt.Equal(at) || orig.Decision.Duration != time.Hour {
		t.Errorf("original entry = %+v", orig)
	}

	// Nothing to revoke.
	if err := s.Revoke(ctx, target, at, "again"); !errors.Is(err, ErrNotActive) {
		t.Errorf("second Revoke = %v, want ErrNotActive", err)
	}
	if err := s.Revoke(ctx, pfx("203.0.113.0/24"), at, "never banned"); !errors.Is(err, ErrNotActive) {
		t.Errorf("Revoke of unknown = %v, want ErrNotActive", err)
	}
	// An expired entry: ErrNotActive, and the stale entry is gone.
	if err := s.Revoke(ctx, pfx("192.0.2.2/32"), t0.Add(time.Hour), "late"); !errors.Is(err, ErrNotActive) {
		t.Errorf("Revoke of expired = %v, want ErrNotActive", err)
	}
	if n, _ := s.PruneExpired(ctx, t0.AddDate(1, 0, 0)); n != 0 {
		t.Errorf("expired entry survived Revoke: pruned %d", n)
	}
	if hs, _ := s.History(ctx, HistoryFilter{Target: pfx("192.0.2.2/32")}); len(hs) != 1 || !hs[0].RevokedAt.IsZero() {
		t.Errorf("expired ban's history = %+v", hs)
	}
	if err := s.Revoke(ctx, netip.Prefix{}, at, ""); err == nil || errors.Is(err, ErrNotActive) {
		t.Errorf("Revoke(invalid) = %v", err)
	}
}

func TestHistoryFilter(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	var ds []event.Decision
	for i := range 10 {
		target := "192.0.2.1/32"
		if i%2 == 1 {
			target = "2001:db8::1/128"
		}
		ds = append(ds, ban(target, t0.Add(time.Duration(i)*time.Minute), time.Minute))
	}
	ids, err := s.RecordDecisions(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 10 {
		t.Fatalf("%d ids", len(ids))
	}
	starts := func(hs []HistoryEntry) []int {
		var out []int
		for _, h := range hs {
			out = append(out, int(h.Decision.Start.Sub(t0)/time.Minute))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    HistoryFilter
		want string
	}{
		{"all", HistoryFilter{}, "[9 8 7 6 5 4 3 2 1 0]"},
		{"limit", HistoryFilter{Limit: 3}, "[9 8 7]"},
		{"since", HistoryFilter{Since: t0.Add(7 * time.Minute)}, "[9 8 7]"},
		{"v4", HistoryFilter{Target: pfx("192.0.2.1/32")}, "[8 6 4 2 0]"},
		{"v6 since limit", HistoryFilter{Target: pfx("2001:db8::1/128"), Since: t0.Add(2 * time.Minute), Limit: 2}, "[9 7]"},
		{"mapped", HistoryFilter{Target: pfx("::ffff:192.0.2.1/128"), Limit: 1}, "[8]"},
		{"none", HistoryFilter{Target: pfx("192.0.2.99/32")}, "[]"},
		{"after", HistoryFilter{After: ids[6]}, "[9 8 7]"},
		{"after limit", HistoryFilter{After: ids[2], Limit: 2}, "[9 8]"},
	} {
		hs, err := s.History(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := fmt.Sprint(starts(hs)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestHistoryOfTarget reads one target's history: the exact prefix, in
// the stored form, however it is written.
func TestHistoryOfTarget(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	day := 24 * time.Hour
	ds := []event.Decision{
		ban("192.0.2.1/32", t0, time.Hour),
		ban("192.0.2.1/32", t0.Add(day), time.Hour),
		ban("192.0.2.1/32", t0.Add(2*day), time.Hour),
		ban("2001:db8::1/128", t0, time.Hour),
		{Target: pfx("192.0.2.1/32"), Action: event.Tarpit, Start: t0.Add(3 * day), Duration: time.Hour},
		ban("192.0.2.0/24", t0, time.Hour),
	}
	if _, err := s.RecordDecisions(ctx, ds); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target string
		since  time.Time
		want   int
	}{
		{"192.0.2.1/32", time.Time{}, 4},
		{"192.0.2.1/32", t0, 4},
		{"192.0.2.1/32", t0.Add(time.Nanosecond), 3},
		{"192.0.2.1/32", t0.Add(2 * day), 2},
		{"192.0.2.1/32", t0.Add(3 * day), 1},
		{"192.0.2.1/32", t0.Add(4 * day), 0},
		{"::ffff:192.0.2.1/128", t0, 4}, // mapped is the same address
		{"192.0.2.0/24", t0, 1},         // exact prefix only
		{"192.0.2.7/24", t0, 1},         // masked before lookup
		{"2001:db8::1/128", t0, 1},
		{"2001:db8::2/128", t0, 0},
	} {
		hs, err := s.History(ctx, HistoryFilter{Target: pfx(tc.target), Since: tc.since})
		if err != nil || len(hs) != tc.want {
			t.Errorf("History(%s, since %v) = %d entries, %v; want %d", tc.target, tc.since.Sub(t0), len(hs), err, tc.want)
		}
	}
}

func TestAddressForms(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	for _, tc := range []struct{ in, stored string }{
		{"192.0.2.1/32", "192.0.2.1/32"},
		{"::ffff:192.0.2.2/128", "192.0.2.2/32"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"2001:db8::1/128", "2001:db8::1/128"},
		{"2001:db8:1:2:3::9/64", "2001:db8:1:2::/64"},
		{"::1/128", "::1/128"},
	} {
		if _, err := s.RecordDecision(ctx, ban(tc.in, t0, time.Hour)); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		var n int
		if err := s.w.QueryRow(`SELECT count(*) FROM history WHERE target = ?`, tc.stored).Scan(&n); err != nil || n != 1 {
			t.Errorf("%s: stored as %s? count %d, %v", tc.in, tc.stored, n, err)
		}
		hs, err := s.History(ctx, HistoryFilter{Target: pfx(tc.in), Limit: 1})
		if err != nil || len(hs) != 1 || hs[0].Decision.Target.String() != tc.stored {
			t.Errorf("%s: history %+v, %v", tc.in, hs, err)
		}
	}
	// IPv4 and its mapped form are one target; ::1 and 127.0.0.1 are not.
	ds, _ := s.ActiveDecisions(ctx, t0)
	if len(ds) != 7 {
		t.Errorf("%d active targets, want 7", len(ds))
	}
	if _, err := s.RecordDecision(ctx, ban("::ffff:192.0.2.1/128", t0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.ActiveDecisions(ctx, t0); len(ds) != 7 {
		t.Errorf("mapped duplicate made %d active targets, want 7", len(ds))
	}
}

// TestPruneHistoryKeepsActive prunes in one chunk and in chunks of one.
func TestPruneHistoryKeepsActive(t *testing.T) {
	for _, chunk := range []int{pruneChunk, 1} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			defer func(c int) { pruneChunk = c }(pruneChunk)
			pruneChunk = chunk
			ctx := context.Background()
			s, _ := openTemp(t)
			if _, err := s.RecordDecisions(ctx, []event.Decision{
				ban("192.0.2.1/32", t0, time.Hour),
				ban("192.0.2.1/32", t0.Add(2*time.Hour), 0), // active, replaces the first
				ban("192.0.2.2/32", t0, time.Hour),
				ban("192.0.2.3/32", t0.Add(48*time.Hour), time.Hour),
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.PruneExpired(ctx, t0.Add(3*time.Hour)); err != nil {
				t.Fatal(err)
			}
			n, err := s.PruneHistory(ctx, t0.Add(24*time.Hour))
			if err != nil || n != 2 {
				t.Fatalf("PruneHistory = %d, %v; want 2", n, err)
			}
			hs, _ := s.History(ctx, HistoryFilter{})
			if len(hs) != 2 {
				t.Errorf("history after prune: %+v", hs)
			}
			if got := activeTargets(t, s, t0.Add(48*time.Hour)); fmt.Sprint(got) != "[192.0.2.1/32 192.0.2.3/32]" {
				t.Errorf("active after history prune: %v", got)
			}
		})
	}
}

func TestRestartPersistence(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	if _, err := s.RecordDecisions(ctx, []event.Decision{
		ban("192.0.2.1/32", t0, time.Hour),
		ban("192.0.2.1/32", t0.Add(2*time.Hour), 4*time.Hour),
		ban("2001:db8::/64", t0, 0),
		ban("192.0.2.9/32", t0, time.Minute),
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, pfx("192.0.2.9/32"), t0.Add(time.Second), "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddKnownGood(ctx, netip.MustParseAddr("198.51.100.7"), "alice", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePositions(ctx, map[string]string{"/var/log/auth.log": "dev=1,ino=2,off=3", "journald": "s=abc"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := t0.Add(3 * time.Hour)
	if got := activeTargets(t, s, now); fmt.Sprint(got) != "[192.0.2.1/32 2001:db8::/64]" {
		t.Errorf("active after restart = %v", got)
	}
	if hs, _ := s.History(ctx, HistoryFilter{Target: pfx("192.0.2.1/32")}); len(hs) != 2 {
		t.Errorf("history after restart = %+v, want 2 entries", hs)
	}
	if hs, _ := s.History(ctx, HistoryFilter{Target: pfx("192.0.2.9/32")}); len(hs) != 2 || !hs[0].Revocation || hs[1].RevokedAt.IsZero() {
		t.Errorf("revoked ban's history after restart = %+v", hs)
	}
	if ks, _ := s.KnownGood(ctx, t0); len(ks) != 1 || ks[0].User != "alice" {
		t.Errorf("KnownGood after restart = %+v", ks)
	}
	if p, ok, _ := s.LoadPosition(ctx, "journald"); !ok || p != "s=abc" {
		t.Errorf("position after restart = %q, %v", p, ok)
	}
	// Writes still work after reopening.
	if _, err := s.RecordDecision(ctx, ban("192.0.2.1/32", now, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if hs, _ := s.History(ctx, HistoryFilter{Target: pfx("192.0.2.1/32")}); len(hs) != 3 {
		t.Errorf("history = %d entries, want 3", len(hs))
	}
}

func TestExtremeTimes(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	far := ban("192.0.2.1/32", t0, time.Duration(math.MaxInt64)) // ends past year 2262
	if _, err := s.RecordDecision(ctx, far); err != nil {
		t.Fatal(err)
	}
	if got := activeTargets(t, s, t0.AddDate(200, 0, 0)); len(got) != 1 {
		t.Errorf("far-future ban not active: %v", got)
	}
}

func TestRevokeAll(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	ds := []event.Decision{
		ban("192.0.2.1/32", t0, time.Hour),
		ban("198.51.100.0/24", t0, 0),                        // until revoked
		ban("192.0.2.2/32", t0.Add(-2*time.Hour), time.Hour), // over before at
		{Target: pfx("203.0.113.9/32"), Action: event.Tarpit, Start: t0, Duration: time.Hour},
	}
	if _, err := s.RecordDecisions(ctx, ds); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(10 * time.Minute)
	n, err := s.RevokeAll(ctx, event.Ban, at, "ended by run --flush")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("RevokeAll = %d, want 2", n)
	}
	if got := activeTargets(t, s, at); fmt.Sprint(got) != "[203.0.113.9/32]" {
		t.Errorf("active after RevokeAll = %v, want only the tarpit", got)
	}
	for _, target := range []string{"192.0.2.1/32", "198.51.100.0/24"} {
		hs, err := s.History(ctx, HistoryFilter{Target: pfx(target)})
		if err != nil || len(hs) != 2 {
			t.Fatalf("%s: history = %+v, %v", target, hs, err)
		}
		rev, orig := hs[0], hs[1]
		if !rev.Revocation || !rev.Decision.Start.Equal(at) || rev.Decision.Reason != "ended by run --flush" || rev.Decision.Jail != "sshd" {
			t.Errorf("%s: revocation entry = %+v", target, rev)
		}
		if orig.Revocation || !orig.RevokedAt.Equal(at) || orig.Decision.Reason != "5 failures in 10m" {
			t.Errorf("%s: original entry = %+v", target, orig)
		}
	}
	// The ban that had run its course keeps its history as it was.
	if hs, _ := s.History(ctx, HistoryFilter{Target: pfx("192.0.2.2/32")}); len(hs) != 1 || !hs[0].RevokedAt.IsZero() {
		t.Errorf("expired ban's history = %+v", hs)
	}
	if n, err := s.RevokeAll(ctx, event.Ban, at, "again"); n != 0 || err != nil {
		t.Errorf("second RevokeAll = %d, %v; want 0, nil", n, err)
	}
}

// TestPerPortDecisions: an address's whole-host decision and its per-port
// ones (of jails with other ports) are active side by side, keep their
// ports, replace only the decision with the same ports, and are revoked
// together.
func TestPerPortDecisions(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	ports := func(p string) []event.PortRange {
		ps, err := event.ParsePorts(p)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	sshd := ban("192.0.2.1/32", t0, time.Hour)
	sshd.Ports = ports("22/tcp")
	postfix := ban("192.0.2.1/32", t0, 2*time.Hour)
	postfix.Jail, postfix.Ports = "postfix", ports("587,25,465")
	whole := ban("192.0.2.1/32", t0, 3*time.Hour)
	whole.Jail = "recidive"
	wide := ban("198.51.100.0/24", t0, time.Hour)
	wide.Ports = ports("22") // a prefix is whole-host: ports are not kept
	if _, err := s.RecordDecisions(ctx, []event.Decision{sshd, postfix, whole, wide}); err != nil {
		t.Fatal(err)
	}
	// A later sshd ban replaces the sshd one only.
	again := sshd
	again.Start = t0.Add(time.Minute)
	if _, err := s.RecordDecision(ctx, again); err != nil {
		t.Fatal(err)
	}
	ds, err := s.ActiveDecisions(ctx, t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Target.String()+" "+d.Jail+" ["+event.FormatPorts(d.Ports)+"] "+d.Start.Sub(t0).String())
	}
	want := "[192.0.2.1/32 recidive [] 0s 192.0.2.1/32 sshd [22/tcp] 1m0s 192.0.2.1/32 postfix [25/tcp,465/tcp,587/tcp] 0s 198.51.100.0/24 sshd [] 0s]"
	if fmt.Sprint(got) != want {
		t.Errorf("active =\n%v\nwant\n%s", got, want)
	}
	if err := s.Revoke(ctx, pfx("192.0.2.1/32"), t0.Add(3*time.Minute), "by hand"); err != nil {
		t.Fatal(err)
	}
	if got := activeTargets(t, s, t0.Add(3*time.Minute)); fmt.Sprint(got) != "[198.51.100.0/24]" {
		t.Errorf("active after revoke = %v", got)
	}
	hs, err := s.History(ctx, HistoryFilter{Target: pfx("192.0.2.1/32")})
	if err != nil {
		t.Fatal(err)
	}
	revoked := map[string]bool{}
	for _, h := range hs {
		if h.Revocation {
			revoked[event.FormatPorts(h.Decision.Ports)] = true
		}
	}
	if len(revoked) != 3 || !revoked["22/tcp"] || !revoked[""] || !revoked["25/tcp,465/tcp,587/tcp"] {
		t.Errorf("revocations by ports = %v, want the three in force", revoked)
	}
}

// TestUpgradeKeepsActive checks that a database from before the active
// table was merged in bulk keeps exactly its active decisions: a decision
// its history holds but its active table had dropped (revoked) does not
// come back, and new decisions still become active.
func TestUpgradeKeepsActive(t *testing.T) {
	ctx := context.Background()
	db, path := openAtVersion(t, 10) // the schema before 0011_active_lazy.sql
	end := t0.Add(time.Hour).UnixNano()
	for _, q := range []string{
		`INSERT INTO history (id, kind, target, action, start_ns, end_ns, revoked_ns) VALUES
			(1, 'decision', '192.0.2.1/32', 'ban', ` + fmt.Sprint(t0.UnixNano()) + `, ` + fmt.Sprint(end) + `, NULL),
			(2, 'decision', '192.0.2.2/32', 'ban', ` + fmt.Sprint(t0.UnixNano()) + `, ` + fmt.Sprint(end) + `, ` + fmt.Sprint(t0.UnixNano()+1) + `),
			(3, 'revoke', '192.0.2.2/32', 'ban', ` + fmt.Sprint(t0.UnixNano()+1) + `, NULL, NULL)`,
		`INSERT INTO active (target, ports, history_id, start_ns, end_ns) VALUES
			('192.0.2.1/32', '', 1, ` + fmt.Sprint(t0.UnixNano()) + `, ` + fmt.Sprint(end) + `)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	s := upgraded(t, db, path)
	at := t0.Add(time.Minute)
	if got := activeTargets(t, s, at); fmt.Sprint(got) != "[192.0.2.1/32]" {
		t.Errorf("active after upgrade = %v, want [192.0.2.1/32]", got)
	}
	id, err := s.RecordDecision(ctx, ban("192.0.2.3/32", at, time.Hour))
	if err != nil || id != 4 {
		t.Fatalf("RecordDecision = %d, %v; want id 4", id, err)
	}
	if got := activeTargets(t, s, at); fmt.Sprint(got) != "[192.0.2.1/32 192.0.2.3/32]" {
		t.Errorf("active = %v", got)
	}
}

// TestActiveMatchesModel records random decisions on a few targets, some
// of them per port, in batches, the active table merged at random points,
// and checks ActiveDecisions and ActiveDecisionsOf after each batch
// against a model: the latest decision per target and ports, if in force,
// ordered by target text and ports.
func TestActiveMatchesModel(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	rng := rand.New(rand.NewPCG(7, 11))
	targets := []string{"192.0.2.1/32", "192.0.2.10/32", "192.0.2.2/32", "198.51.100.0/24", "2001:db8::1/128", "10.0.0.9/32"}
	latest := map[event.DecisionKey]event.Decision{}
	at := t0
	for batch := range 60 {
		var ds []event.Decision
		for range 1 + rng.IntN(6) {
			d := ban(targets[rng.IntN(len(targets))], at.Add(time.Duration(rng.IntN(600))*time.Second), time.Duration(1+rng.IntN(3))*time.Hour)
			if rng.IntN(3) == 0 && d.Target.IsSingleIP() {
				d.Ports = []event.PortRange{{Proto: event.TCP, First: 22, Last: 22}}
			}
			if rng.IntN(5) == 0 {
				d.Duration = time.Minute // often over by now
			}
			d.Reason = fmt.Sprint("batch ", batch)
			ds = append(ds, d)
			latest[d.Key()] = d
		}
		if _, err := s.RecordDecisions(ctx, ds); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(4) == 0 { // merges, ending nothing
			if _, err := s.PruneExpired(ctx, t0.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		at = at.Add(5 * time.Minute)
		now := at.Add(10 * time.Minute)
		var want []string
		for _, d := range latest {
			if d.Active(now) {
				want = append(want, d.Target.String()+" "+d.Key().Ports+" "+d.Reason)
			}
		}
		slices.Sort(want)
		show := func(ds []event.Decision) []string {
			var out []string
			for _, d := range ds {
				out = append(out, d.Target.String()+" "+d.Key().Ports+" "+d.Reason)
			}
			return out
		}
		got, err := s.ActiveDecisions(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(show(got), want) {
			t.Fatalf("batch %d: ActiveDecisions\n got %q\nwant %q", batch, show(got), want)
		}
		var some []netip.Prefix
		for _, x := range targets[:3] {
			some = append(some, pfx(x))
		}
		of, err := s.ActiveDecisionsOf(ctx, now, some)
		if err != nil {
			t.Fatal(err)
		}
		var wantOf []string
		for _, w := range want {
			for _, x := range targets[:3] {
				if strings.HasPrefix(w, x+" ") {
					wantOf = append(wantOf, w)
				}
			}
		}
		if !slices.Equal(show(of), wantOf) {
			t.Fatalf("batch %d: ActiveDecisionsOf\n got %q\nwant %q", batch, show(of), wantOf)
		}
	}
}

// TestEachBan reads the bans that count for escalation, oldest first:
// not revoked ones, nor other actions; traps count.
func TestEachBan(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	trap := ban("192.0.2.4/32", t0.Add(3*time.Minute), time.Hour)
	trap.Action = event.Trap
	tarpit := ban("192.0.2.5/32", t0.Add(4*time.Minute), time.Hour)
	tarpit.Action = event.Tarpit
	if _, err := s.RecordDecisions(ctx, []event.Decision{
		ban("192.0.2.1/32", t0.Add(2*time.Minute), time.Hour),
		ban("192.0.2.2/32", t0, time.Hour),
		ban("192.0.2.3/32", t0.Add(time.Minute), time.Hour),
		trap, tarpit,
		ban("192.0.2.6/32", t0.Add(-time.Hour), time.Hour), // before since
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, pfx("192.0.2.3/32"), t0.Add(5*time.Minute), "mistake"); err != nil {
		t.Fatal(err)
	}
	var got []string
	n, err := s.EachBan(ctx, t0, func(p netip.Prefix, at time.Time) {
		got = append(got, fmt.Sprintf("%s@%v", p, at.Sub(t0)))
	})
	if err != nil || n != len(got) {
		t.Fatalf("EachBan = %d, %v (called %d times)", n, err, len(got))
	}
	if want := "[192.0.2.2/32@0s 192.0.2.1/32@2m0s 192.0.2.4/32@3m0s]"; fmt.Sprint(got) != want {
		t.Errorf("EachBan = %v, want %s", got, want)
	}
}
