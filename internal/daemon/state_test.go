package daemon

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/store"
)

// A restart does not reset the defence: failures counted before it still
// count after it (the 5th after the restart bans), and no line read before
// it is read and counted again.
func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := startHarness(t, dir, 5)
	h.fail(4, "198.51.100.7")
	h.waitFor("4 failures", func(st Status) bool { return st.Engine.Events == 4 })
	h.stop()

	h = startHarness(t, dir, 5)
	st := h.waitFor("restart", func(Status) bool { return true })
	if st.Engine.Events != 0 || banned(st, "198.51.100.7") {
		t.Fatalf("after the restart: %d events read again (want 0), banned %v\n%s", st.Engine.Events, banned(st, "198.51.100.7"), h.logs)
	}
	h.fail(1, "198.51.100.7")
	h.waitFor("the 5th failure bans", func(st Status) bool { return banned(st, "198.51.100.7") })
}

// A snapshot the engine cannot read (another version's) is left alone:
// the daemon starts, counting afresh.
func TestStateUnreadable(t *testing.T) {
	dir := t.TempDir()
	h := startHarness(t, dir, 5)
	h.fail(4, "198.51.100.7")
	h.waitFor("4 failures", func(st Status) bool { return st.Engine.Events == 4 })
	h.stop()
	st, err := store.Open(t.Context(), filepath.Join(dir, "state", "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveSnapshot(t.Context(), []byte("RPTENG from the future"), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	st.Close()

	h = startHarness(t, dir, 5)
	h.fail(1, "198.51.100.7")
	h.fail(4, "198.51.100.8")
	h.waitFor("a fresh count", func(st Status) bool { return st.Engine.Events == 5 && !banned(st, "198.51.100.7") })
	if !strings.Contains(h.logs.String(), "counting afresh") {
		t.Errorf("nothing said about the unreadable state:\n%s", h.logs)
	}
}

// A line read late counts while any scenario's window still holds it (the
// slow scenario's 12 hours), not only within the jails' findtime; an older
// one is stale.
func TestLateLinesCount(t *testing.T) {
	h := startHarness(t, t.TempDir(), 5)
	for _, age := range []time.Duration{2 * time.Hour, 11 * time.Hour, 13 * time.Hour} {
		appendLine(t, h.logPath, time.Now().Add(-age).Format(time.Stamp)+" srv sshd[7]: Failed password for root from 198.51.100.9 port 22 ssh2")
	}
	// A status reads the engine's counts and the sources' apart, so the
	// stale line may show before the engine's count of the line before it.
	st := h.waitFor("three lines", func(st Status) bool {
		for _, s := range st.Sources {
			if s.Stale == 1 && st.Engine.Events >= 2 {
				return true
			}
		}
		return false
	})
	if st.Engine.Events != 2 {
		t.Fatalf("%d events from lines 2h and 11h old (want 2; the 13h one stale)", st.Engine.Events)
	}
}
