package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/journaltest"
	"github.com/rampart-dev/rampart/internal/logline"
	"github.com/rampart-dev/rampart/internal/logtest"
	"github.com/rampart-dev/rampart/internal/source"
)

// TestDaemonReadsJournalDirectory: a jail reading a journal directory
// (journal = { directory = ... }) bans an address whose failures sshd
// logged there, through the real journalctl, whether journald runs or not;
// restarted, it resumes after its saved cursor, so failures logged while
// it was down count, however many other entries came with them.
func TestDaemonReadsJournalDirectory(t *testing.T) {
	jf := journaltest.New(t)
	pid := 100
	// write appends sshd entries to the journal, as journald would.
	write := func(msgs ...string) {
		t.Helper()
		var es []journaltest.Entry
		for _, m := range msgs {
			pid++
			es = append(es, journaltest.Entry{Msg: m, Host: "srv", PID: pid})
		}
		jf.Append(es...)
	}
	failures := func(n int, addr string) []string {
		var ms []string
		for i := range n {
			ms = append(ms, fmt.Sprintf("Failed password for root from %s port %d ssh2", addr, 5000+i))
		}
		return ms
	}
	write("Server listening on 0.0.0.0 port 22.")
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, hup: make(chan os.Signal, 1), logs: &logtest.Buffer{}}
	h.cfgPath = writeFile(t, filepath.Join(dir, "rampart.toml"), configHead(dir)+fmt.Sprintf(`[jail.sshd]
filter = "sshd"
journal = { directory = %q, identifiers = ["sshd"] }
maxretry = 3
bantime = "1h"
`, jf.Dir()))
	source := "journald -t sshd in " + jf.Dir()
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

// TestDovecotJournalSelection: the default dovecot jail reads Dovecot's own
// lines (identifier "dovecot", from its log process) and what PAM writes
// in Dovecot's auth worker under that process's name (Debian's default
// passdb), by Dovecot's unit; not other units' "auth" lines.
func TestDovecotJournalSelection(t *testing.T) {
	jf := journaltest.New(t)
	jf.Append(journaltest.Entry{Msg: "old", Time: time.Now().Add(-time.Hour)})
	src := &source.Journal{Matches: config.Default().Jails["dovecot"].Journal.Matches, Args: []string{"--file=" + jf.Path},
		AfterCursor: jf.LastCursor(), MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	lines := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.Run(ctx, func(l logline.Line) { lines <- l.Program + ": " + l.Message })
	}()
	t.Cleanup(func() { cancel(); <-done })
	jf.Append(
		journaltest.Entry{Msg: "imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<erin>, method=PLAIN, rip=203.0.113.10, lip=192.0.2.1, session=<x>", Ident: "dovecot", Unit: "dovecot.service"},
		journaltest.Entry{Msg: "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=erin rhost=203.0.113.10  user=erin", Ident: "auth", Unit: "dovecot.service"},
		journaltest.Entry{Msg: "another unit's auth", Ident: "auth", Unit: "other.service"},
		journaltest.Entry{Msg: "Dovecot outside systemd's units", Ident: "dovecot", Unit: "init.scope"},
	)
	want := []string{
		"dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<erin>, method=PLAIN, rip=203.0.113.10, lip=192.0.2.1, session=<x>",
		"auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=erin rhost=203.0.113.10  user=erin",
		"dovecot: Dovecot outside systemd's units",
	}
	for i, w := range want {
		select {
		case got := <-lines:
			if got != w {
				t.Fatalf("line %d: %q, want %q", i, got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("line %d: nothing read, want %q", i, w)
		}
	}
}
