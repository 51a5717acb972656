package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/logtest"
)

// harness runs a Daemon in-process with the log-only enforcer, following a
// log file in a temp dir.
type harness struct {
	t       *testing.T
	dir     string
	logPath string
	cfgPath string
	client  *Client
	cancel  context.CancelFunc
	done    chan error
	hup     chan os.Signal
	logs    *logtest.Buffer
	d       *Daemon
}

func writeConfig(t *testing.T, dir, logPath string, maxretry int, extra ...string) string {
	t.Helper()
	return writeFile(t, filepath.Join(dir, "rampart.toml"), strings.Join(extra, "\n")+configHead(dir)+fmt.Sprintf(`[jail.sshd]
filter = "sshd"
files = [%q]
maxretry = %d
bantime = "1h"
`, logPath, maxretry))
}

// configHead is a test daemon's configuration before its jails: state and
// socket in dir, the log firewall, no prefix bans.
func configHead(dir string) string {
	return fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q
[firewall]
backend = "log"
[prefixes]
enabled = false
`, filepath.Join(dir, "state"), filepath.Join(dir, "ctl.sock"))
}

// writeFile writes text to path and returns path.
func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func startHarness(t *testing.T, dir string, maxretry int, extra ...string) *harness {
	t.Helper()
	return startHarnessWith(t, dir, maxretry, nil, extra...)
}

// startHarnessWith is startHarness with options changed by opt (may be nil).
func startHarnessWith(t *testing.T, dir string, maxretry int, opt func(*Options), extra ...string) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, logPath: filepath.Join(dir, "auth.log"), done: make(chan error, 1), hup: make(chan os.Signal, 1), logs: &logtest.Buffer{}}
	if _, err := os.Stat(h.logPath); err != nil {
		os.WriteFile(h.logPath, nil, 0o644)
	}
	h.cfgPath = writeConfig(t, dir, h.logPath, maxretry, extra...)
	h.start(opt)
	// A new log is followed from its end: wait until the follower reads
	// (a line no filter matches) before the test writes its own lines.
	deadline := time.Now().Add(10 * time.Second)
	for {
		appendLine(t, h.logPath, time.Now().Format(time.Stamp)+" srv CRON[9]: pam_unix(cron:session): session closed for user root")
		st, err := h.client.Status(context.Background())
		if err == nil && linesOf(st, h.logPath) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not reading its log\n%s", h.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h
}

// start runs a daemon on h.cfgPath, with options changed by opt (may be
// nil).
func (h *harness) start(opt func(*Options)) {
	t := h.t
	t.Helper()
	cfg, err := config.Load(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	o := Options{Config: cfg, Logger: log, Enforcer: firewall.NewLog(log), EnforcerName: "log",
		Reload: func() (*config.Config, error) { return config.Load(h.cfgPath) }}
	if opt != nil {
		opt(&o)
	}
	d, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	h.done = make(chan error, 1)
	// Closed before done is told: stop returns once the daemon has let go
	// of its store and socket, so the next one may take them.
	go func() { err := d.Run(ctx, h.hup); d.Close(); h.done <- err }()
	h.client = NewClient(cfg.Daemon.Socket)
	t.Cleanup(h.stop)
}

// linesOf returns the lines read from the source at path.
func linesOf(st Status, path string) uint64 {
	for _, s := range st.Sources {
		if s.Source == path {
			return s.Lines
		}
	}
	return 0
}

func appendLine(t *testing.T, path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, line)
	f.Close()
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		// Stopping writes what is pending, the engine's state and the
		// hourly aggregates: after TestReloadTorture's 98,000 failures
		// that took 71 ms, and 15 s under the race detector.
		h.t.Fatal("daemon did not stop")
	}
}

func (h *harness) waitFor(what string, cond func(Status) bool) Status {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := h.client.Status(context.Background())
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s (last error %v)\n%s", what, err, h.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) fail(n int, addr string) {
	h.t.Helper()
	f, err := os.OpenFile(h.logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	for i := range n {
		fmt.Fprintf(f, "%s srv sshd[%d]: Failed password for root from %s port %d ssh2\n", time.Now().Format(time.Stamp), 100+i, addr, 5000+i)
	}
}

func banned(st Status, ip string) bool {
	for _, b := range st.Active {
		if b.IP == ip {
			return true
		}
	}
	return false
}

func TestDaemonBanStatusUnbanReload(t *testing.T) {
	dir := t.TempDir()
	h := startHarness(t, dir, 3)
	h.fail(3, "198.51.100.7")
	st := h.waitFor("ban", func(st Status) bool { return banned(st, "198.51.100.7") })
	if st.Jails[0].Banned != 1 || st.Engine.Events != 3 {
		t.Fatalf("status = %+v", st)
	}
	ctx := context.Background()
	if _, err := h.client.Ban(ctx, BanRequest{IP: "203.0.113.0/24", DurationS: 60, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Ban(ctx, BanRequest{IP: "127.0.0.1"}); err == nil || !strings.Contains(err.Error(), "allowlisted") {
		t.Fatalf("banning loopback: %v", err)
	}
	if _, err := h.client.Ban(ctx, BanRequest{IP: "not an address"}); err == nil {
		t.Fatal("bad address accepted")
	}
	if removed, err := h.client.Unban(ctx, "203.0.113.0/24"); err != nil || !removed {
		t.Fatalf("unban = %v, %v", removed, err)
	}
	if removed, err := h.client.Unban(ctx, "192.0.2.200"); err != nil || removed {
		t.Fatalf("unban of an address never banned = %v, %v", removed, err)
	}

	// Metrics on the control socket.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dir, "ctl.sock"))
	}}}
	resp, err := hc.Get("http://rampart/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"rampart_engine_tracked_keys_cap 1e+06", `rampart_jail_banned{jail="sshd"} 1`, "rampart_engine_events_total 3", `rampart_healthy{component="store"} 1`, `rampart_healthy{component="source ` + h.logPath + `"} 1`, "rampart_reload_failures_total 0"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}

	// SIGHUP with a new threshold: the ban stays, the new maxretry applies.
	writeConfig(t, dir, h.logPath, 2)
	h.hup <- os.Interrupt
	h.waitFor("reload", func(st Status) bool { return len(st.Jails) == 1 && st.Jails[0].MaxRetry == 2 })
	h.fail(2, "198.51.100.8")
	st = h.waitFor("ban under the reloaded config", func(st Status) bool { return banned(st, "198.51.100.8") })
	if !banned(st, "198.51.100.7") {
		t.Fatalf("reload dropped a ban: %+v", st.Active)
	}
	// A broken configuration is refused and the running one kept.
	os.WriteFile(h.cfgPath, []byte("[jail.sshd]\nmaxretries = 1\n"), 0o644)
	h.hup <- os.Interrupt
	h.waitFor("refused reload logged", func(Status) bool { return strings.Contains(h.logs.String(), "keeping the running configuration") })
	if st := h.waitFor("status", func(Status) bool { return true }); st.Jails[0].MaxRetry != 2 {
		t.Fatalf("bad config applied: %+v", st.Jails)
	}
	writeConfig(t, dir, h.logPath, 2)

	// Restart: bans come back from the store, the log is not read again.
	h.stop()
	h2 := startHarness(t, dir, 2)
	defer func() {
		if t.Failed() {
			t.Logf("first run's log:\n%s", h.logs)
		}
	}()
	st = h2.waitFor("restored", func(st Status) bool { return banned(st, "198.51.100.7") && banned(st, "198.51.100.8") })
	if st.Engine.Events != 0 {
		t.Fatalf("old lines read again after restart: %d events", st.Engine.Events)
	}
}

func TestDaemonSurvivesCorruptDatabase(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o700)
	os.WriteFile(filepath.Join(state, "rampart.db"), []byte("this is not a database, just garbage bytes"), 0o600)
	h := startHarness(t, dir, 3)
	h.fail(3, "198.51.100.9")
	h.waitFor("ban with a fresh database", func(st Status) bool { return banned(st, "198.51.100.9") })
	if !strings.Contains(h.logs.String(), "database corrupt; moved aside") {
		t.Fatalf("corruption not reported:\n%s", h.logs)
	}
	matches, _ := filepath.Glob(filepath.Join(state, "rampart.db.*"))
	if len(matches) == 0 {
		t.Fatal("corrupt database not kept aside")
	}
}

func TestDaemonPolicyServers(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "pf.sock")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dovecotAddr := l.Addr().String()
	l.Close()
	t.Setenv("RAMPART_DOVECOT_AUTH", "Basic dGVzdDp0ZXN0")
	h := startHarness(t, dir, 3,
		fmt.Sprintf("[postfix_policy]\nlisten = \"unix:%s\"\njail = \"sshd\"", sock),
		fmt.Sprintf("[dovecot_policy]\nlisten = %q\njail = \"sshd\"", dovecotAddr))
	h.fail(3, "198.51.100.7")
	h.fail(1, "198.51.100.8")
	h.waitFor("ban", func(st Status) bool { return banned(st, "198.51.100.7") && st.Engine.Events == 4 })

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	ask := func(addr string) (string, time.Duration) {
		start := time.Now()
		fmt.Fprintf(c, "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=%s\nrecipient=a@example.org\n\n", addr)
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		br.ReadString('\n')
		return strings.TrimSpace(line), time.Since(start)
	}
	if got, _ := ask("198.51.100.7"); got != "action=REJECT Access denied" {
		t.Fatalf("banned client: %q", got)
	}
	if got, took := ask("198.51.100.8"); got != "action=DUNNO" || took < 900*time.Millisecond {
		t.Fatalf("client with one failure: %q after %v, want DUNNO after the 1s tarpit", got, took)
	}
	if got, took := ask("192.0.2.55"); got != "action=DUNNO" || took > 500*time.Millisecond {
		t.Fatalf("fresh client: %q after %v", got, took)
	}

	post := func(cmd, body string) string {
		req, _ := http.NewRequest(http.MethodPost, "http://"+dovecotAddr+"/?command="+cmd, strings.NewReader(body))
		req.Header.Set("Authorization", "Basic dGVzdDp0ZXN0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	for range 3 {
		post("report", `{"login":"x","remote":"203.0.113.4","success":false}`)
	}
	h.waitFor("ban from Dovecot reports", func(st Status) bool { return banned(st, "203.0.113.4") })
	if got := post("allow", `{"login":"x","remote":"203.0.113.4"}`); got != `{"status":-1,"msg":""}` {
		t.Fatalf("dovecot allow for a banned client: %s", got)
	}
	st := h.waitFor("status", func(Status) bool { return true })
	if st.Policy == nil || st.Policy.Postfix.Requests != 3 || st.Policy.Dovecot.Reports != 3 {
		t.Fatalf("policy status %+v", st.Policy)
	}
}
