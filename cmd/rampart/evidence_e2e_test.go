package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/rampart-dev/rampart/internal/abuse"
	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/evidence"
	"github.com/rampart-dev/rampart/internal/httpout"
	"github.com/rampart-dev/rampart/internal/store"
	"github.com/rampart-dev/rampart/internal/trap"
	"github.com/rampart-dev/rampart/internal/trap/trapstore"
)

// TestTrapToWebhook is the evidence pipeline end to end: a spammer logs
// in to the trap's SMTP face over loopback with a common password and
// sends a real-world-shaped spam; the trap quarantines it in the store the
// running daemon uses; the daemon reads it, saves its indicators and
// reports the message to a webhook, whose signature checks and whose
// indicators are exactly the extractor's. `rampart evidence` and
// `rampart abuse` show the same.
func TestTrapToWebhook(t *testing.T) {
	dir := t.TempDir()
	const secret = "e2e-webhook-secret"
	secretFile := filepath.Join(dir, "hook.secret")
	os.WriteFile(secretFile, []byte(secret), 0o600)
	var mu sync.Mutex
	var got []abuse.WebhookBody
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := httpout.Verify([]byte(secret), r.Header.Get(httpout.SignatureHeader), body, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var b abuse.WebhookBody
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()

	stateDir, sock, logPath := filepath.Join(dir, "state"), filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "auth.log")
	os.WriteFile(logPath, nil, 0o644)
	cfgPath := filepath.Join(dir, "rampart.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q
[firewall]
backend = "log"
[jail.sshd]
files = [%q]
[reporting]
mode = "send"
[reporting.webhook]
enabled = true
url = %q
secret_file = %q
`, stateDir, sock, logPath, hook.URL+"/rampart", secretFile)), 0o644)
	runDaemonInProcess(t, cfgPath, func(o *daemon.Options) { o.EvidenceEvery = 50 * time.Millisecond })
	log := slog.New(slog.DiscardHandler)

	// The trap, keeping its quarantine in the daemon's database.
	st, err := store.Open(context.Background(), filepath.Join(stateDir, "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ts := trapstore.Store{Store: st}
	acc := trap.NewAccounts(trap.AccountsConfig{Addresses: 3, Max: 100, TTL: time.Hour, Passwords: trap.DefaultPasswords()}, ts, log)
	for i := range 3 {
		acc.Observe(event.Event{Kind: event.UnknownUser, User: "info@victim-corp.example", Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})})
	}
	srv := trap.NewServer(trap.Config{Hostname: "mail.victim-corp.example"}, acc, ts, log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l, trap.ListenerConfig{Port: 587, Auth: true})
	defer srv.Close()

	raw, err := os.ReadFile("../../internal/evidence/testdata/corpus/multipart-alternative.eml")
	if err != nil {
		t.Fatal(err)
	}
	rcpts := []string{"victim1@customer.example", "victim2@other.example"}
	c, err := smtp.Dial(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("bulk.spammer.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "info@victim-corp.example", "123456")); err != nil {
		t.Fatalf("AUTH with a common password: %v", err)
	}
	if err := c.SendMail("bounce-5521@bulk-mailer.example", rcpts, strings.NewReader(string(raw))); err != nil {
		t.Fatal(err)
	}
	c.Quit()

	var msg abuse.WebhookBody
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		for _, b := range got {
			if b.Kind == abuse.KindMessage {
				msg = b
			}
		}
		mu.Unlock()
		if msg.ID != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the webhook got no message report")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What the webhook got is what the extractor finds, recipients left
	// out ([reporting.webhook] recipients = false).
	env := evidence.Envelope{Client: netip.MustParseAddr("127.0.0.1"), Helo: "bulk.spammer.example",
		MailFrom: "bounce-5521@bulk-mailer.example", RcptTo: rcpts}
	r := evidence.Extract(raw, env, evidence.Options{})
	var want []store.Indicator
	for _, i := range r.Indicators(env) {
		if i.Kind != evidence.KindRecipient {
			want = append(want, store.Indicator(i))
		}
	}
	if !slices.Equal(msg.Subject.Indicators, want) {
		t.Errorf("webhook indicators\n got %v\nwant %v", msg.Subject.Indicators, want)
	}
	m := msg.Subject.Message
	if m == nil || m.Recipients != 2 || m.Port != 587 || m.Subject != "⚠ Your mailbox is almost full" || len(m.URLs) != 4 {
		t.Fatalf("message %+v", m)
	}
	if slices.ContainsFunc(msg.Subject.Indicators, func(i store.Indicator) bool { return strings.Contains(i.Value, "victim1") }) {
		t.Error("a recipient reached the webhook")
	}

	// The command line shows the same.
	code, out, errs := runCLI("evidence", "--socket", sock, "--kind", "url", "--json")
	var inds []store.IndicatorCount
	if code != 0 || json.Unmarshal([]byte(out), &inds) != nil || len(inds) != 4 {
		t.Fatalf("rampart evidence: exit %d, %d url indicators\n%s%s", code, len(inds), out, errs)
	}
	code, out, errs = runCLI("evidence", "show", fmt.Sprint(m.ID), "--socket", sock)
	if code != 0 || !strings.Contains(out, "Links (never opened):") || !strings.Contains(out, "https://mail-verify.secure-login.example.co.uk/owa/auth.php?id=7731&user=victim  (href,text)") {
		t.Fatalf("rampart evidence show: exit %d\n%s%s", code, out, errs)
	}
	// The reporter marks the report sent once the webhook has answered.
	waitUntil(t, 10*time.Second, "rampart abuse list to show the report sent", func() bool {
		code, out, _ = runCLI("abuse", "list", "--socket", sock, "--state", "sent")
		return code == 0 && strings.Contains(out, "webhook") && strings.Contains(out, "message")
	}, nil)
	code, out, errs = runCLI("abuse", "show", fmt.Sprint(msg.ID), "--socket", sock)
	if code != 0 || !strings.Contains(out, "What it sends:") || !strings.Contains(out, "X-Rampart-Delivery: report-") || strings.Contains(out, secret) {
		t.Fatalf("rampart abuse show: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI("status", "--socket", sock)
	if !strings.Contains(out, "evidence: 1 messages read") || !strings.Contains(out, "reporting webhook (send): 1 queued, 1 sent, 0 failed") {
		t.Fatalf("rampart status: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCLI("abuse", "approve", "--socket", sock); code != 2 || !strings.Contains(errs, "--all") {
		t.Fatalf("approve without IDs: exit %d %s", code, errs)
	}
	if code, out, _ := runCLI("abuse", "approve", "--all", "--socket", sock); code != 0 || out != "0 reports approved\n" {
		t.Fatalf("approve --all with nothing held: exit %d %q", code, out)
	}
}
