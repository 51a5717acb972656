package daemon

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

// The governor sets Go's memory limit to the floor, raises it to half
// again the live heap once that is larger, and puts the old limit back;
// with GOMEMLIMIT set it leaves the limit alone.
func TestHeapGovernor(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	g := newHeapGovernor()
	if got := debug.SetMemoryLimit(-1); got != governorFloor {
		t.Fatalf("limit %d, want the floor %d", got, governorFloor)
	}
	g.check()
	if got := debug.SetMemoryLimit(-1); got != governorFloor {
		t.Fatalf("small heap: limit %d, want the floor %d", got, governorFloor)
	}
	held := make([]byte, 160<<20) // pointer-free, like the engine's tables
	for i := range held {
		held[i] = byte(i)
	}
	runtime.GC()
	g.check()
	got := debug.SetMemoryLimit(-1)
	if got < 160<<20*3/2 || got > 200<<20*3/2 {
		t.Errorf("160 MiB live: limit %d MiB, want about 240", got>>20)
	}
	runtime.KeepAlive(held)
	g.release()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("after release: limit %d, want %d", got, before)
	}

	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(math.MaxInt64)
	g = newHeapGovernor()
	g.check()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set: the governor changed the limit to %d", got)
	}
	g.release()
	debug.SetMemoryLimit(before)
}
