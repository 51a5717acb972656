package store

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestExtractions(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	quarantine := func(at time.Time) int64 {
		id, err := s.Quarantine(ctx, Quarantined{QueueID: "Q", Received: at, Client: netip.MustParseAddr("192.0.2.9"), Size: 3, Raw: []byte("x\r\n")})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	m1, m2 := quarantine(t0), quarantine(t0.Add(time.Hour))
	if un, err := s.Unextracted(ctx, 10); err != nil || len(un) != 2 || un[0].ID != m1 || string(un[0].Raw) != "x\r\n" {
		t.Fatalf("unextracted = %+v, %v", un, err)
	}
	url := Indicator{"url", "https://phish.example/x"}
	for _, c := range []struct {
		id    int64
		at    time.Time
		inds  []Indicator
		fresh bool
	}{
		{m2, t0.Add(time.Hour), []Indicator{url, {"recipient", "a@victim.example"}}, true},
		{m1, t0, []Indicator{url, {"domain", "phish.example"}}, true},
		{m1, t0, []Indicator{url, {"domain", "phish.example"}}, false}, // saved again after a restart: nothing counted twice
	} {
		fresh, err := s.SaveExtraction(ctx, c.id, c.at, t0.Add(2*time.Hour), []byte(`{"parts":1}`), c.inds)
		if err != nil || fresh != c.fresh {
			t.Fatalf("save %d: fresh %v, %v; want %v", c.id, fresh, err, c.fresh)
		}
	}
	if un, _ := s.Unextracted(ctx, 10); len(un) != 0 {
		t.Fatalf("still unextracted: %+v", un)
	}
	// Counted over the messages received in a span, for reports.
	for _, c := range []struct {
		since, until time.Time
		kinds        []string
		want         []IndicatorCount
	}{
		{time.Time{}, time.Time{}, []string{"url", "domain"}, []IndicatorCount{{url, t0, t0.Add(time.Hour), 2}, {Indicator{"domain", "phish.example"}, t0, t0, 1}}},
		{t0.Add(time.Minute), time.Time{}, nil, []IndicatorCount{{Indicator{"recipient", "a@victim.example"}, t0.Add(time.Hour), t0.Add(time.Hour), 1}, {url, t0.Add(time.Hour), t0.Add(time.Hour), 1}}},
		{time.Time{}, t0.Add(time.Hour), []string{"url"}, []IndicatorCount{{url, t0, t0, 1}}},
		{t0.Add(2 * time.Hour), time.Time{}, nil, nil},
	} {
		got, err := s.IndicatorsReceived(ctx, c.since, c.until, c.kinds)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("received in [%v, %v) of %v\n got %+v, %v\nwant %+v", c.since, c.until, c.kinds, got, err, c.want)
		}
	}
	got, err := s.Indicators(ctx, IndicatorFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []IndicatorCount{
		{url, t0, t0.Add(time.Hour), 2},
		{Indicator{"recipient", "a@victim.example"}, t0.Add(time.Hour), t0.Add(time.Hour), 1},
		{Indicator{"domain", "phish.example"}, t0, t0, 1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("indicators\n got %+v\nwant %+v", got, want)
	}
	if got, _ := s.Indicators(ctx, IndicatorFilter{Kinds: []string{"domain", "recipient"}, Message: m1}); len(got) != 1 || got[0].Kind != "domain" {
		t.Fatalf("message %d's domains and recipients: %+v", m1, got)
	}
	if res, at, err := s.Extraction(ctx, m1); err != nil || string(res) != `{"parts":1}` || !at.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("extraction = %s, %v, %v", res, at, err)
	}
	// A message gone from quarantine takes its extraction and links along;
	// its indicators keep their counts.
	if n, err := s.PruneQuarantine(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("prune quarantine = %d, %v", n, err)
	}
	if _, _, err := s.Extraction(ctx, m1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("extraction of a pruned message: %v", err)
	}
	if got, _ := s.Indicators(ctx, IndicatorFilter{Message: m1}); len(got) != 0 {
		t.Fatalf("links of a pruned message: %+v", got)
	}
	if _, err := s.SaveExtraction(ctx, m1, t0, t0, []byte("{}"), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("saving a pruned message's extraction: %v", err)
	}
	if n, err := s.PruneIndicators(ctx, t0.Add(30*time.Minute)); err != nil || n != 1 {
		t.Fatalf("prune indicators = %d, %v; want the domain", n, err)
	}
	if got, _ := s.Indicators(ctx, IndicatorFilter{Since: t0.Add(30 * time.Minute), Limit: 1}); len(got) != 1 || got[0].Indicator != url {
		t.Fatalf("after pruning: %+v", got)
	}
}
