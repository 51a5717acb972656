package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/logtest"
	"github.com/rampart-dev/rampart/internal/store"
)

// TestHealthComponents checks each component's state from what the daemon
// knows, and that each change is logged once.
func TestHealthComponents(t *testing.T) {
	logs := &logtest.Buffer{}
	d := &Daemon{cfg: &config.Config{}}
	d.book.log = slog.New(slog.NewTextHandler(logs, nil))
	dir := t.TempDir()
	db := filepath.Join(dir, "rampart.db")
	os.WriteFile(db, []byte("x"), 0o600)
	// Held open, as SQLite holds it: its inode number cannot be reused.
	if f, err := os.Open(db); err == nil {
		defer f.Close()
	}
	d.storeFile = statStore(db)
	missing := "missing"
	d.sources = []*runningSource{
		{plan: &sourcePlan{key: "file:/a", file: "/a"}, problem: func() string { return missing }},
		{plan: &sourcePlan{key: "syslog"}},
	}
	stopped := "syslog: socket closed"
	d.sources[1].stopped.Store(&stopped)
	d.cfg.Postfix.Listen = "unix:/x"

	states := func() map[string]string {
		m := map[string]string{}
		for _, h := range d.health(time.Now()) {
			m[h.Component] = h.State + " " + h.Detail
		}
		return m
	}
	tests := []struct {
		name  string
		setup func()
		want  map[string]string // component → state and a part of the detail
	}{
		{"nothing read", func() {}, map[string]string{
			"store": "ok", "firewall": "ok", "config": "ok",
			"source /a":              "degraded log file missing",
			"source syslog listener": "failed stopped: syslog: socket closed",
			"watching":               "failed nothing is being watched",
			"postfix policy server":  "ok",
		}},
		{"disk full, firewall failing, reload refused", func() {
			d.storeErr.note(fmt.Errorf("record: %w", store.ErrFull))
			d.enfErr.note(errors.New("applying decisions: netlink: no buffer space"))
			d.reloads.note(errors.New("rampart.toml:3: bad"), time.Now())
			missing = ""
			d.servers.Store("postfix policy server", errors.New("accept: too many open files"))
		}, map[string]string{
			"store":                 "degraded disk full",
			"firewall":              "degraded applying decisions: netlink",
			"config":                "degraded the last reload failed",
			"source /a":             "ok",
			"watching":              "",
			"postfix policy server": "failed stopped: accept: too many open files",
		}},
		{"corrupt", func() { d.storeErr.note(fmt.Errorf("x: %w", store.ErrCorrupt)) }, map[string]string{"store": "degraded database corrupt"}},
		{"deleted", func() { d.storeErr.note(nil); os.Remove(db) }, map[string]string{"store": "degraded database file " + db + " deleted while running"}},
		{"replaced", func() { os.WriteFile(db, []byte("y"), 0o600) }, map[string]string{"store": "degraded database file " + db + " replaced"}},
		{"recovered", func() {
			d.storeFile = statStore(db)
			d.enfErr.note(nil)
			d.reloads.note(nil, time.Now())
		}, map[string]string{"store": "ok", "firewall": "ok", "config": "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			got := states()
			for c, want := range tt.want {
				if want == "" {
					if _, ok := got[c]; ok {
						t.Errorf("%s: %q, want no such component", c, got[c])
					}
					continue
				}
				if !strings.HasPrefix(got[c], want) {
					t.Errorf("%s: %q, want %q…", c, got[c], want)
				}
			}
			// Checking again logs nothing new.
			before := logs.String()
			states()
			states()
			if after := logs.String(); after != before {
				t.Errorf("a second check logged again:\n%s", strings.TrimPrefix(after, before))
			}
		})
	}
	for _, want := range []string{`msg="health: store degraded"`, `msg="health: store ok again"`, `msg="health: watching failed"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs.String(), `msg="health: firewall degraded"`); n != 1 {
		t.Errorf("firewall degraded logged %d times:\n%s", n, logs)
	}
}

// TestHealthLogUnreadable follows a path that cannot be read as a log (a
// directory): the source is degraded and says why.
func TestHealthLogUnreadable(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "auth.log")
	os.Mkdir(logPath, 0o755)
	d, logs, stop := runDaemon(t, dir, logPath)
	defer stop()
	waitHealth(t, d, logs, "source "+logPath, func(h Health) bool { return h.State == HealthDegraded && strings.Contains(h.Detail, "is a directory") })
}

// TestHealthStoreDeleted removes the database under a running daemon.
func TestHealthStoreDeleted(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "auth.log")
	os.WriteFile(logPath, nil, 0o644)
	d, logs, stop := runDaemon(t, dir, logPath)
	defer stop()
	waitHealth(t, d, logs, "store", func(h Health) bool { return h.State == HealthOK })
	// Started: the file goes from under a running daemon, not one still
	// opening it.
	waitHealth(t, d, logs, "source "+logPath, func(h Health) bool { return h.State == HealthOK })
	os.Remove(filepath.Join(dir, "state", "rampart.db"))
	waitHealth(t, d, logs, "store", func(h Health) bool { return strings.Contains(h.Detail, "deleted while running") })
	if n := strings.Count(logs.String(), "health: store degraded"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, logs)
	}
}

// TestHealthStoreFull fills the file system under the state directory (a
// small tmpfs): a ban cannot be recorded, the store is degraded, and once
// there is room again the held-back ban is recorded and the store is ok.
func TestHealthStoreFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", state).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", state).Run() })
	h := startHarness(t, dir, 3)
	filler := filepath.Join(state, "filler")
	out, _ := exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=64k").CombinedOutput()
	if !strings.Contains(string(out), "No space left") {
		t.Fatalf("disk not full: %s", out)
	}
	h.fail(3, "198.51.100.7")
	st := h.waitFor("store degraded", func(st Status) bool {
		return banned(st, "198.51.100.7") && strings.HasPrefix(healthOf(st, "store").Detail, "disk full")
	})
	if st.Firewall.Applied != 1 {
		t.Fatalf("ban not applied while the disk is full: %+v", st.Firewall)
	}
	os.Remove(filler)
	h.waitFor("store ok again", func(st Status) bool { return healthOf(st, "store").State == HealthOK })
	if got := strings.Count(h.logs.String(), "health: store degraded"); got != 1 {
		t.Errorf("store degraded logged %d times", got)
	}
	h.stop()
	sdb, err := store.Open(context.Background(), filepath.Join(state, "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	active, err := sdb.ActiveDecisions(context.Background(), time.Now())
	if err != nil || len(active) != 1 {
		t.Fatalf("held-back ban not recorded after the disk had room: %v, %v", active, err)
	}
}

// runDaemon runs a daemon following logPath without waiting for it to read.
func runDaemon(t *testing.T, dir, logPath string) (*Daemon, *logtest.Buffer, func()) {
	t.Helper()
	cfg, err := config.Load(writeConfig(t, dir, logPath, 3))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, Options{Config: cfg, Logger: log, Enforcer: firewall.NewLog(log), EnforcerName: "log"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx, nil); d.Close() }()
	return d, logs, func() { cancel(); <-done }
}

// waitHealth waits until a component's health satisfies cond.
func waitHealth(t *testing.T, d *Daemon, logs *logtest.Buffer, component string, cond func(Health) bool) Health {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, h := range d.health(time.Now()) {
			if h.Component == component && cond(h) {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s's health; %+v\n%s", component, d.health(time.Now()), logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
