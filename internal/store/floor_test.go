package store

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// BenchmarkInsertFloor measures the least any store can spend to keep a
// decision as a SQLite row, the floor under BenchmarkRecordFlood: the
// store's own connection (WAL, synchronous=FULL), batches of 2,000 in one
// transaction, one multi-row INSERT per 100 rows, into a table with no
// index and no constraint but its rowid. "text" writes a decision's fields
// as the history table holds them; "int" writes a single integer a row.
func BenchmarkInsertFloor(b *testing.B) {
	for _, shape := range []string{"int", "text"} {
		b.Run(shape, func(b *testing.B) {
			const batch, per = 2000, 100
			ctx := context.Background()
			s, _ := openTemp(b)
			ddl, cols, marks := "CREATE TABLE floor (v INTEGER)", "(v)", "(?)"
			if shape == "text" {
				ddl = "CREATE TABLE floor (target TEXT, action TEXT, start_ns INTEGER, end_ns INTEGER, scenario TEXT, reason TEXT, jail TEXT, origin TEXT)"
				cols, marks = "(target, action, start_ns, end_ns, scenario, reason, jail, origin)", "(?,?,?,?,?,?,?,?)"
			}
			if _, err := s.w.ExecContext(ctx, ddl); err != nil {
				b.Fatal(err)
			}
			q := "INSERT INTO floor " + cols + " VALUES " + strings.Repeat(marks+",", per-1) + marks
			rng := rand.New(rand.NewPCG(1, 2))
			start := t0.UnixNano()
			args := make([]any, 0, per*8)
			var cpu time.Duration
			n := 0
			for b.Loop() {
				c0 := cpuTime(b)
				tx, err := s.w.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				st, err := tx.PrepareContext(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				for range batch / per {
					args = args[:0]
					for range per {
						start += int64(20 * time.Millisecond)
						if shape == "int" {
							args = append(args, start)
							continue
						}
						a := netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}).String()
						args = append(args, a+"/32", "ban", start, start+int64(10*time.Minute), "ip-failures",
							"5 failures in 10m0s from "+a, "sshd", "local")
					}
					if _, err := st.ExecContext(ctx, args...); err != nil {
						b.Fatal(err)
					}
				}
				st.Close()
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime(b) - c0
				n += batch
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(n), "cpu-µs/row")
		})
	}
}
