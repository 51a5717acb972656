package daemon

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

func TestLiveFailuresCountOnce(t *testing.T) {
	var lf liveFailures
	a := netip.MustParseAddr("192.0.2.7")
	t0 := time.Now()
	logged := func(jail string, kind event.Kind, at time.Duration) bool {
		return lf.absorb(event.Event{Jail: jail, Kind: kind, Addr: a}, t0.Add(at))
	}
	lf.reported("dovecot", a, t0)
	lf.reported("dovecot", a, t0.Add(time.Second))
	switch {
	case logged("postfix", event.AuthFailure, 2*time.Second):
		t.Fatal("a credit of jail dovecot absorbed a failure of jail postfix")
	case logged("dovecot", event.Probe, 2*time.Second):
		t.Fatal("a credit absorbed a probe, which no policy server reports")
	case !logged("dovecot", event.AuthFailure, 2*time.Second), !logged("dovecot", event.UnknownUser, 3*time.Second):
		t.Fatal("a reported failure counted again from the log")
	case logged("dovecot", event.AuthFailure, 4*time.Second):
		t.Fatal("a third log failure absorbed by two reports")
	}
	lf.reported("dovecot", a, t0)
	if logged("dovecot", event.AuthFailure, creditWindow+time.Minute) {
		t.Fatal("a credit outlived its window")
	}
	if n := lf.absorbed.Load(); n != 2 {
		t.Fatalf("absorbed %d, want 2", n)
	}
}

// TestDaemonPolicyReportAndLogCountOnce: a failure Dovecot reports to the
// policy server and then logs counts once.
func TestDaemonPolicyReportAndLogCountOnce(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	h := startHarness(t, dir, 3, fmt.Sprintf("[dovecot_policy]\nlisten = %q\njail = \"sshd\"", addr))
	secret := readSecret(t, dir)
	report := func(remote string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/?command=report",
			strings.NewReader(fmt.Sprintf(`{"login":"root","remote":%q,"success":false}`, remote)))
		req.Header.Set("Authorization", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("report: %s", resp.Status)
		}
	}
	// Two failures, reported live and then logged: two, not four (maxretry 3).
	report("198.51.100.7")
	report("198.51.100.7")
	h.fail(2, "198.51.100.7")
	h.fail(1, "198.51.100.99") // a line to wait for: the two before it are read
	st := h.waitFor("log read", func(st Status) bool { return st.Policy != nil && st.Engine.Events >= 3 })
	if banned(st, "198.51.100.7") || st.Policy.LogDuplicates != 2 {
		t.Fatalf("reported and logged failures counted twice: active %+v, duplicates %d", st.Active, st.Policy.LogDuplicates)
	}
	// A failure only the log knows of (Dovecot failed open) still counts.
	h.fail(1, "198.51.100.7")
	h.waitFor("ban", func(st Status) bool { return banned(st, "198.51.100.7") })
}

// TestPipelineFlagsEnumeration: the daemon's engine flags a client that
// probes unknown recipients, so that the Postfix policy can blind it.
func TestPipelineFlagsEnumeration(t *testing.T) {
	p := newTestPipeline(t, parseConfig(t, "[jail.postfix]\nfilter = \"postfix\"\nfiles = [\"/var/log/mail.log\"]\n"))
	a, now := netip.MustParseAddr("192.0.2.9"), time.Now()
	for i := range 3 {
		p.Engine.Observe(event.Event{Time: now, Service: "postfix", Kind: event.RecipientUnknown, Addr: a, User: fmt.Sprintf("nobody%d@example.org", i), Jail: "postfix"})
	}
	if as := p.Engine.Assess(a, "", now); !as.Enumerating {
		t.Fatalf("three unknown recipients, not flagged: %+v", as)
	}
}

// readSecret reads the Dovecot shared secret a daemon made in the state
// directory, as the Authorization header value.
func readSecret(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "state", dovecotSecretFile))
	if err != nil {
		t.Fatal(err)
	}
	v, ok := strings.CutPrefix(string(b), "Authorization: ")
	if !ok || !strings.HasPrefix(v, "Basic ") || strings.ContainsAny(v, "\r\n") {
		t.Fatalf("secret file %q: want one line \"Authorization: Basic ...\" with no newline (Dovecot reads it as it is)", b)
	}
	return v
}

// TestDovecotSecretByDefault: with no auth_file, the daemon makes a secret
// in the state directory that only root can read, requires it, tells the
// operator the Dovecot setting that reads the file (never the secret), and
// keeps it across restarts.
func TestDovecotSecretByDefault(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf("[dovecot_policy]\nlisten = %q\njail = \"sshd\"", addr)
	h := startHarness(t, dir, 3, cfg)
	secret := readSecret(t, dir)
	path := filepath.Join(dir, "state", dovecotSecretFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode: %v %v", fi.Mode(), err)
	}
	ask := func(auth string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/?command=allow", strings.NewReader(`{"login":"x","remote":"192.0.2.1"}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := ask(""); c != http.StatusUnauthorized {
		t.Fatalf("no secret: %d", c)
	}
	if c := ask("Basic d3Jvbmc="); c != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", c)
	}
	if c := ask(secret); c != http.StatusOK {
		t.Fatalf("the secret: %d", c)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "auth_policy_server_api_header = <"+path) {
		t.Errorf("the log does not give the Dovecot setting:\n%s", logs)
	}
	if tok := strings.TrimPrefix(secret, "Basic "); strings.Contains(logs, tok) {
		t.Errorf("the secret is in the log")
	}
	h.stop()
	h = startHarness(t, dir, 3, cfg)
	if again := readSecret(t, dir); again != secret {
		t.Fatalf("a restart made a new secret")
	}
	if c := ask(secret); c != http.StatusOK {
		t.Fatalf("the secret after a restart: %d", c)
	}
	if strings.Contains(h.logs.String(), "made a shared secret") {
		t.Errorf("a restart claims to have made a secret")
	}
}

// freeAddr returns a loopback address:port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
