package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/geo/geotest"
	"github.com/rampart-dev/rampart/internal/store"
)

// TestDaemonInsight: bans are recorded with their place, failures and bans
// reach the hourly aggregates, and a geo database replaced under the
// running daemon is used from then on.
func TestDaemonInsight(t *testing.T) {
	dir := t.TempDir()
	country := filepath.Join(dir, "GeoLite2-Country.mmdb")
	asn := filepath.Join(dir, "GeoLite2-ASN.mmdb")
	if err := os.Rename(geotest.WriteCountry(t, map[string]string{"198.51.100.0/24": "NL"}), country); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(geotest.WriteASN(t, geotest.AS{Number: 64500, Org: "Example Hosting", Networks: []string{"198.51.100.0/24"}}), asn); err != nil {
		t.Fatal(err)
	}
	h := startHarnessWith(t, dir, 3, func(o *Options) { o.InsightEvery = 20 * time.Millisecond },
		fmt.Sprintf("[geo]\ncountry_database = %q\n[asn]\ndatabase = %q\n", country, asn))
	ctx := context.Background()

	h.fail(3, "198.51.100.7")
	h.waitFor("ban", func(st Status) bool { return banned(st, "198.51.100.7") })
	placeOf := func(target string) store.Place {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			hist, err := h.d.store.History(ctx, store.HistoryFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range hist {
				if e.Decision.Target.Addr().String() == target && !e.Revocation {
					return e.Place
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s never recorded\n%s", target, h.logs)
		return store.Place{}
	}
	if p := placeOf("198.51.100.7"); p != (store.Place{Country: "NL", ASN: 64500, Org: "Example Hosting"}) {
		t.Fatalf("place = %+v", p)
	}

	// geoipupdate renames the new file into place: the next check reads it.
	if err := os.Rename(geotest.WriteCountry(t, map[string]string{"198.51.100.0/24": "DE"}), country); err != nil {
		t.Fatal(err)
	}
	waitLog(t, h, "geo database reloaded")
	h.fail(3, "198.51.100.8")
	h.waitFor("second ban", func(st Status) bool { return banned(st, "198.51.100.8") })
	if p := placeOf("198.51.100.8"); p.Country != "DE" || p.ASN != 64500 {
		t.Fatalf("place after the update = %+v", p)
	}

	// The aggregates: 3 failures and a ban in each country, 6 tries of root.
	want := map[string][2]int64{"country NL": {3, 1}, "country DE": {3, 1}, "user root": {6, 0},
		"asn 64500": {6, 2}, "prefix 198.51.100.0/24": {6, 2}, "total ": {6, 2}, "scenario ip-failures": {0, 2}}
	var got map[string][2]int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows, err := h.d.store.Hourly(ctx, store.HourlyFilter{Jail: "sshd"})
		if err != nil {
			t.Fatal(err)
		}
		got = map[string][2]int64{}
		for _, r := range rows {
			k := r.Dim + " " + r.Key
			v := got[k]
			v[0] += r.Failures
			v[1] += r.Bans
			got[k] = v
			if r.Dim == store.DimASN && r.Label != "Example Hosting" {
				t.Fatalf("AS label %q", r.Label)
			}
		}
		ok := true
		for k, v := range want {
			if got[k] != v {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("aggregates = %v\nwant at least %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := h.waitFor("geo health", func(Status) bool { return true })
	for _, hl := range st.Health {
		if hl.Component == "geo" && hl.State != HealthOK {
			t.Fatalf("geo health %+v", hl)
		}
	}

	// A broken update is refused, the database in force stays, and the
	// health line says so.
	if err := os.WriteFile(country, []byte("truncated download"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.waitFor("geo degraded", func(st Status) bool {
		for _, hl := range st.Health {
			if hl.Component == "geo" && hl.State == HealthDegraded && strings.Contains(hl.Detail, country) {
				return true
			}
		}
		return false
	})
	if p := h.d.place(netip.MustParseAddr("198.51.100.9")); p.Country != "DE" {
		t.Fatalf("place with a broken update = %+v", p)
	}
}

func waitLog(t *testing.T, h *harness, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.logs.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q\n%s", text, h.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDaemonInsightDropped: counts the insight counter has no room for
// are reported by status (and so by the metrics), not lost silently.
func TestDaemonInsightDropped(t *testing.T) {
	h := startHarnessWith(t, t.TempDir(), 100, func(o *Options) { o.InsightEvery = time.Hour; o.InsightMaxEntries = 4 })
	// Five addresses, and root, sshd and the kind of failure once: eight
	// keys for room for four.
	for i := range 5 {
		h.fail(1, fmt.Sprintf("198.51.100.%d", i+1))
	}
	st := h.waitFor("drops counted", func(st Status) bool { return st.Insight.Dropped >= 4 })
	if st.Insight.Dropped != 4 {
		t.Fatalf("%d dropped, want 4", st.Insight.Dropped)
	}
}
