package daemon

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/httpout"
)

// TestDaemonActions: a ban and its lifting by hand reach a signed
// webhook with a templated body, a program run with its argument vector
// and an SQLite table; an action that hangs holds up neither the bans
// nor the other actions: its overflow is dropped and counted in status.
func TestDaemonActions(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var bodies []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if httpout.Verify([]byte("act-secret"), r.Header.Get(httpout.SignatureHeader), b, time.Now(), time.Minute) != nil || json.Unmarshal(b, &m) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
	}))
	defer hook.Close()
	hang := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer stuck.Close()
	defer close(hang)
	secretFile := filepath.Join(dir, "act.secret")
	os.WriteFile(secretFile, []byte("act-secret"), 0o600)
	script, out, db := filepath.Join(dir, "on-ban.sh"), filepath.Join(dir, "exec.out"), filepath.Join(dir, "events.db")
	os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s %s %s\\n' \"$1\" \"$2\" \"$RAMPART_JAIL\" >> "+out+"\n"), 0o755)
	reports := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer reports.Close()
	h := startHarness(t, dir, 3, fmt.Sprintf(`
[reporting]
mode = "send"
[reporting.webhook]
enabled = true
url = %q
secret_file = %q

[[action]]
name = "chat"
type = "webhook"
on = ["ban", "unban"]
jails = ["sshd"]
url = %q
secret_file = %q
template = '{"text": "{{.Type}} {{.IP}} ({{.Jail}}): {{.Reason}}"}'

[[action]]
name = "script"
type = "exec"
on = ["ban", "unban"]
command = [%q, "{{.Type}}", "{{.IP}}"]

[[action]]
name = "log-db"
type = "sql"
on = ["ban", "unban", "trap", "report"]
driver = "sqlite"
dsn = %q

[[action]]
name = "stuck"
type = "webhook"
on = ["ban"]
queue = 2
timeout = "1m"
url = %q
`, reports.URL, secretFile, hook.URL, secretFile, script, db, stuck.URL))
	h.fail(3, "203.0.113.60")
	h.waitFor("the ban", func(st Status) bool { return banned(st, "203.0.113.60") })
	ctx := context.Background()
	for i := range 10 {
		if _, err := h.client.Ban(ctx, BanRequest{IP: fmt.Sprintf("198.51.100.%d", i+1), Jail: "sshd", DurationS: 3600}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.client.Unban(ctx, "203.0.113.60"); err != nil {
		t.Fatal(err)
	}
	st := h.waitFor("the actions done", func(st Status) bool {
		done := map[string]uint64{}
		for _, a := range st.Actions {
			done[a.Name] = a.Done
		}
		// log-db also takes the report of the jail's ban (bans by hand
		// are not reported).
		return done["chat"] == 12 && done["script"] == 12 && done["log-db"] == 13
	})
	if len(st.Active) != 10 {
		t.Errorf("%d bans active; the stuck action held some up", len(st.Active))
	}
	for _, a := range st.Actions {
		if a.Name == "stuck" && (a.Dropped < 8 || a.Queued+a.Dropped != 11 || a.Done != 0) {
			t.Errorf("stuck action: %+v", a)
		}
		if a.Name != "stuck" && (a.Dropped != 0 || a.Failed != 0) {
			t.Errorf("action %+v", a)
		}
	}
	mu.Lock()
	first, last := bodies[0]["text"], bodies[len(bodies)-1]["text"]
	mu.Unlock()
	if !strings.HasPrefix(first.(string), "ban 203.0.113.60 (sshd): 3 failures within") || last != "unban 203.0.113.60 (sshd): unbanned by hand" {
		t.Errorf("webhook texts %q ... %q", first, last)
	}
	lines, _ := os.ReadFile(out)
	if !strings.HasPrefix(string(lines), "ban 203.0.113.60 sshd\n") || !strings.HasSuffix(string(lines), "unban 203.0.113.60 sshd\n") {
		t.Errorf("exec wrote:\n%s", lines)
	}
	conn, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var bans, unbans int
	var reporter, kind, target string
	conn.QueryRow(`SELECT count(*) FROM rampart_events WHERE type = 'ban'`).Scan(&bans)
	conn.QueryRow(`SELECT count(*) FROM rampart_events WHERE type = 'unban' AND ip = '203.0.113.60'`).Scan(&unbans)
	conn.QueryRow(`SELECT reporter, kind, target FROM rampart_events WHERE type = 'report'`).Scan(&reporter, &kind, &target)
	if bans != 11 || unbans != 1 || reporter != "webhook" || kind != "attack" || target != "203.0.113.60" {
		t.Errorf("SQL rows: %d bans, %d unbans, report %q %q %q", bans, unbans, reporter, kind, target)
	}
	if strings.Contains(h.logs.String(), "act-secret") {
		t.Error("the webhook secret is in the log")
	}
}

// TestReloadWarnsRestartOnly: a reload leaves [reporting] and the actions
// as they were started, and says so.
func TestReloadWarnsRestartOnly(t *testing.T) {
	dir := t.TempDir()
	h := startHarness(t, dir, 3)
	writeConfig(t, dir, h.logPath, 3, "[[action]]\nname = \"a\"\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n[reporting]\nmode = \"send\"\n")
	if _, err := h.client.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "reload: [reporting] changes at the next restart") || !strings.Contains(logs, "reload: [[action]] changes at the next restart") ||
		strings.Contains(logs, "reload: [evidence]") {
		t.Errorf("log:\n%s", logs)
	}
}
