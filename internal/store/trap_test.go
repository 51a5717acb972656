package store

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestTrapAccounts(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if err := s.SaveTrapAccount(ctx, TrapAccount{User: "admin", FirstSeen: t0, LastSeen: t0, Addresses: 3}); err != nil {
		t.Fatal(err)
	}
	// Seen again later, by fewer addresses: last seen moves, addresses keep their maximum.
	if err := s.SaveTrapAccount(ctx, TrapAccount{User: "admin", FirstSeen: t0.Add(time.Hour), LastSeen: t0.Add(time.Hour), Addresses: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTrapAccount(ctx, TrapAccount{User: "info@example.org", FirstSeen: t0, LastSeen: t0.Add(-48 * time.Hour), Addresses: 5}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTrapAccount(ctx, TrapAccount{}); err == nil {
		t.Error("an account without a user was saved")
	}
	if err := s.TrapLogin(ctx, "admin", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := s.TrapAccounts(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := []TrapAccount{
		{User: "admin", FirstSeen: t0, LastSeen: t0.Add(2 * time.Hour), Addresses: 3, Logins: 1, LastLogin: t0.Add(2 * time.Hour)},
		{User: "info@example.org", FirstSeen: t0, LastSeen: t0.Add(-48 * time.Hour), Addresses: 5},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("accounts\n got %+v\nwant %+v", got, want)
	}
	if n, err := s.PruneTrapAccounts(ctx, t0.Add(-time.Hour)); err != nil || n != 1 {
		t.Fatalf("prune = %d, %v; want 1", n, err)
	}
	if err := s.DeleteTrapAccounts(ctx, []string{"admin", "absent"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.TrapAccounts(ctx, time.Time{}); len(got) != 0 {
		t.Fatalf("left after prune and delete: %+v", got)
	}
}

// TestRealUsersFromKnownGood: a database of an earlier version keeps the
// user names of its known-good clients as real names after the upgrade.
func TestRealUsersFromKnownGood(t *testing.T) {
	ctx := context.Background()
	db, path := openAtVersion(t, 2)
	if _, err := db.Exec(`INSERT INTO known_good (addr, user, first_seen_ns, last_seen_ns) VALUES
		('192.0.2.1', ' Alice@Example.org ', 1, 5), ('192.0.2.2', 'alice@example.org', 1, 9), ('192.0.2.3', '', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	s := upgraded(t, db, path)
	if err := s.AddRealUsers(ctx, []string{"bob", ""}, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := s.RealUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alice@example.org", "bob"}; !slices.Equal(got, want) {
		t.Fatalf("real users %q, want %q", got, want)
	}
}

func TestQuarantine(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	m := Quarantined{
		QueueID: "4XyZ12AbCd", Received: t0, Client: netip.MustParseAddr("::ffff:203.0.113.9"), Port: 587,
		Helo: "spam.example", Account: "admin", TLS: true, MailFrom: "a@spam.example",
		RcptTo: []string{"x@victim.example", "y@victim.example"}, Size: 12, Raw: []byte("Subject: x\r\n\r\nhi\r\n"),
	}
	id, err := s.Quarantine(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	m2 := m
	m2.Received, m2.QueueID, m2.Raw, m2.RcptTo, m2.Truncated = t0.Add(time.Hour), "5AbC", nil, nil, true
	if _, err := s.Quarantine(ctx, m2); err != nil {
		t.Fatal(err)
	}
	list, err := s.QuarantineList(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].QueueID != "5AbC" || list[1].ID != id || list[1].Raw != nil || !list[0].Truncated {
		t.Fatalf("list %+v", list)
	}
	got, err := s.QuarantineGet(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	m.ID, m.Client = id, netip.MustParseAddr("203.0.113.9")
	if !bytes.Equal(got.Raw, m.Raw) || got.Client != m.Client || !slices.Equal(got.RcptTo, m.RcptTo) ||
		got.Account != "admin" || !got.TLS || got.Port != 587 || !got.Received.Equal(t0) || got.Helo != m.Helo {
		t.Fatalf("get\n got %+v\nwant %+v", got, m)
	}
	if _, err := s.QuarantineGet(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing message: %v", err)
	}
	if n, b, err := s.QuarantineUsage(ctx); err != nil || n != 2 || b != int64(len(m.Raw)) {
		t.Fatalf("usage %d, %d, %v", n, b, err)
	}
	if n, err := s.PruneQuarantine(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("prune %d, %v", n, err)
	}
	if _, err := s.Quarantine(ctx, Quarantined{}); err == nil {
		t.Fatal("a message without a client was stored")
	}
}
