package main

import (
	"math/rand/v2"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has installed
)

// TestRFC3339Minutes checks the minute cache against time.Time.AppendFormat
// on walks through zones with daylight saving, with offsets of odd minutes
// and seconds (Amsterdam's +01:19:32 of summer 1937), across the changes
// of zone, backwards, and from one location to another.
func TestRFC3339Minutes(t *testing.T) {
	var locs []*time.Location
	for _, name := range []string{"UTC", "America/New_York", "Europe/Amsterdam", "Australia/Lord_Howe", "Asia/Kathmandu"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, loc)
	}
	locs = append(locs, time.FixedZone("odd", -(3*3600+25*60+7)), time.Local)
	starts := []time.Time{
		time.Date(2026, 3, 8, 6, 58, 0, 0, time.UTC),     // New York goes to daylight time at 07:00 UTC
		time.Date(2026, 11, 1, 5, 58, 30, 0, time.UTC),   // and back at 06:00 UTC
		time.Date(1937, 6, 30, 22, 39, 0, 0, time.UTC),   // Amsterdam goes from +01:19:32 to +01:20 at 22:40:28 UTC
		time.Date(2026, 4, 4, 14, 58, 0, 0, time.UTC),    // Lord Howe: a half-hour change at 15:00 UTC
		time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC),  // seconds before 1970: floor, not truncation
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),     // a five-digit year
		time.Date(2026, 12, 3, 12, 0, 59, 999, time.UTC), // nanoseconds are not printed
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var f rfc3339Minutes
	for _, start := range starts {
		for _, loc := range locs {
			at := start
			for range 600 {
				switch r := rng.IntN(100); {
				case r < 70:
					at = at.Add(time.Duration(rng.IntN(3)) * time.Second)
				case r < 95:
					at = at.Add(time.Duration(rng.IntN(90)) * time.Second)
				default:
					at = at.Add(-time.Duration(rng.IntN(200)) * time.Second)
				}
				tt := at.In(loc)
				if rng.IntN(50) == 0 {
					tt = at.In(locs[rng.IntN(len(locs))])
				}
				got := string(f.append([]byte("x"), tt))
				want := "x" + tt.Format(time.RFC3339)
				if got != want {
					t.Fatalf("%v in %v: got %q, want %q", at, tt.Location(), got, want)
				}
			}
		}
	}
}
