package engine

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// uniqueAddr returns the i-th address of a sequence that spreads over many
// /24s (IPv4) and /64s (IPv6, every fourth), as a flood from a botnet does.
func uniqueAddr(i int) netip.Addr {
	if i%4 == 3 {
		var b [16]byte
		b[0], b[1] = 0x20, 0x01
		b[2], b[3], b[4], b[5] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		b[15] = 1
		return netip.AddrFrom16(b)
	}
	x := uint32(i)*2654435761 + 0x0b000000 // scatter, avoid 0.0.0.0/8
	b := [4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}
	// Stay out of the ranges that are never banned (multicast and above,
	// loopback, link-local).
	if b[0] >= 224 {
		b[0] -= 128
	}
	if b[0] == 127 || b[0] == 169 {
		b[0]--
	}
	return netip.AddrFrom4(b)
}

func heapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// observeUnique feeds n failures from n distinct addresses, one per 10 ms of
// log time, with the default scenarios on.
func observeUnique(b *testing.B, e *Engine, n int) {
	ev := event.Event{Service: "sshd", Kind: event.AuthFailure, User: "root"}
	for i := range n {
		ev.Time = t0.Add(time.Duration(i) * 10 * time.Millisecond)
		ev.Addr = uniqueAddr(i)
		e.Observe(ev)
	}
}

func benchEngine(b *testing.B, maxTracked int) *Engine {
	cfg := DefaultConfig(Jail{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 5, FindTime: time.Hour, BanTime: time.Hour})
	cfg.MaxTracked = maxTracked
	// Aggregation is part of the cost being measured, but a flood of
	// one-failure addresses should not turn into prefix bans here.
	cfg.Prefixes.V4 = []Level{{Bits: 24, Addresses: distinctSize}}
	cfg.Prefixes.V6 = []Level{{Bits: 64, Addresses: distinctSize}}
	cfg.Spray = Spray{}
	e, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkTracked1M reports the heap held by 1,000,000 tracked addresses
// (target: under 200 MiB).
func BenchmarkTracked1M(b *testing.B) {
	for range b.N {
		before := heapMiB()
		e := benchEngine(b, 1_000_000)
		observeUnique(b, e, 1_000_000)
		after := heapMiB()
		s := e.Stats()
		b.ReportMetric(after-before, "MiB")
		b.ReportMetric(float64(s.Tracked), "tracked")
		runtime.KeepAlive(e)
	}
}

// flood feeds 10,000,000 unique addresses to the engine newEngine makes
// and reports the heap it ends with (it must be bounded by the caps, not
// the flood), the rate and the engine's counters.
func flood(b *testing.B, newEngine func() *Engine) {
	const n = 10_000_000
	for range b.N {
		before := heapMiB()
		e := newEngine()
		start := time.Now()
		observeUnique(b, e, n)
		e.Tick(t0.Add(n * 10 * time.Millisecond))
		elapsed := time.Since(start)
		after := heapMiB()
		s := e.Stats()
		b.ReportMetric(after-before, "MiB")
		b.ReportMetric(float64(s.Tracked), "tracked")
		b.ReportMetric(float64(s.Evicted), "evicted")
		b.ReportMetric(float64(s.Decisions), "bans")
		b.ReportMetric(float64(s.ActiveBans), "active")
		b.ReportMetric(n/elapsed.Seconds(), "events/s")
		runtime.KeepAlive(e)
	}
}

// BenchmarkFlood10M: the flood against an engine capped at 1,000,000
// tracked keys whose aggregation and spray are set not to ban.
func BenchmarkFlood10M(b *testing.B) {
	flood(b, func() *Engine { return benchEngine(b, 1_000_000) })
}

// BenchmarkFloodBans10M: the flood against the default scenarios as
// shipped: every address fails for one sprayed user, so nearly every event
// is a ban. The active-ban table is capped like the others.
func BenchmarkFloodBans10M(b *testing.B) {
	flood(b, func() *Engine {
		e, err := New(DefaultConfig(Jail{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 5, FindTime: time.Hour, BanTime: time.Hour}))
		if err != nil {
			b.Fatal(err)
		}
		return e
	})
}

// BenchmarkObserve measures one failure event on a warm engine.
func BenchmarkObserve(b *testing.B) {
	e := benchEngine(b, 1_000_000)
	ev := event.Event{Service: "sshd", Kind: event.AuthFailure, User: "root"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
		ev.Addr = uniqueAddr(i % 100_000)
		e.Observe(ev)
		i++
	}
}

// BenchmarkObserveBans measures an event that bans: every address fails
// once for a user name that is being sprayed (spray bans at once, no
// grace), the heaviest path an event can take. Allocations per event are
// reported: a flood of them must not turn into garbage.
func BenchmarkObserveBans(b *testing.B) {
	cfg := DefaultConfig(Jail{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 5, FindTime: time.Hour, BanTime: time.Hour})
	cfg.KnownGood.Grace = 0
	e, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ev := event.Event{Service: "sshd", Kind: event.AuthFailure, User: "root"}
	b.ReportAllocs()
	i, bans := 0, 0
	for b.Loop() {
		ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
		ev.Addr = uniqueAddr(i)
		bans += len(e.Observe(ev))
		i++
	}
	b.ReportMetric(float64(bans)/float64(i), "bans/event")
}

// BenchmarkBannedAt looks addresses up among 10, 10,000 and 100,000 prefix
// bans (/24s and a few /16s) and as many address bans: with one
// longest-prefix-match structure the cost must not grow with the number of
// prefix bans. Half the lookups fall in a banned prefix.
func BenchmarkBannedAt(b *testing.B) {
	for _, n := range []int{10, 10_000, 100_000} {
		b.Run(fmt.Sprintf("prefixes=%d", n), func(b *testing.B) {
			e := benchEngine(b, 1_000_000)
			r := rand.New(rand.NewPCG(1, uint64(n)))
			var inside []netip.Addr
			for i := range n {
				a := uniqueAddr(i * 7919)
				bits := 24
				if a.Is6() {
					bits = 64
				}
				if i%100 == 99 {
					bits -= 8
				}
				p, _ := a.Prefix(bits)
				if _, err := e.Ban(event.Decision{Target: p, Start: t0, Duration: time.Hour}); err != nil {
					b.Fatal(err)
				}
				if _, err := e.Ban(event.Decision{Target: event.AddrPrefix(uniqueAddr(i*7919 + 1)), Start: t0, Duration: time.Hour}); err != nil {
					b.Fatal(err)
				}
				inside = append(inside, a)
			}
			at := t0.Add(time.Minute)
			b.ReportAllocs()
			hits := 0
			for b.Loop() {
				var a netip.Addr
				if r.IntN(2) == 0 {
					a = inside[r.IntN(len(inside))]
				} else {
					a = uniqueAddr(r.IntN(1 << 30))
				}
				if _, ok := e.Banned(a, at); ok {
					hits++
				}
			}
			b.ReportMetric(float64(hits)/float64(b.N), "hit-rate")
		})
	}
}

// BenchmarkExpire measures what expiry costs: a table of 1,000,000 tracked
// addresses whose failures all go stale is emptied by one Tick past their
// window (ns/op is per expired entry); then a Tick with nothing due, on a
// table as full, costs the same whatever the table's size.
func BenchmarkExpire(b *testing.B) {
	const n = 1_000_000
	b.Run("expired", func(b *testing.B) {
		var per float64
		for range b.N {
			b.StopTimer()
			e := benchEngine(b, n)
			observeUnique(b, e, n)
			end := t0.Add(n*10*time.Millisecond + 13*time.Hour)
			b.StartTimer()
			start := time.Now()
			e.Tick(end)
			per = float64(time.Since(start).Nanoseconds()) / n
			if s := e.Stats(); s.Tracked != 0 {
				b.Fatalf("%d tracked after expiry", s.Tracked)
			}
		}
		b.ReportMetric(per, "ns/expired")
	})
	b.Run("nothing-due", func(b *testing.B) {
		e := benchEngine(b, n)
		observeUnique(b, e, n)
		now := t0.Add(n * 10 * time.Millisecond)
		e.Tick(now)
		b.ReportAllocs()
		for b.Loop() {
			e.Tick(now) // the same second: no bucket is due
		}
		if s := e.Stats(); s.Tracked < n/2 {
			b.Fatalf("only %d tracked", s.Tracked)
		}
	})
}
