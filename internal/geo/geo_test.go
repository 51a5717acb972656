package geo_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rampart-dev/rampart/internal/geo"
	"github.com/rampart-dev/rampart/internal/geo/geotest"
)

func TestLookup(t *testing.T) {
	asn := geotest.WriteASN(t,
		geotest.AS{Number: 64500, Org: "Example Hosting", Networks: []string{"198.51.100.0/24", "2001:db8:100::/48"}},
		geotest.AS{Number: 64501, Org: "Other Net", Networks: []string{"203.0.113.0/25"}},
	)
	country := geotest.WriteCountry(t, map[string]string{"198.51.100.0/24": "NL", "2001:db8:100::/48": "DE"})
	db, err := geo.Open(country, asn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tests := []struct {
		addr string
		want geo.Info
	}{
		{"198.51.100.7", geo.Info{Country: "NL", ASN: 64500, Org: "Example Hosting"}},
		{"::ffff:198.51.100.7", geo.Info{Country: "NL", ASN: 64500, Org: "Example Hosting"}},
		{"2001:db8:100:5::1", geo.Info{Country: "DE", ASN: 64500, Org: "Example Hosting"}},
		{"203.0.113.9", geo.Info{ASN: 64501, Org: "Other Net"}},
		{"203.0.113.200", geo.Info{}},
		{"192.0.2.1", geo.Info{}},
	}
	for _, tt := range tests {
		if got := db.Lookup(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Lookup(%s) = %+v, want %+v", tt.addr, got, tt.want)
		}
	}
	if n, org, ok := db.ASN(netip.MustParseAddr("198.51.100.1")); !ok || n != 64500 || org != "Example Hosting" {
		t.Errorf("ASN = %d %q %v", n, org, ok)
	}
}

func TestOpenErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.mmdb")
	os.WriteFile(bad, []byte("not a database"), 0o644)
	if _, err := geo.Open("", bad); err == nil {
		t.Fatal("garbage accepted as a database")
	}
	if _, err := geo.Open(filepath.Join(t.TempDir(), "missing.mmdb"), ""); err == nil {
		t.Fatal("missing file accepted")
	}
	db, err := geo.Open("", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := db.ASN(netip.MustParseAddr("1.2.3.4")); ok {
		t.Fatal("ASN known without a database")
	}
}

func TestWatchedFollowsFiles(t *testing.T) {
	dir := t.TempDir()
	country := filepath.Join(dir, "GeoLite2-Country.mmdb")
	asn := filepath.Join(dir, "GeoLite2-ASN.mmdb")
	a := netip.MustParseAddr("198.51.100.7")

	// Neither file exists yet: nothing known, an error each, no panic.
	w := geo.OpenWatched(country, asn)
	defer w.Close()
	if got := w.Lookup(a); got != (geo.Info{}) {
		t.Fatalf("lookup without databases = %+v", got)
	}
	if _, _, ok := w.ASN(a); ok {
		t.Fatal("an AS without databases")
	}
	if _, _, ok := (*geo.Watched)(nil).ASN(a); ok {
		t.Fatal("an AS from no Watched")
	}
	if errs := w.Errors(); len(errs) != 2 {
		t.Fatalf("errors = %v, want one per missing file", errs)
	}

	// The files appear (geoipupdate renames a finished download into place).
	mustRename(t, geotest.WriteCountry(t, map[string]string{"198.51.100.0/24": "NL"}), country)
	mustRename(t, geotest.WriteASN(t, geotest.AS{Number: 64500, Org: "Example Hosting", Networks: []string{"198.51.100.0/24"}}), asn)
	if reloaded, errs := w.Check(); len(reloaded) != 2 || len(errs) != 0 {
		t.Fatalf("check = %v, %v; want both loaded", reloaded, errs)
	}
	if got := w.Lookup(a); got != (geo.Info{Country: "NL", ASN: 64500, Org: "Example Hosting"}) {
		t.Fatalf("lookup = %+v", got)
	}
	if n, org, ok := w.ASN(a); !ok || n != 64500 || org != "Example Hosting" {
		t.Fatalf("ASN = %d %q %v", n, org, ok)
	}
	// Nothing changed: nothing reopened.
	if reloaded, errs := w.Check(); len(reloaded) != 0 || len(errs) != 0 {
		t.Fatalf("check of unchanged files = %v, %v", reloaded, errs)
	}

	// An update: the country database alone is replaced.
	mustRename(t, geotest.WriteCountry(t, map[string]string{"198.51.100.0/24": "DE"}), country)
	if reloaded, _ := w.Check(); len(reloaded) != 1 || reloaded[0] != country {
		t.Fatalf("reloaded %v, want the country database alone", reloaded)
	}
	if got := w.Lookup(a); got.Country != "DE" || got.ASN != 64500 {
		t.Fatalf("after the update: %+v", got)
	}

	// A broken file is refused once, and the database in force stays.
	if err := os.WriteFile(country, []byte("half a download"), 0o644); err != nil {
		t.Fatal(err)
	}
	if reloaded, errs := w.Check(); len(reloaded) != 0 || len(errs) != 1 {
		t.Fatalf("check of a broken file = %v, %v", reloaded, errs)
	}
	if _, errs := w.Check(); len(errs) != 0 {
		t.Fatalf("the same broken file reported again: %v", errs)
	}
	if got := w.Lookup(a); got.Country != "DE" {
		t.Fatalf("a broken update replaced the database in force: %+v", got)
	}
	if len(w.Errors()) != 1 {
		t.Fatalf("errors = %v", w.Errors())
	}
}

func TestWatchedConcurrentLookups(t *testing.T) {
	dir := t.TempDir()
	country := filepath.Join(dir, "c.mmdb")
	mustRename(t, geotest.WriteCountry(t, map[string]string{"192.0.2.0/24": "FR"}), country)
	w := geo.OpenWatched(country, "")
	defer w.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			mustRename(t, geotest.WriteCountry(t, map[string]string{"192.0.2.0/24": "FR"}), country)
			w.Check()
		}
	}()
	a := netip.MustParseAddr("192.0.2.1")
	for {
		select {
		case <-done:
			return
		default:
		}
		if got := w.Lookup(a).Country; got != "FR" {
			t.Fatalf("lookup during reloads = %q", got)
		}
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// TestLookupCachedRecords: records decoded once and kept by their offset
// give the same answers as decoding each lookup, past the cache's bound
// (it is emptied when full) and when lookups run at once.
func TestLookupCachedRecords(t *testing.T) {
	const n = 20_000 // distinct AS records, more than a cache holds
	var ases []geotest.AS
	countries := map[string]string{}
	for i := range n {
		net := fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)
		ases = append(ases, geotest.AS{Number: uint32(100_000 + i), Org: fmt.Sprintf("Org %d", i), Networks: []string{net}})
		countries[net] = []string{"NL", "DE", "FR"}[i%3]
	}
	db, err := geo.Open(geotest.WriteCountry(t, countries), geotest.WriteASN(t, ases...))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for pass := range 2 {
				for j := range n {
					i := (j*7 + w*n/4) % n // each worker its own order
					a := netip.AddrFrom4([4]byte{10, byte(i / 256), byte(i % 256), byte(1 + pass)})
					want := geo.Info{Country: []string{"NL", "DE", "FR"}[i%3], ASN: uint32(100_000 + i), Org: fmt.Sprintf("Org %d", i)}
					if got := db.Lookup(a); got != want {
						t.Errorf("%s: %+v, want %+v", a, got, want)
						return
					}
					if asn, org, ok := db.ASN(a); !ok || asn != want.ASN || org != want.Org {
						t.Errorf("%s: ASN %d %q %v", a, asn, org, ok)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if got := db.Lookup(netip.MustParseAddr("192.0.2.1")); got != (geo.Info{}) {
		t.Fatalf("an address in no network: %+v", got)
	}
}
