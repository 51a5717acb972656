package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/abuse"
	"github.com/rampart-dev/rampart/internal/httpout"
	"github.com/rampart-dev/rampart/internal/store"
)

// receiver records what a service was sent: webhook bodies whose
// signature checks, or AbuseIPDB forms that carry the key.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	hooks []abuse.WebhookBody
	forms []url.Values
	bad   int
}

func newReceiver(t *testing.T, secret, key string) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		switch req.URL.Path {
		case "/hook":
			var b abuse.WebhookBody
			if httpout.Verify([]byte(secret), req.Header.Get(httpout.SignatureHeader), body, time.Now(), time.Minute) != nil || json.Unmarshal(body, &b) != nil {
				r.bad++
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			r.hooks = append(r.hooks, b)
			w.WriteHeader(http.StatusNoContent)
		case "/api/v2/report":
			v, err := url.ParseQuery(string(body))
			if req.Header.Get("Key") != key || err != nil {
				r.bad++
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			r.forms = append(r.forms, v)
			fmt.Fprintf(w, `{"data":{"ipAddress":%q,"abuseConfidenceScore":100}}`, v.Get("ip"))
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() ([]abuse.WebhookBody, []url.Values, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]abuse.WebhookBody(nil), r.hooks...), append([]url.Values(nil), r.forms...), r.bad
}

// TestDaemonReportsBans: a ban reaches the webhook at once (mode send)
// and waits for review at AbuseIPDB (its own mode review) until `rampart
// abuse approve` through the control socket; status counts both; no
// secret shows in the log.
func TestDaemonReportsBans(t *testing.T) {
	dir := t.TempDir()
	const hookSecret, apiKey = "hook-secret-5f3a", "abuseipdb-key-9c1e"
	secretFile, keyFile := filepath.Join(dir, "hook.secret"), filepath.Join(dir, "abuseipdb.key")
	os.WriteFile(secretFile, []byte(hookSecret+"\n"), 0o600)
	os.WriteFile(keyFile, []byte(apiKey+"\n"), 0o600)
	recv := newReceiver(t, hookSecret, apiKey)
	h := startHarness(t, dir, 3, fmt.Sprintf(`
[reporting]
mode = "send"
[reporting.webhook]
enabled = true
url = %q
secret_file = %q
[reporting.abuseipdb]
enabled = true
mode = "review"
url = %q
key_file = %q
`, recv.URL+"/hook", secretFile, recv.URL+"/api/v2/report", keyFile))
	h.fail(3, "203.0.113.50")
	st := h.waitFor("the ban reported to the webhook", func(st Status) bool {
		return st.Reporting != nil && len(st.Reporting.Reporters) == 2 && st.Reporting.Reporters[1].Sent == 1 && st.Reporting.Reporters[0].Review == 1
	})
	if r := st.Reporting.Reporters; r[0].Name != "abuseipdb" || r[0].Mode != "review" || r[1].Name != "webhook" || r[1].Mode != "send" {
		t.Errorf("reporters %+v", r)
	}
	hooks, forms, bad := recv.got()
	if len(hooks) != 1 || hooks[0].Kind != abuse.KindAttack || hooks[0].Subject.Addr != "203.0.113.50" || hooks[0].Subject.Jail != "sshd" || len(forms) != 0 || bad != 0 {
		t.Fatalf("received hooks %+v forms %v bad %d", hooks, forms, bad)
	}
	ctx := context.Background()
	held, err := h.client.AbuseReports(ctx, []string{store.ReportReview}, "", 0)
	if err != nil || len(held) != 1 || held[0].Reporter != "abuseipdb" || held[0].Target != "203.0.113.50" {
		t.Fatalf("held %+v, %v", held, err)
	}
	one, err := h.client.AbuseReport(ctx, held[0].ID)
	if err != nil || !strings.Contains(one.Render, "ip=203.0.113.50") || strings.Contains(one.Render, apiKey) {
		t.Fatalf("report %+v, %v", one, err)
	}
	changed, err := h.client.ReviewReports(ctx, ReviewRequest{All: true, Approve: true})
	if err != nil || len(changed) != 1 {
		t.Fatalf("approved %v, %v", changed, err)
	}
	h.waitFor("the approved report sent", func(st Status) bool { return st.Reporting.Reporters[0].Sent == 1 })
	if _, forms, _ := recv.got(); len(forms) != 1 || forms[0].Get("ip") != "203.0.113.50" || forms[0].Get("categories") != "18,22" {
		t.Fatalf("AbuseIPDB got %v", forms)
	}
	if logs := h.logs.String(); strings.Contains(logs, apiKey) || strings.Contains(logs, hookSecret) {
		t.Error("a secret is in the log")
	}
}
