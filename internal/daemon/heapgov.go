package daemon

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// heapGovernor bounds the process's memory by its live heap, for replay
// and the daemon. Go's collector lets the heap grow to twice what the last
// collection kept (GOGC=100) before it runs again; most of Rampart's heap
// is the engine's tables, which hold no pointers, so a collection costs
// little (about 3 ms for 75 MiB) and the doubling is memory for nothing.
// The governor sets Go's soft memory limit to half again the live heap,
// never below governorFloor: a process whose live heap stays under half
// the floor is untouched (Go's own target, twice the live heap, stays
// below the limit); a larger one is collected more often, never more than
// as if GOGC were 50 (a limit below the live heap would make the collector
// run without end). Set GOMEMLIMIT to choose the limit yourself.
type heapGovernor struct {
	on     bool
	prev   int64
	sample []metrics.Sample
	live   uint64
}

// governorFloor is the memory limit the governor never goes below. With
// 96 MiB the daemon's resident set stays near 150 MiB under the 5M-line
// flood of bench/pipeline.sh (a live heap of about 66 MiB), for 0-3% more
// CPU than with 112 (bench/RESULTS.md, issue 19).
const governorFloor = 96 << 20

func newHeapGovernor() *heapGovernor {
	g := &heapGovernor{sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	if os.Getenv("GOMEMLIMIT") == "" {
		g.on = true
		g.prev = debug.SetMemoryLimit(-1)
		debug.SetMemoryLimit(governorFloor)
	}
	return g
}

// check follows the live heap the last collection measured.
func (g *heapGovernor) check() {
	if !g.on {
		return
	}
	metrics.Read(g.sample)
	if g.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	if live := g.sample[0].Value.Uint64(); live != g.live {
		g.live = live
		debug.SetMemoryLimit(max(governorFloor, int64(live)*3/2))
	}
}

// follow checks every interval until ctx ends, then releases.
func (g *heapGovernor) follow(ctx context.Context, interval time.Duration) {
	defer g.release()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.check()
		}
	}
}

// release puts back the limit there was before.
func (g *heapGovernor) release() {
	if g.on {
		debug.SetMemoryLimit(g.prev)
	}
}
