package dovecot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/policy"
)

func newServer(t *testing.T) (*httptest.Server, *Handler, *engine.Engine, *[]event.Event) {
	t.Helper()
	cfg := engine.DefaultConfig(engine.Jail{Name: "dovecot", Services: []string{"dovecot"}, MaxRetry: 5, FindTime: 10 * time.Minute, BanTime: time.Hour})
	cfg.KnownGood.Grace = 0
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var good []event.Event
	h := &Handler{Judge: &policy.Judge{Engine: e, KnownGood: func(ev event.Event) { good = append(good, ev) }}, Auth: "Basic cmFtcGFydDpzZWNyZXQ="}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h, e, &good
}

func post(t *testing.T, url, auth, body string) (int, Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out Response
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, out
}

const auth = "Basic cmFtcGFydDpzZWNyZXQ="

func allowReq(login, remote string) string {
	return fmt.Sprintf(`{"login":%q,"pwhash":"a3f","remote":%q,"device_id":"","protocol":"imap","session_id":"x"}`, login, remote)
}

func reportReq(login, remote string, success bool) string {
	return fmt.Sprintf(`{"login":%q,"pwhash":"a3f","remote":%q,"device_id":"","protocol":"imap","session_id":"x","success":%v,"policy_reject":false}`, login, remote, success)
}

func TestAllowReportFlow(t *testing.T) {
	srv, h, _, good := newServer(t)
	allowURL, reportURL := srv.URL+"/?command=allow", srv.URL+"/?command=report"
	if code, r := post(t, allowURL, auth, allowReq("alice", "198.51.100.20")); code != 200 || r.Status != 0 {
		t.Fatalf("fresh client: %d %+v", code, r)
	}
	// Two typos, then success: known-good, forgiven, allowed at once.
	post(t, reportURL, auth, reportReq("alice", "198.51.100.20", false))
	if _, r := post(t, allowURL, auth, allowReq("alice", "198.51.100.20")); r.Status != 1 {
		t.Fatalf("after one failure: %+v, want a 1s delay", r)
	}
	post(t, reportURL, auth, reportReq("alice", "198.51.100.20", false))
	post(t, reportURL, auth, reportReq("alice", "198.51.100.20", true))
	if len(*good) != 1 || (*good)[0].Addr != netip.MustParseAddr("198.51.100.20") {
		t.Fatalf("known-good reports = %v", *good)
	}
	if _, r := post(t, allowURL, auth, allowReq("alice", "198.51.100.20")); r.Status != 0 {
		t.Fatalf("known-good client: %+v", r)
	}
	// A brute forcer: delays grow while its guesses are checked, up to the
	// fifth (maxretry), whose failure bans it; then it is rejected, with no
	// message, so that it sees a wrong password.
	var statuses []int
	var last Response
	for range 7 {
		_, last = post(t, allowURL, auth, allowReq("root", "203.0.113.9"))
		statuses = append(statuses, last.Status)
		post(t, reportURL, auth, reportReq("root", "203.0.113.9", false))
	}
	if fmt.Sprint(statuses) != "[0 1 2 4 8 -1 -1]" {
		t.Fatalf("statuses %v", statuses)
	}
	if last.Msg != "" {
		t.Fatalf("reject message %q: Dovecot would show it as [ALERT], unlike a wrong password", last.Msg)
	}
	if st := h.Stats(); st.Rejected != 2 || st.Delayed != 5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHotUserRefusedBeforePassword(t *testing.T) {
	srv, _, _, _ := newServer(t)
	reportURL, allowURL := srv.URL+"/?command=report", srv.URL+"/?command=allow"
	for i := range 5 {
		post(t, reportURL, auth, reportReq("info@example.org", fmt.Sprintf("10.%d.0.1", i), false))
	}
	if _, r := post(t, allowURL, auth, allowReq("info@example.org", "192.0.2.200")); r.Status != -1 || r.Msg != rejectMsg {
		t.Fatalf("sprayed user from a new address: %+v", r)
	}
	if _, r := post(t, allowURL, auth, allowReq("bob@example.org", "192.0.2.200")); r.Status != 0 {
		t.Fatalf("other user: %+v", r)
	}
}

func TestBadRequests(t *testing.T) {
	srv, h, _, _ := newServer(t)
	for _, tc := range []struct {
		url, auth, body string
		code            int
	}{
		{"/?command=allow", "", allowReq("a", "192.0.2.1"), 401},
		{"/?command=allow", "Basic wrong", allowReq("a", "192.0.2.1"), 401},
		{"/?command=allow", auth, `{"login":`, 400},
		{"/?command=allow", auth, `{"login":"a","remote":"not-an-ip"}`, 400},
		{"/?command=explode", auth, allowReq("a", "192.0.2.1"), 400},
		{"/?command=allow", auth, `{"login":"` + strings.Repeat("a", 70000) + `","remote":"192.0.2.1"}`, 400},
		{"/?key=1&command=report", auth, reportReq("a", "192.0.2.1", true), 200},
	} {
		code, _ := post(t, srv.URL+tc.url, tc.auth, tc.body)
		if code != tc.code {
			t.Errorf("%s %q: %d, want %d", tc.url, tc.body[:min(len(tc.body), 30)], code, tc.code)
		}
	}
	if r, _ := http.Get(srv.URL + "/?command=allow"); r.StatusCode != 405 {
		t.Errorf("GET: %d", r.StatusCode)
	}
	if st := h.Stats(); st.Bad != 4 || st.Unauthorized != 2 {
		t.Errorf("bad requests not counted: %+v", st)
	}
}

func reqFor(login, remote, protocol string, success *bool) string {
	s := fmt.Sprintf(`{"login":%q,"pwhash":"b7","remote":%q,"protocol":%q,"session_id":""`, login, remote, protocol)
	if success != nil {
		s += fmt.Sprintf(`,"success":%v,"policy_reject":false`, *success)
	}
	return s + "}"
}

// Dovecot asks twice for a login that succeeds, with the same JSON: before
// the password and after it. The second question is not a second delay,
// in the answer or in the counters.
func TestOneLoginOneDelay(t *testing.T) {
	srv, h, _, good := newServer(t)
	allowURL, reportURL := srv.URL+"/?command=allow", srv.URL+"/?command=report"
	no, yes := false, true
	post(t, reportURL, auth, reqFor("carol", "198.51.100.30", "imap", &no))
	if _, r := post(t, allowURL, auth, reqFor("carol", "198.51.100.30", "imap", nil)); r.Status != 1 {
		t.Fatalf("before the password: %+v, want the 1s tarpit", r)
	}
	if _, r := post(t, allowURL, auth, reqFor("carol", "198.51.100.30", "imap", nil)); r.Status != 0 {
		t.Fatalf("after the password: %+v, want no delay", r)
	}
	post(t, reportURL, auth, reqFor("carol", "198.51.100.30", "imap", &yes))
	if st := h.Stats(); st.Delayed != 1 {
		t.Fatalf("one delayed login counted %d times: %+v", st.Delayed, st)
	}
	if len(*good) != 1 {
		t.Fatalf("known-good reports %v", *good)
	}
	// Once reported, the same password again is a new login.
	post(t, reportURL, auth, reqFor("dave", "198.51.100.31", "imap", &no))
	for i := range 2 {
		if _, r := post(t, allowURL, auth, reqFor("dave", "198.51.100.31", "imap", nil)); r.Status == 0 {
			t.Fatalf("attempt %d: not delayed", i)
		}
		post(t, reportURL, auth, reqFor("dave", "198.51.100.31", "imap", &no))
	}
	if st := h.Stats(); st.Delayed != 3 {
		t.Fatalf("delayed %d, want 3: %+v", st.Delayed, st)
	}
}

// A login Postfix passes on (protocol smtp) is answered within Postfix's
// 10 seconds, Dovecot's own delays included: its failure delay (2s) and
// its per-address penalty, which Rampart follows from the reports.
func TestSMTPBudget(t *testing.T) {
	srv, h, _, _ := newServer(t)
	allowURL, reportURL := srv.URL+"/?command=allow", srv.URL+"/?command=report"
	no := false
	status := func(remote, protocol string) int {
		t.Helper()
		_, r := post(t, allowURL, auth, reqFor("erin", remote, protocol, nil))
		post(t, reportURL, auth, reqFor("erin", remote, protocol, &no)) // the outcome, as Dovecot reports it
		return r.Status
	}
	// Four failures known from elsewhere (the log), none through Dovecot:
	// no penalty; the tarpit says 8s, SMTP leaves 10-1-2 = 7.
	for range 4 {
		h.Judge.Report(event.Event{Service: "dovecot", Kind: event.AuthFailure, Addr: netip.MustParseAddr("203.0.113.40"), User: "erin"})
		h.Judge.Report(event.Event{Service: "dovecot", Kind: event.AuthFailure, Addr: netip.MustParseAddr("203.0.113.41"), User: "erin"})
	}
	if s := status("203.0.113.40", "imap"); s != 8 {
		t.Fatalf("imap: %d, want the 8s tarpit", s)
	}
	if s := status("203.0.113.41", "smtp"); s != 7 {
		t.Fatalf("smtp: %d, want 7 (10s budget - 1s margin - 2s failure delay)", s)
	}
	// A person's two typos through SMTP, then the right password: Dovecot
	// waits 4s, then 8s (penalty) before checking; Rampart keeps within
	// what is left.
	var got []int
	for range 3 {
		got = append(got, status("198.51.100.50", "smtp"))
	}
	if fmt.Sprint(got) != "[0 1 0]" {
		t.Fatalf("smtp statuses %v, want [0 1 0] (penalties 0, 4s, 8s)", got)
	}
	// A penalty older than 15s is gone in Dovecot too.
	h.penalties.failed(netip.MustParseAddr("2001:db8:1:2::9"), time.Now().Add(-16*time.Second))
	if d := h.penalties.delay(netip.MustParseAddr("2001:db8:1:ffff::1"), time.Now()); d != 0 {
		t.Fatalf("stale penalty %v", d)
	}
	h.penalties.failed(netip.MustParseAddr("2001:db8:1:2::9"), time.Now())
	if d := h.penalties.delay(netip.MustParseAddr("2001:db8:1:ffff::1"), time.Now()); d != 4*time.Second {
		t.Fatalf("penalty of the /48: %v, want 4s", d)
	}
	for range 5 {
		h.penalties.failed(netip.MustParseAddr("192.0.2.9"), time.Now())
	}
	if d := h.penalties.delay(netip.MustParseAddr("192.0.2.9"), time.Now()); d != 15*time.Second {
		t.Fatalf("penalty after 5 failures %v, want Dovecot's 15s cap", d)
	}
}

// Without the shared secret nothing reported proves a good client.
func TestNoAuthNoKnownGood(t *testing.T) {
	e, _ := engine.New(engine.DefaultConfig(engine.Jail{Name: "dovecot", Services: []string{"dovecot"}}))
	var good []event.Event
	h := &Handler{Judge: &policy.Judge{Engine: e, KnownGood: func(ev event.Event) { good = append(good, ev) }}}
	yes := true
	req := httptest.NewRequest(http.MethodPost, "/?command=report", strings.NewReader(reqFor("x", "192.0.2.1", "imap", &yes)))
	h.ServeHTTP(httptest.NewRecorder(), req)
	if len(good) != 0 {
		t.Fatalf("unauthenticated success marked known-good: %v", good)
	}
}

func FuzzDovecotRequest(f *testing.F) {
	f.Add(allowReq("alice", "198.51.100.20"))
	f.Add(reportReq("x", "::ffff:1.2.3.4", false))
	f.Add(`{"remote":"fe80::1%eth0","login":"\u0000"}`)
	e, _ := engine.New(engine.DefaultConfig(engine.Jail{Name: "dovecot", Services: []string{"dovecot"}}))
	h := &Handler{Judge: &policy.Judge{Engine: e}}
	f.Fuzz(func(t *testing.T, body string) {
		for _, cmd := range []string{"allow", "report"} {
			req := httptest.NewRequest(http.MethodPost, "/?command="+cmd, bytes.NewBufferString(body))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 && w.Code != 400 {
				t.Fatalf("status %d", w.Code)
			}
		}
	})
}
