package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// cpuTime returns the user and system CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecordDecisions writes batches of distinct decisions, each batch
// in one transaction, into a growing on-disk database.
func BenchmarkRecordDecisions(b *testing.B) {
	for _, size := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ctx := context.Background()
			s, _ := openTemp(b)
			start := t0
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				b.StopTimer()
				ds := manyDecisions(size, start)
				start = start.Add(time.Duration(size) * time.Millisecond)
				b.StartTimer()
				if _, err := s.RecordDecisions(ctx, ds); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "decisions/s")
			// CPU time as well as wall time: on a busy machine it is the
			// steadier of the two.
			b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// BenchmarkRecordFlood records a flood's decisions: batches of 2,000
// ten-minute bans of addresses in no order (as a flood's come), reasons
// naming them, into a store that grows by each batch. Each op is a batch;
// -benchtime 150x fills the store with 300,000.
func BenchmarkRecordFlood(b *testing.B) {
	const batch = 2000
	ctx := context.Background()
	s, _ := openTemp(b)
	rng := rand.New(rand.NewPCG(1, 2))
	start := t0
	ds := make([]event.Decision, batch)
	var cpu time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		for i := range ds {
			a := netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
			ds[i] = event.Decision{Target: event.AddrPrefix(a), Action: event.Ban, Start: start, Duration: 10 * time.Minute,
				Scenario: "ip-failures", Reason: "5 failures in 10m0s from " + a.String(), Jail: "sshd", Origin: "local"}
			start = start.Add(20 * time.Millisecond)
		}
		c0 := cpuTime(b)
		b.StartTimer()
		if _, err := s.RecordDecisions(ctx, ds); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime(b) - c0
		n += batch
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/decision")
}

// BenchmarkRecordDecision writes one decision per transaction: the cost of
// a synchronous commit (synchronous=FULL in WAL mode).
func BenchmarkRecordDecision(b *testing.B) {
	ctx := context.Background()
	s, _ := openTemp(b)
	ds := manyDecisions(1<<16, t0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.RecordDecision(ctx, ds[i%len(ds)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkActiveDecisions lists 110,000 active decisions, as at start-up
// reconciliation with the kernel: 100,000 in the active table and 10,000
// waiting to be merged into it.
func BenchmarkActiveDecisions(b *testing.B) {
	ctx := context.Background()
	s, _ := openTemp(b)
	ds := manyDecisions(110_000, t0)
	if _, err := s.RecordDecisions(ctx, ds[:100_000]); err != nil {
		b.Fatal(err)
	}
	if _, err := s.PruneExpired(ctx, t0); err != nil { // merges, ending nothing
		b.Fatal(err)
	}
	if _, err := s.RecordDecisions(ctx, ds[100_000:]); err != nil {
		b.Fatal(err)
	}
	now := t0.Add(2 * time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		ds, err := s.ActiveDecisions(ctx, now)
		if err != nil || len(ds) != 110_000 {
			b.Fatalf("ActiveDecisions = %d, %v", len(ds), err)
		}
	}
}

// BenchmarkActiveDecisionsOf reads the decisions of 50 targets, as rampart
// status does for the bans it lists, from 200,000 merged decisions and
// 10,000 waiting to be merged: it looks its targets up in the active table
// and scans only the waiting rows (at most mergeEvery). A scan of the
// active table's join would take tens of times longer.
func BenchmarkActiveDecisionsOf(b *testing.B) {
	ctx := context.Background()
	s, _ := openTemp(b)
	ds := manyDecisions(210_000, t0)
	for lo := 0; lo < len(ds); lo += 10_000 {
		if _, err := s.RecordDecisions(ctx, ds[lo:lo+10_000]); err != nil {
			b.Fatal(err)
		}
	}
	var targets []netip.Prefix
	for i := range 25 {
		targets = append(targets, ds[i*7919].Target, ds[len(ds)-1-i*331].Target)
	}
	now := t0.Add(4 * time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.ActiveDecisionsOf(ctx, now, targets)
		if err != nil || len(got) != len(targets) {
			b.Fatalf("ActiveDecisionsOf = %d, %v", len(got), err)
		}
	}
}

// BenchmarkRecordBatch is BenchmarkRecordDecisions with the positions of
// four sources saved in the same transaction, as the daemon's store stage
// does with every batch: the cost the positions add.
func BenchmarkRecordBatch(b *testing.B) {
	for _, size := range []int{1, 1_000} {
		for _, npos := range []int{0, 4} {
			b.Run(fmt.Sprintf("batch=%d/positions=%d", size, npos), func(b *testing.B) {
				ctx := context.Background()
				s, _ := openTemp(b)
				start := t0
				pos := map[string]string{}
				for i := range npos {
					pos[fmt.Sprintf("file:/var/log/%d.log", i)] = "dev=2049 inode=1234567 offset=0 head=1024:0123456789abcdef"
				}
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					b.StopTimer()
					ds := manyDecisions(size, start)
					start = start.Add(time.Duration(size) * time.Millisecond)
					for k := range pos {
						pos[k] = fmt.Sprintf("dev=2049 inode=1234567 offset=%d head=1024:0123456789abcdef", i)
					}
					b.StartTimer()
					if _, err := s.RecordBatch(ctx, ds, pos, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "decisions/s")
			})
		}
	}
}

// BenchmarkAddHourly writes a flood's flush of the hourly aggregates: 200,000
// rows in the store's key order (one hour, one jail, networks), summed into
// the rows already there, as a long flood's flushes are minute after minute.
func BenchmarkAddHourly(b *testing.B) {
	ctx := context.Background()
	s, _ := openTemp(b)
	const n = 200_000
	rows := make([]HourlyRow, n)
	for i := range rows {
		rows[i] = HourlyRow{Hour: t0, Jail: "sshd", Dim: DimPrefix, Key: fmt.Sprintf("10.%d.%d.0/24", i>>8, i&0xff), Failures: 1}
	}
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		if err := s.AddHourly(ctx, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

// BenchmarkAddHourlyKeyOrder adds a flood's hour of network rows (110,000
// /24s spread over the IPv4 space) to a new hour of the table, in numeric
// order and in the order of their text, which is the table's key: why
// insight's flush yields them in text order.
func BenchmarkAddHourlyKeyOrder(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	nets := make([]uint32, 110_000)
	for i := range nets {
		nets[i] = r.Uint32() &^ 0xff
	}
	slices.Sort(nets)
	numeric := make([]string, len(nets))
	for i, v := range nets {
		numeric[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), 24).String()
	}
	text := slices.Sorted(slices.Values(numeric))
	for _, bench := range []struct {
		name string
		keys []string
	}{{"numeric", numeric}, {"text", text}} {
		b.Run(bench.name, func(b *testing.B) {
			ctx := context.Background()
			s, _ := openTemp(b)
			rows := make([]HourlyRow, len(bench.keys))
			hour := 0
			cpu0 := cpuTime(b)
			for b.Loop() {
				hour++
				for i, k := range bench.keys {
					rows[i] = HourlyRow{Hour: t0.Add(time.Duration(hour) * time.Hour), Jail: "sshd", Dim: DimPrefix, Key: k, Failures: 1}
				}
				if err := s.AddHourly(ctx, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}
