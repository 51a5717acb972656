package main

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/logtest"
	"github.com/rampart-dev/rampart/internal/store"
)

// TestKillAfterBanDoesNotReread kills the daemon with SIGKILL right after a
// ban is recorded: the position of the log is saved with the ban, so the
// restarted daemon does not read the lines that caused it again (they
// would count again, and for a ban the engine no longer held, ban again).
func TestKillAfterBanDoesNotReread(t *testing.T) {
	bin := rampartBinary(t)
	dir := t.TempDir()
	cfgPath, logPath, sock := dryRunConfig(t, dir)
	os.WriteFile(logPath, nil, 0o644)
	c := daemon.NewClient(sock)
	start := func() *proc {
		p := &proc{out: &logtest.Buffer{}, done: make(chan error, 1)}
		p.cmd = exec.Command(bin, "run", "--config", cfgPath)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.done <- p.cmd.Wait() }()
		t.Cleanup(func() { p.stop(t) })
		// A new log is followed from its end: wait until the follower has
		// it open (a line no filter matches is read) before writing.
		waitUntil(t, 10*time.Second, "daemon reading", func() bool {
			appendLines(t, logPath, time.Now().Format(time.Stamp)+" srv CRON[9]: pam_unix(cron:session): session closed for user root")
			st, err := c.Status(context.Background())
			return err == nil && len(st.Sources) == 1 && st.Sources[0].Lines > 0
		}, p)
		return p
	}
	p := start()
	// Lines the daemon reads and saves the position of, as it would have
	// long before the crash.
	appendLines(t, logPath, failures(1, netip.MustParseAddr("192.0.2.50"), 10)...)
	waitUntil(t, 10*time.Second, "first line", func() bool {
		st, err := c.Status(context.Background())
		return err == nil && st.Engine.Events == 1
	}, p)
	// The periodic save has saved a position by now.
	waitUntil(t, 10*time.Second, "position saved", func() bool {
		st, err := store.Open(context.Background(), filepath.Join(dir, "state", "rampart.db"), store.WithoutQuickCheck())
		if err != nil {
			return false
		}
		defer st.Close()
		_, ok, err := st.LoadPosition(context.Background(), "file:"+logPath)
		return err == nil && ok
	}, p)
	appendLines(t, logPath, failures(3, netip.MustParseAddr("198.51.100.7"), 100)...)
	// Status takes a ban's reason from the store: with one, it is recorded.
	waitUntil(t, 10*time.Second, "ban recorded", func() bool {
		st, err := c.Status(context.Background())
		return err == nil && len(st.Active) == 1 && st.Active[0].Reason != ""
	}, p)
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	first := p.out.String()

	p = start()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Engine.Events != 0 || len(st.Active) != 1 {
		t.Fatalf("after kill -9: %d events read again (want 0), active %+v\nfirst run:\n%s\nsecond run:\n%s", st.Engine.Events, st.Active, first, p.out)
	}
}
