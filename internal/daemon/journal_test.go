package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/journaltest"
	"github.com/rampart-dev/rampart/internal/logtest"
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
