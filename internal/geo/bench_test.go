package geo_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/rampart-dev/rampart/internal/geo"
	"github.com/rampart-dev/rampart/internal/geo/geotest"
)

// benchLookups calls lookup with addresses of a country and an ASN
// database of 20,000 networks (5,000 ASes), 4,096 of them in turn.
func benchLookups(b *testing.B, lookup func(*geo.Watched, netip.Addr)) {
	var ases []geotest.AS
	countries := map[string]string{}
	for i := range 20_000 {
		n := fmt.Sprintf("%d.%d.%d.0/24", 1+i/65536%200, i/256%256, i%256)
		ases = append(ases, geotest.AS{Number: uint32(64512 + i%5000), Org: fmt.Sprintf("Example Hosting %d", i%5000), Networks: []string{n}})
		countries[n] = []string{"NL", "DE", "US", "CN", "BR"}[i%5]
	}
	w := geo.OpenWatched(geotest.WriteCountry(b, countries), geotest.WriteASN(b, ases...))
	defer w.Close()
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{byte(1 + i%20), byte(i * 7), byte(i * 13), byte(i)})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		lookup(w, addrs[i%len(addrs)])
		i++
	}
}

// BenchmarkWatchedASN looks up the AS of addresses as the engine does for
// each failure when [asn] database is set, a country database open beside
// it.
func BenchmarkWatchedASN(b *testing.B) {
	benchLookups(b, func(w *geo.Watched, a netip.Addr) { w.ASN(a) })
}

// BenchmarkWatchedLookup looks up country and AS, as the store does for
// each decision and the insight counter for each address it writes.
func BenchmarkWatchedLookup(b *testing.B) {
	benchLookups(b, func(w *geo.Watched, a netip.Addr) { w.Lookup(a) })
}
