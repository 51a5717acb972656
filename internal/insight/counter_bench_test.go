package insight_test

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/geo"
	"github.com/rampart-dev/rampart/internal/insight"
)

// BenchmarkCounterFlood counts a flood's failures as the daemon does: most
// addresses seen once, a few user names, three jails, one hour. It reports
// the bytes the Counter holds per entry at its default bound.
func BenchmarkCounterFlood(b *testing.B) {
	users := []string{"root", "admin", "info@example.org", "test", "oracle", "postgres", "ubuntu", "user"}
	jails := []struct{ jail, service string }{{"sshd", "sshd"}, {"postfix", "postfix/smtpd"}, {"dovecot", "dovecot"}}
	evs := make([]event.Event, 1<<16)
	for i := range evs {
		j := jails[i%len(jails)]
		evs[i] = event.Event{Time: t0, Jail: j.jail, Service: j.service, Kind: event.AuthFailure, User: users[i%len(users)]}
	}
	var c insight.Counter
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev := evs[i&(len(evs)-1)]
		ev.Addr = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		c.Observe(ev, 1)
		if (i+1)%insight.DefaultMaxEntries == 0 {
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/insight.DefaultMaxEntries, "B/entry")
			c.Flush(nil)
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.StartTimer()
		}
	}
}

// BenchmarkCounterFlush flushes a Counter a flood has filled to its
// default bound (most entries addresses, four to a /24), with a locator,
// reading the rows one by one as the store does: the memory a flush takes
// on top of what the Counter holds.
func BenchmarkCounterFlush(b *testing.B) {
	loc := countryByFirstByte{}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		var c insight.Counter
		for i := 0; c.Dropped() == 0; i++ {
			c.Observe(event.Event{Time: t0, Jail: "sshd", Service: "sshd", Kind: event.AuthFailure, User: "root",
				Addr: netip.AddrFrom4([4]byte{byte(1 + i>>18), byte(i >> 10), byte(i >> 2), byte(i)})}, 1)
		}
		b.StartTimer()
		n := 0
		for range c.FlushSeq(loc) {
			n++
		}
		if n == 0 {
			b.Fatal("no rows")
		}
	}
}

// countryByFirstByte places an address by its first byte: a few dozen
// countries and ASes, as a real flood has (IPv6 addresses in one).
type countryByFirstByte struct{}

var firstByteInfo = func() (m [256]geo.Info) {
	for x := range m {
		m[x] = geo.Info{Country: string([]byte{'A' + byte(x%26), 'A' + byte(x/26)}), ASN: 64512 + uint32(x), Org: "AS " + string(rune('A'+x%26))}
	}
	return m
}()

func (countryByFirstByte) Lookup(a netip.Addr) geo.Info { return firstByteInfo[a.AsSlice()[0]] }
