package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/store"
)

// TestDaemonPrunesHistory: the hourly pruning keeps a ban's history entry
// while it is younger than daemon.history_retention (90 days by default)
// and deletes it after.
func TestDaemonPrunesHistory(t *testing.T) {
	h := startHarness(t, t.TempDir(), 3)
	ctx := context.Background()
	entries := func() int {
		t.Helper()
		hs, err := h.d.store.History(ctx, store.HistoryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(hs)
	}
	h.fail(3, "192.0.2.7")
	deadline := time.Now().Add(10 * time.Second)
	for entries() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("ban never recorded\n%s", h.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	now := time.Now()
	h.d.pruneDecisions(ctx, now.Add(89*24*time.Hour))
	if n := entries(); n != 1 {
		t.Errorf("after pruning at 89 days: %d entries, want 1", n)
	}
	h.d.pruneDecisions(ctx, now.Add(91*24*time.Hour))
	if n := entries(); n != 0 {
		t.Errorf("after pruning at 91 days: %d entries, want 0", n)
	}
}
