package daemon

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/logtest"
)

// journalRemote writes journal files from journal export format (Debian
// package systemd-journal-remote).
const journalRemote = "/lib/systemd/systemd-journal-remote"

// TestDaemonReadsJournalDirectory: a jail reading a journal directory
// (journal = { directory = ... }) bans an address whose failures sshd
// logged there, through the real journalctl, whether journald runs or not;
// restarted, it resumes after its saved cursor, so failures logged while
// it was down count, however many other entries came with them.
func TestDaemonReadsJournalDirectory(t *testing.T) {
	for _, b := range []string{"journalctl", journalRemote} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (Debian: systemd, systemd-journal-remote): %v", b, err)
		}
	}
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	if err := os.Mkdir(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	mono := 1000
	pid := 100
	// write appends sshd entries to the journal file, as journald would.
	write := func(msgs ...string) {
		t.Helper()
		var b bytes.Buffer
		for _, m := range msgs {
			mono += 1000
			pid++
			fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n", time.Now().UnixMicro(), mono)
			fmt.Fprintf(&b, "_HOSTNAME=srv\nSYSLOG_IDENTIFIER=sshd\n_PID=%d\nMESSAGE=%s\n\n", pid, m)
		}
		cmd := exec.Command(journalRemote, "-o", filepath.Join(jdir, "sshd.journal"), "-")
		cmd.Stdin = &b
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", journalRemote, err, out)
		}
	}
	failures := func(n int, addr string) []string {
		var ms []string
		for i := range n {
			ms = append(ms, fmt.Sprintf("Failed password for root from %s port %d ssh2", addr, 5000+i))
		}
		return ms
	}
	write("Server listening on 0.0.0.0 port 22.")
	h := &harness{t: t, dir: dir, hup: make(chan os.Signal, 1), logs: &logtest.Buffer{}, cfgPath: filepath.Join(dir, "rampart.toml")}
	cfg := fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q
[firewall]
backend = "log"
[prefixes]
enabled = false
[jail.sshd]
filter = "sshd"
journal = { directory = %q, identifiers = ["sshd"] }
maxretry = 3
bantime = "1h"
`, filepath.Join(dir, "state"), filepath.Join(dir, "ctl.sock"), jdir)
	if err := os.WriteFile(h.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	source := "journald -t sshd in " + jdir
	h.start(nil)
	// A journal with no saved cursor is read from its end: wait until
	// journalctl follows it before writing the failures.
	deadline := time.Now().Add(10 * time.Second)
	for {
		write("Connection closed by 192.0.2.1 port 22 [preauth]")
		st, err := h.client.Status(t.Context())
		if err == nil && linesOf(st, source) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not reading the journal\n%s", h.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	write(failures(3, "198.51.100.7")...)
	h.waitFor("ban from the journal", func(st Status) bool { return banned(st, "198.51.100.7") })
	h.stop()

	// Down: more entries than journalctl shows by default after a cursor
	// (ten), the failures last.
	var down []string
	for range 15 {
		down = append(down, "Connection closed by 192.0.2.1 port 22 [preauth]")
	}
	write(append(down, failures(3, "198.51.100.8")...)...)
	h.start(nil)
	h.waitFor("ban of failures logged while down", func(st Status) bool { return banned(st, "198.51.100.8") })
}
