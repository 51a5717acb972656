package geo_test

import (
	"net/netip"
	"os"
	"path/filepath"
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
