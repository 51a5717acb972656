package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestReportQueue(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	enqueue := func(rep, target string, at time.Time, state string) int64 {
		id, err := s.EnqueueReport(ctx, Report{Reporter: rep, Kind: "attack", Target: target, State: state, Subject: []byte(`{"addr":"` + target + `"}`),
			Created: at, Next: at}, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := enqueue("abuseipdb", "192.0.2.1", t0, ReportPending)
	if a == 0 {
		t.Fatal("first report not queued")
	}
	if dup := enqueue("abuseipdb", "192.0.2.1", t0.Add(time.Hour), ReportPending); dup != 0 {
		t.Fatal("the same target queued twice within the period")
	}
	other := enqueue("webhook", "192.0.2.1", t0.Add(time.Hour), ReportReview)
	later := enqueue("abuseipdb", "192.0.2.1", t0.Add(25*time.Hour), ReportPending)
	if other == 0 || later == 0 {
		t.Fatal("another reporter, or the period over: should be queued")
	}
	due, err := s.DueReports(ctx, t0.Add(time.Minute), 10)
	if err != nil || len(due) != 1 || due[0].ID != a || string(due[0].Subject) != `{"addr":"192.0.2.1"}` {
		t.Fatalf("due = %+v, %v", due, err)
	}
	if next, ok, _ := s.NextReportDue(ctx); !ok || !next.Equal(t0) {
		t.Fatalf("next due %v %v", next, ok)
	}
	r := due[0]
	r.State, r.Destination, r.Sent, r.Attempts, r.Receipt = ReportSent, "api.abuseipdb.com", t0.Add(time.Minute), 1, "ok"
	if err := s.UpdateReport(ctx, r); err != nil {
		t.Fatal(err)
	}
	if n, first, err := s.SentReports(ctx, "abuseipdb", "api.abuseipdb.com", t0); err != nil || n != 1 || !first.Equal(t0.Add(time.Minute)) {
		t.Fatalf("sent = %d, %v, %v", n, first, err)
	}
	// Review: approve one by ID; rejecting all finds none left.
	if ids, err := s.ReviewReports(ctx, []int64{other, a}, true, t0.Add(2*time.Hour)); err != nil || !slices.Equal(ids, []int64{other}) {
		t.Fatalf("approved %v, %v", ids, err)
	}
	if ids, err := s.ReviewReports(ctx, nil, false, t0); err != nil || len(ids) != 0 {
		t.Fatalf("rejected %v, %v", ids, err)
	}
	// A crash while sending: the report is pending again after the restart.
	got, _ := s.Report(ctx, later)
	got.State = ReportSending
	s.UpdateReport(ctx, got)
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.ResumeReports(ctx, t0.Add(26*time.Hour)); err != nil || n != 1 {
		t.Fatalf("resumed %d, %v", n, err)
	}
	counts, _ := s.ReportCounts(ctx)
	if counts["abuseipdb"][ReportPending] != 1 || counts["abuseipdb"][ReportSent] != 1 || counts["webhook"][ReportPending] != 1 {
		t.Fatalf("counts %v", counts)
	}
	if list, _ := s.Reports(ctx, ReportFilter{States: []string{ReportPending}, Reporter: "webhook"}); len(list) != 1 || list[0].ID != other {
		t.Fatalf("listed %+v", list)
	}
	// Pruning keeps what is still to send.
	if n, err := s.PruneReports(ctx, t0.Add(48*time.Hour)); err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want the one sent", n, err)
	}
	// The contacts cache.
	if err := s.SaveAbuseContact(ctx, "ip:192.0.2.0/24", "abuse@net.example", t0); err != nil {
		t.Fatal(err)
	}
	if c, at, ok, err := s.AbuseContact(ctx, "ip:192.0.2.0/24"); err != nil || !ok || c != "abuse@net.example" || !at.Equal(t0) {
		t.Fatalf("contact %q %v %v %v", c, at, ok, err)
	}
	if _, _, ok, _ := s.AbuseContact(ctx, "domain:none.example"); ok {
		t.Fatal("a contact never saved")
	}
}

func TestReportTallies(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i, r := range []Report{
		{Reporter: "abuseipdb", Kind: "attack", Target: "192.0.2.1", State: ReportSent, Created: t0},
		{Reporter: "abuseipdb", Kind: "attack", Target: "192.0.2.1", State: ReportSent, Created: t0.Add(8 * 24 * time.Hour)},
		{Reporter: "abuseipdb", Kind: "attack", Target: "192.0.2.2", State: ReportReview, Created: t0.Add(time.Hour)},
		{Reporter: "netcraft", Kind: "url", Target: "https://phish.example/", State: ReportFailed, Created: t0.Add(2 * time.Hour)},
	} {
		r.Subject = []byte("{}")
		if id, err := s.EnqueueReport(ctx, r, 7*24*time.Hour); err != nil || id == 0 {
			t.Fatalf("report %d: %d, %v", i, id, err)
		}
	}
	for _, c := range []struct {
		since, until time.Time
		want         []ReportTally
	}{
		{time.Time{}, time.Time{}, []ReportTally{
			{"abuseipdb", "attack", "192.0.2.1", ReportSent, 2},
			{"abuseipdb", "attack", "192.0.2.2", ReportReview, 1},
			{"netcraft", "url", "https://phish.example/", ReportFailed, 1},
		}},
		{t0.Add(time.Hour), t0.Add(2 * time.Hour), []ReportTally{{"abuseipdb", "attack", "192.0.2.2", ReportReview, 1}}},
		{t0.Add(24 * time.Hour), time.Time{}, []ReportTally{{"abuseipdb", "attack", "192.0.2.1", ReportSent, 1}}},
	} {
		got, err := s.ReportTallies(ctx, c.since, c.until)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("tallies in [%v, %v)\n got %+v, %v\nwant %+v", c.since, c.until, got, err, c.want)
		}
	}
}
