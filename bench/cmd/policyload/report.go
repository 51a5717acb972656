package main

import (
	"fmt"
	"io"
)

// printReport writes the result as Markdown tables.
func printReport(w io.Writer, r *Result) {
	fmt.Fprintf(w, "generator: GOMAXPROCS %d of %d CPUs, open files limit %d; daemon open files limit: %s\n\n", r.GoMaxProcs, r.NumCPU, r.NoFile, r.DaemonFile)
	if len(r.Phases) > 0 {
		fmt.Fprintln(w, "| phase | held | workers | target | decisions/s | p50 | p90 | p99 | p99.9 | max | p99 from schedule | daemon CPU | generator CPU | errors | load avg after |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
		for _, p := range r.Phases {
			target, sched := "max", "–"
			if p.TargetRate > 0 {
				target = fmt.Sprintf("%d/s", p.TargetRate)
			}
			if p.Scheduled != nil {
				sched = ms(p.Scheduled.P99)
			}
			fmt.Fprintf(w, "| %s | %d | %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %.2f | %.2f | %d | %s |\n",
				p.Name, p.Parked, p.Workers, target, p.Rate, ms(p.Latency.P50), ms(p.Latency.P90), ms(p.Latency.P99), ms(p.Latency.P999), ms(p.Latency.Max), sched,
				p.DaemonCPU, p.LoadCPU, p.Errors+p.Unexpected, p.LoadAvg)
		}
		fmt.Fprintln(w)
	}
	if len(r.Memory) > 0 {
		fmt.Fprintln(w, "| daemon at | VmRSS | VmHWM | threads | goroutines | open | parked | handler timeouts | kernel slab, system-wide |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, c := range r.Memory {
			g := "–"
			if c.Goroutines > 0 {
				g = fmt.Sprint(c.Goroutines)
			}
			fmt.Fprintf(w, "| %s | %.1f MiB | %.1f MiB | %d | %s | %d | %d | %d | %.1f MiB |\n", c.Label, mib(c.RSSKiB), mib(c.HWMKiB), c.Threads, g, c.Open, c.Parked, c.Failed, mib(c.SlabKiB))
		}
		fmt.Fprintln(w)
	}
	if h := r.Held; h.Sessions > 0 {
		fmt.Fprintf(w, "held: %d sessions from %d addresses, %d opened over %.1fs (%d parked after the ramp), %d dial errors, %d lost; %d held answers (held %.1fs median, %.1f–%.1fs), %d answered early, %d unexpected\n",
			h.Sessions, h.Addrs, h.Opened, h.RampS, h.ParkedAt, h.DialErrors, h.Errors, h.Answers, h.HoldP50, h.HoldMin, h.HoldMax, h.Early, h.Unexpected)
		if b, a, ok := heldDelta(r); ok {
			fmt.Fprintf(w, "memory for the held sessions: daemon VmRSS %.1f → %.1f MiB, %.0f bytes per session; kernel slab %+.1f MiB, %.0f bytes per connection end (both ends are on this machine)\n",
				mib(b.RSSKiB), mib(a.RSSKiB), float64(a.RSSKiB-b.RSSKiB)*1024/float64(h.Sessions), mib(a.SlabKiB-b.SlabKiB), float64(a.SlabKiB-b.SlabKiB)*1024/float64(2*h.Sessions))
		}
	}
}

// heldDelta is the checkpoints just before and just after the held
// sessions were opened.
func heldDelta(r *Result) (before, after Checkpoint, ok bool) {
	for i, c := range r.Memory {
		if c.Parked > 0 && i > 0 {
			return r.Memory[i-1], c, c.RSSKiB > 0
		}
	}
	return Checkpoint{}, Checkpoint{}, false
}

func ms(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.2f ms", us/1000)
	}
	return fmt.Sprintf("%.0f µs", us)
}

func mib(kib int64) float64 { return float64(kib) / 1024 }
