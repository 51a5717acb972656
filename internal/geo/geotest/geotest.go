// Package geotest writes small MaxMind-format databases for tests, with
// mmdbwriter, so geo lookups are tested against real database files.
package geotest

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// AS is one autonomous system's networks.
type AS struct {
	Number   uint32
	Org      string
	Networks []string // CIDR prefixes
}

// WriteASN writes a GeoLite2-ASN-shaped database into tb's temp dir and
// returns its path.
func WriteASN(tb testing.TB, ases ...AS) string {
	tb.Helper()
	t := newTree(tb, "GeoLite2-ASN")
	for _, as := range ases {
		rec := mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(as.Number),
			"autonomous_system_organization": mmdbtype.String(as.Org),
		}
		for _, n := range as.Networks {
			insert(tb, t, n, rec)
		}
	}
	return write(tb, t, "asn.mmdb")
}

// WriteCountry writes a GeoLite2-Country-shaped database mapping CIDR
// prefixes to ISO country codes.
func WriteCountry(tb testing.TB, networks map[string]string) string {
	tb.Helper()
	t := newTree(tb, "GeoLite2-Country")
	for n, iso := range networks {
		insert(tb, t, n, mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(iso)}})
	}
	return write(tb, t, "country.mmdb")
}

func newTree(tb testing.TB, kind string) *mmdbwriter.Tree {
	t, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: kind, RecordSize: 24, IPVersion: 6, IncludeReservedNetworks: true})
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func insert(tb testing.TB, t *mmdbwriter.Tree, cidr string, v mmdbtype.DataType) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		tb.Fatal(err)
	}
	_, n, err := net.ParseCIDR(p.String())
	if err != nil {
		tb.Fatal(err)
	}
	if err := t.Insert(n, v); err != nil {
		tb.Fatal(err)
	}
}

func write(tb testing.TB, t *mmdbwriter.Tree, name string) string {
	path := filepath.Join(tb.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := t.WriteTo(f); err != nil {
		tb.Fatal(err)
	}
	return path
}
