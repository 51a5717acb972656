package store

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

func TestDecisionsRecordTheirPlace(t *testing.T) {
	places := map[netip.Addr]Place{
		netip.MustParseAddr("198.51.100.7"): {Country: "NL", ASN: 64500, Org: "Example Hosting"},
		netip.MustParseAddr("203.0.113.0"):  {Country: "DE", ASN: 64501, Org: "Other Net"},
	}
	s, _ := openTemp(t, WithLocator(func(a netip.Addr) Place { return places[a] }))
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if _, err := s.RecordDecisions(ctx, []event.Decision{
		ban("198.51.100.7/32", t0, time.Hour),
		ban("203.0.113.0/24", t0.Add(time.Minute), time.Hour),
		ban("192.0.2.9/32", t0.Add(2*time.Minute), time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, pfx("198.51.100.7/32"), t0.Add(3*time.Minute), "test"); err != nil {
		t.Fatal(err)
	}
	hist, err := s.History(ctx, HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Place{}
	for _, h := range hist {
		k := h.Decision.Target.String()
		if h.Revocation {
			k = "revoke " + k
		}
		got[k] = h.Place
	}
	want := map[string]Place{
		"198.51.100.7/32":        places[netip.MustParseAddr("198.51.100.7")],
		"revoke 198.51.100.7/32": places[netip.MustParseAddr("198.51.100.7")],
		"203.0.113.0/24":         places[netip.MustParseAddr("203.0.113.0")],
		"192.0.2.9/32":           {},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("places = %+v\nwant %+v", got, want)
	}
}

func TestHourlyAddAndFilter(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	h0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	rows := []HourlyRow{
		{Hour: h0.Add(5 * time.Minute), Jail: "sshd", Dim: DimCountry, Key: "NL", Failures: 3},
		{Hour: h0.Add(50 * time.Minute), Jail: "sshd", Dim: DimCountry, Key: "NL", Failures: 2, Bans: 1},
		{Hour: h0, Jail: "sshd", Dim: DimASN, Key: "64500", Label: "Example", Failures: 5},
		{Hour: h0, Jail: "sshd", Dim: DimASN, Key: "64500", Failures: 1}, // no label: the old one stays
		{Hour: h0.Add(time.Hour), Jail: "postfix", Dim: DimCountry, Key: "NL", Failures: 7},
	}
	if err := s.AddHourly(ctx, rows); err != nil {
		t.Fatal(err)
	}
	all, err := s.Hourly(ctx, HourlyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []HourlyRow{
		{Hour: h0, Jail: "sshd", Dim: DimASN, Key: "64500", Label: "Example", Failures: 6},
		{Hour: h0, Jail: "sshd", Dim: DimCountry, Key: "NL", Failures: 5, Bans: 1},
		{Hour: h0.Add(time.Hour), Jail: "postfix", Dim: DimCountry, Key: "NL", Failures: 7},
	}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("hourly = %+v\nwant %+v", all, want)
	}
	for _, c := range []struct {
		f    HourlyFilter
		want int
	}{
		{HourlyFilter{Jail: "postfix"}, 1},
		{HourlyFilter{Dim: DimCountry}, 2},
		{HourlyFilter{Since: h0.Add(time.Hour)}, 1},
		{HourlyFilter{Until: h0.Add(time.Hour)}, 2},
		{HourlyFilter{Since: h0, Until: h0.Add(2 * time.Hour), Jail: "sshd", Dim: DimASN}, 1},
	} {
		got, err := s.Hourly(ctx, c.f)
		if err != nil || len(got) != c.want {
			t.Errorf("Hourly(%+v) = %d rows, %v; want %d", c.f, len(got), err, c.want)
		}
	}
	// Rows are written many to a statement: a key repeated within one and
	// across several is summed all the same.
	var many []HourlyRow
	for i := range 3*hourlyChunk + 5 {
		many = append(many, HourlyRow{Hour: h0, Jail: "dovecot", Dim: DimUser, Key: fmt.Sprintf("user%d", i%10), Failures: int64(1 + i%3)})
	}
	if err := s.AddHourly(ctx, many); err != nil {
		t.Fatal(err)
	}
	got, err := s.Hourly(ctx, HourlyFilter{Jail: "dovecot"})
	if err != nil {
		t.Fatal(err)
	}
	want = nil
	sums := map[string]int64{}
	for _, r := range many {
		sums[r.Key] += r.Failures
	}
	for k := range 10 {
		key := fmt.Sprintf("user%d", k)
		want = append(want, HourlyRow{Hour: h0, Jail: "dovecot", Dim: DimUser, Key: key, Failures: sums[key]})
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("repeated keys: %+v\nwant %+v", got, want)
	}
}

func TestCompactHourly(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var rows []HourlyRow
	// Day 1 and day 5: three hours each with one country; day 0 is past retention.
	for _, d := range []int{0, 1, 5} {
		for h := range 3 {
			rows = append(rows, HourlyRow{Hour: day.AddDate(0, 0, d).Add(time.Duration(h+1) * time.Hour), Jail: "sshd", Dim: DimCountry, Key: "NL", Failures: 1, Bans: int64(h)})
		}
	}
	// Day 9, one hour: six users, of which the cap keeps 3 and folds the rest.
	h9 := day.AddDate(0, 0, 9).Add(4 * time.Hour)
	for i, u := range []string{"root", "admin", "oracle", "test", "guest", "ubuntu"} {
		rows = append(rows, HourlyRow{Hour: h9, Jail: "sshd", Dim: DimUser, Key: u, Failures: int64(10 - i)})
	}
	rows = append(rows, HourlyRow{Hour: h9, Jail: "sshd", Dim: DimTotal, Failures: 45})
	if err := s.AddHourly(ctx, rows); err != nil {
		t.Fatal(err)
	}
	c, err := s.CompactHourly(ctx, day.AddDate(0, 0, 1), day.AddDate(0, 0, 8), 4)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Hourly(ctx, HourlyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []HourlyRow{
		{Hour: day.AddDate(0, 0, 1), Jail: "sshd", Dim: DimCountry, Key: "NL", Failures: 3, Bans: 3},
		{Hour: day.AddDate(0, 0, 5), Jail: "sshd", Dim: DimCountry, Key: "NL", Failures: 3, Bans: 3},
		{Hour: h9, Jail: "sshd", Dim: DimTotal, Failures: 45},
		{Hour: h9, Jail: "sshd", Dim: DimUser, Key: OtherKey, Failures: 7 + 6 + 5},
		{Hour: h9, Jail: "sshd", Dim: DimUser, Key: "admin", Failures: 9},
		{Hour: h9, Jail: "sshd", Dim: DimUser, Key: "oracle", Failures: 8},
		{Hour: h9, Jail: "sshd", Dim: DimUser, Key: "root", Failures: 10},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after compaction:\n%+v\nwant\n%+v", got, want)
	}
	if c.Deleted != 3 || c.Folded != 6+3 || c.Rows != int64(len(want)) {
		t.Fatalf("compaction = %+v", c)
	}
	// Compacting again changes nothing: the fold is stable.
	if _, err := s.CompactHourly(ctx, day.AddDate(0, 0, 1), day.AddDate(0, 0, 8), 4); err != nil {
		t.Fatal(err)
	}
	again, _ := s.Hourly(ctx, HourlyFilter{})
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("second compaction changed the rows:\n%+v", again)
	}
	// Totals are never capped: the sum over users stays the sum.
	var sum int64
	for _, r := range again {
		if r.Dim == DimUser {
			sum += r.Failures
		}
	}
	if sum != 10+9+8+7+6+5 {
		t.Fatalf("user failures sum to %d after folding", sum)
	}
}

func TestTablesAndCaptures(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	tables, err := s.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"history", "hourly", "quarantine"} {
		if !tables[n] {
			t.Errorf("table %s missing from %v", n, tables)
		}
	}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i, rcpt := range [][]string{{"a@example.org"}, {"a@example.org", "b@example.org", "c@example.org"}} {
		if _, err := s.Quarantine(ctx, Quarantined{QueueID: "Q" + string(rune('A'+i)), Received: t0.Add(time.Duration(i) * time.Hour),
			Client: netip.MustParseAddr("198.51.100.7"), Account: "info", MailFrom: "x@example.net", RcptTo: rcpt, Size: 1234,
			Raw: []byte("Subject: hi\r\n\r\n<html>never shown</html>")}); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := s.Captures(ctx, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Rcpts != 1 || cs[0].Client != netip.MustParseAddr("198.51.100.7") || cs[0].Account != "info" {
		t.Fatalf("captures in the first hour = %+v", cs)
	}
	if cs, _ := s.Captures(ctx, time.Time{}, time.Time{}); len(cs) != 2 || cs[1].Rcpts != 3 {
		t.Fatalf("all captures = %+v", cs)
	}
	heads, err := s.QuarantineHeads(ctx, []int64{cs[0].ID, 999}, 11)
	if err != nil || string(heads[cs[0].ID]) != "Subject: hi" {
		t.Fatalf("head = %q, %v", heads[cs[0].ID], err)
	}
	if head, ok := heads[999]; ok {
		t.Fatalf("head of a message that does not exist: %q", head)
	}
}
