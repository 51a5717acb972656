package source

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/logline"
	"github.com/rampart-dev/rampart/internal/logtest"
)

// waitTimeout bounds every wait for a condition; generous, as CI machines
// can be slow, and only reached when a test fails.
const waitTimeout = 20 * time.Second

// collector gathers emitted Lines and lets a test wait for a condition on
// them.
type collector struct {
	mu      sync.Mutex
	lines   []logline.Line
	changed chan struct{} // closed and replaced on every emit
}

func newCollector() *collector { return &collector{changed: make(chan struct{})} }

func (c *collector) emit(l logline.Line) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, l)
	close(c.changed)
	c.changed = make(chan struct{})
}

// snapshot returns the lines so far and a channel closed at the next emit.
func (c *collector) snapshot() ([]logline.Line, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]logline.Line(nil), c.lines...), c.changed
}

func (c *collector) messages() []string {
	ls, _ := c.snapshot()
	m := make([]string, len(ls))
	for i, l := range ls {
		m[i] = l.Message
	}
	return m
}

// waitLines waits until cond holds for the lines emitted so far.
func (c *collector) waitLines(t testing.TB, what string, cond func([]logline.Line) bool) []logline.Line {
	t.Helper()
	ls, err := c.await(what, cond)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// await is waitLines for goroutines other than the test's: it returns an
// error rather than failing the test.
func (c *collector) await(what string, cond func([]logline.Line) bool) ([]logline.Line, error) {
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		ls, changed := c.snapshot()
		if cond(ls) {
			return ls, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return ls, fmt.Errorf("timed out waiting for %s; have %d lines, last %q", what, len(ls), tail(messagesOf(ls), 10))
		}
	}
}

// waitCount waits for at least n lines.
func (c *collector) waitCount(t testing.TB, n int) []logline.Line {
	t.Helper()
	return c.waitLines(t, "lines", func(ls []logline.Line) bool { return len(ls) >= n })
}

func messagesOf(ls []logline.Line) []string {
	m := make([]string, len(ls))
	for i, l := range ls {
		m[i] = l.Message
	}
	return m
}

func tail(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitFor waits until cond holds, checking it after every tick of a short
// ticker: for conditions no channel announces (counters, files).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// start runs src in a goroutine until the test ends (or stop is called),
// and checks that Run returns nil promptly once cancelled.
func start(t testing.TB, src Source, emit func(logline.Line)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, emit) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func testLogger(buf *logtest.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
