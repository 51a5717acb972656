package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/logtest"
	"github.com/rampart-dev/rampart/internal/store"
	"github.com/rampart-dev/rampart/internal/web"
)

// bans is a Backend that keeps bans in a map: the dashboard's side of the
// contract, tested here; the daemon's side is tested with a real daemon
// and a browser in internal/daemon.
type bans struct {
	mu sync.Mutex
	m  map[string]string
}

func (b *bans) Snapshot() web.Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := web.Snapshot{Version: "test", Health: []web.Health{{Component: "store", State: "ok"}}}
	for ip, reason := range b.m {
		s.Active = append(s.Active, web.Active{Target: ip, Scenario: "manual", Reason: reason})
	}
	s.ActiveTotal = len(s.Active)
	return s
}

func (b *bans) Ban(_ context.Context, target string, _ time.Duration, reason string) (string, error) {
	if _, err := netip.ParseAddr(target); err != nil {
		return "", errors.New("not an address")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[target] = reason
	return "banned " + target, nil
}

func (b *bans) Unban(_ context.Context, target string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.m[target]
	delete(b.m, target)
	return ok, nil
}

func (b *bans) has(ip string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.m[ip]
	return ok
}

const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)>`

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := st.RecordDecision(ctx, event.Decision{Target: netip.MustParsePrefix("198.51.100.7/32"), Action: event.Ban,
		Start: now, Duration: time.Hour, Scenario: "ip-failures", Reason: "5 failures " + hostile, Jail: "sshd"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddHourly(ctx, []store.HourlyRow{
		{Hour: now, Jail: "sshd", Dim: store.DimTotal, Failures: 5, Bans: 1},
		{Hour: now, Jail: "sshd", Dim: store.DimUser, Key: hostile, Failures: 5},
		{Hour: now, Jail: "sshd", Dim: store.DimCountry, Key: "NL", Failures: 5, Bans: 1},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Quarantine(ctx, store.Quarantined{QueueID: "Q1", Received: now, Client: netip.MustParseAddr("203.0.113.9"),
		Account: "info", MailFrom: "spam@example.net", RcptTo: []string{"a@example.org"}, Size: 100,
		Raw: []byte("Subject: " + hostile + "\r\nFrom: =?utf-8?q?M=C3=BCller?= <m@example.net>\r\n\r\n<html><body>BODY-MARKER <script>alert(2)</script></body></html>")}); err != nil {
		t.Fatal(err)
	}
	// What message 1 carried, as the evidence reader saves it: a link
	// whose text is markup.
	link := "https://phish.example/" + hostile
	res := `{"parts":1,"urls":[{"url":` + strconv.Quote(link) + `,"host":"phish.example","where":["href"],"obfuscated":true,"redirect":"shortener"}],"problems":[` + strconv.Quote("part 2: "+hostile) + `]}`
	if _, err := st.SaveExtraction(ctx, 1, now, now, []byte(res), []store.Indicator{{Kind: "url", Value: link}, {Kind: "domain", Value: "phish.example"}}); err != nil {
		t.Fatal(err)
	}
	// Reports: two held for review (one of a hostile target), one sent.
	for _, r := range []store.Report{
		{Reporter: "abuseipdb", Kind: "attack", Target: "198.51.100.7", State: store.ReportReview, Subject: []byte(`{"addr":"198.51.100.7","reason":` + strconv.Quote(hostile) + `}`)},
		{Reporter: "netcraft", Kind: "url", Target: link, State: store.ReportReview, Subject: []byte(`{"url":` + strconv.Quote(link) + `}`)},
		{Reporter: "webhook", Kind: "message", Target: "message 1 Q1", State: store.ReportSent, Subject: []byte(`not json ` + hostile)},
	} {
		r.Created = now
		if _, err := st.EnqueueReport(ctx, r, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// queue is the daemon's report queue as far as the dashboard sees it: the
// store's review, and a rendering.
type queue struct{ st *store.Store }

func (q queue) Review(ctx context.Context, ids []int64, approve bool) ([]int64, error) {
	return q.st.ReviewReports(ctx, ids, approve, time.Now())
}

func (q queue) Render(_ context.Context, id int64) (string, error) {
	return "POST /report ip=" + strconv.FormatInt(id, 10) + " " + hostile, nil
}

func state(t *testing.T, st *store.Store, id int64) string {
	t.Helper()
	r, err := st.Report(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r.State
}

// serve starts the dashboard on addr and returns its base URL.
func serve(t *testing.T, opt web.Options, addr string) (string, *web.Server) {
	t.Helper()
	srv, err := web.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ln.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "http://127.0.0.1:" + port, srv
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// postForm posts form to u with the headers given (name, value, …) and
// returns the status and where it redirects.
func postForm(t *testing.T, c *http.Client, u string, form url.Values, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func TestNonLoopbackNeedsToken(t *testing.T) {
	st := newStore(t)
	srv, err := web.New(web.Options{Backend: &bans{m: map[string]string{}}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "192.0.2.1:9843"} {
		if _, err := srv.Listen(addr); err == nil || !strings.Contains(err.Error(), "token_file") {
			t.Errorf("Listen(%s) without a token = %v, want a refusal naming token_file", addr, err)
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true, "127.8.9.1:1": true,
		"0.0.0.0:1": false, "[::ffff:127.0.0.1]:1": true, "example.org:1": false, "nonsense": false} {
		if got := web.Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v", addr, got)
		}
	}
}

func TestTokenGuardsEverything(t *testing.T) {
	st := newStore(t)
	const token = "s3cret-token-0123456789"
	base, _ := serve(t, web.Options{Backend: &bans{m: map[string]string{}}, Store: st, Token: token}, "0.0.0.0:0")
	c := noRedirect()
	for _, p := range []string{"/", "/attackers", "/decisions", "/quarantine", "/quarantine/1", "/reports", "/reports/1", "/ban"} {
		if code, _, h := get(t, c, base+p); code != http.StatusSeeOther || h.Get("Location") != "/login" {
			t.Errorf("GET %s without the token: %d to %q, want a redirect to /login", p, code, h.Get("Location"))
		}
	}
	for _, p := range []string{"/api/overview", "/api/attackers", "/api/decisions", "/api/quarantine", "/api/reports", "/api/reports/1", "/api/ban"} {
		if code, _, _ := get(t, c, base+p); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d", p, code)
		}
		if code, _, _ := get(t, c, base+p, "Authorization", "Bearer wrong-token-0123456789"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d", p, code)
		}
		if code, body, _ := get(t, c, base+p, "Authorization", "Bearer "+token); code != http.StatusOK || !json.Valid([]byte(body)) {
			t.Errorf("GET %s with the token: %d %.200s", p, code, body)
		}
	}
	// The assets are the dashboard's own code: the login page needs them.
	if code, _, _ := get(t, c, base+"/static/vendor/uPlot.iife.min.js"); code != http.StatusOK {
		t.Errorf("GET an asset without the token: %d", code)
	}
	resp, err := c.PostForm(base+"/ban", url.Values{"ip": {"192.0.2.1"}})
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /ban without the token: %v %v", resp.Status, err)
	}

	// The login form sets a session cookie.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	code, page, _ := get(t, browser, base+"/")
	m := csrfField.FindStringSubmatch(page)
	if code != http.StatusOK || m == nil {
		t.Fatalf("login page: %d\n%s", code, page)
	}
	resp, err = browser.PostForm(base+"/login", url.Values{"csrf": {m[1]}, "token": {"guess-guess-guess-guess"}})
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login with a wrong token: %v %v", resp.Status, err)
	}
	resp, err = browser.PostForm(base+"/login", url.Values{"csrf": {m[1]}, "token": {token}})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %v %v", resp.Status, err)
	}
	if code, body, _ := get(t, browser, base+"/attackers"); code != http.StatusOK || !strings.Contains(body, "Attackers") {
		t.Fatalf("after login: %d", code)
	}
	for _, ck := range jar.Cookies(&url.URL{Scheme: "http", Host: strings.TrimPrefix(base, "http://")}) {
		if strings.Contains(ck.Value, token) {
			t.Fatal("the session cookie holds the token")
		}
	}
}

func TestFormsNeedCSRFAndSameOrigin(t *testing.T) {
	st := newStore(t)
	b := &bans{m: map[string]string{}}
	var logged logtest.Buffer
	base, _ := serve(t, web.Options{Backend: b, Store: st, Logger: slog.New(slog.NewTextHandler(&logged, nil))}, "127.0.0.1:0")
	c := noRedirect()
	_, page, _ := get(t, c, base+"/ban")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the ban form:\n%s", page)
	}
	post := func(form url.Values, header ...string) int {
		code, _ := postForm(t, c, base+"/ban", form, header...)
		return code
	}
	if code := post(url.Values{"ip": {"192.0.2.1"}}); code != http.StatusForbidden || b.has("192.0.2.1") {
		t.Fatalf("ban without the CSRF token: %d, banned %v", code, b.has("192.0.2.1"))
	}
	if code := post(url.Values{"ip": {"192.0.2.2"}, "csrf": {strings.Repeat("0", 64)}}); code != http.StatusForbidden || b.has("192.0.2.2") {
		t.Fatalf("ban with a forged CSRF token: %d", code)
	}
	// A browser posting from another site, even with the token.
	if code := post(url.Values{"ip": {"192.0.2.3"}, "csrf": {m[1]}}, "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden || b.has("192.0.2.3") {
		t.Fatalf("cross-site ban: %d", code)
	}
	if code := post(url.Values{"ip": {"192.0.2.4"}, "csrf": {m[1]}}, "Sec-Fetch-Site", "same-origin"); code != http.StatusSeeOther || !b.has("192.0.2.4") {
		t.Fatalf("ban from the dashboard: %d", code)
	}
	// The API takes JSON only: a form cannot send it across sites.
	req, _ := http.NewRequest(http.MethodPost, base+"/api/ban", strings.NewReader(`{"ip":"192.0.2.5"}`))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnsupportedMediaType || b.has("192.0.2.5") {
		t.Fatalf("POST /api/ban as text/plain: %v %v", resp.Status, err)
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/api/ban", strings.NewReader(`{"ip":"192.0.2.5","duration_s":60}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err = c.Do(req); err != nil || resp.StatusCode != http.StatusOK || !b.has("192.0.2.5") {
		t.Fatalf("POST /api/ban: %v %v", resp.Status, err)
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/api/unban", strings.NewReader(`{"ip":"192.0.2.5"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err = c.Do(req); err != nil || resp.StatusCode != http.StatusOK || b.has("192.0.2.5") {
		t.Fatalf("POST /api/unban: %v %v", resp.Status, err)
	}
	// Every ban and unban made through the dashboard is logged, by form or API.
	var actions []string
	for _, l := range strings.Split(strings.TrimSpace(logged.String()), "\n") {
		if i := strings.Index(l, `msg="web: `); i >= 0 && (strings.Contains(l, `"web: ban"`) || strings.Contains(l, `"web: unban"`)) {
			f := strings.Fields(l[i:])
			actions = append(actions, strings.Join(f[:3], " "))
		}
	}
	if got := strings.Join(actions, "; "); got != `msg="web: ban" addr=192.0.2.4; msg="web: ban" addr=192.0.2.5; msg="web: unban" addr=192.0.2.5` {
		t.Errorf("logged actions: %s", got)
	}
}

func TestPagesEscapeWhatAttackersWrote(t *testing.T) {
	st := newStore(t)
	base, _ := serve(t, web.Options{Backend: &bans{m: map[string]string{"192.0.2.9": hostile}}, Store: st, Reports: queue{st}}, "127.0.0.1:0")
	c := noRedirect()
	for _, p := range []string{"/", "/attackers", "/decisions", "/quarantine", "/quarantine/1", "/reports", "/reports/1", "/reports/2", "/reports/3", "/ban"} {
		code, body, h := get(t, c, base+p)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d", p, code)
			continue
		}
		if strings.Contains(body, `<script>alert`) || strings.Contains(body, `<img src=x`) {
			t.Errorf("GET %s renders attacker markup", p)
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: security headers %v", p, h)
		}
	}
	_, msg, _ := get(t, c, base+"/quarantine/1")
	if strings.Contains(msg, "BODY-MARKER") {
		t.Error("the message page shows the body")
	}
	if !strings.Contains(msg, "Müller") || !strings.Contains(msg, "&lt;script&gt;") {
		t.Errorf("the message page lacks its decoded, escaped headers:\n%s", msg)
	}
	// What it carried is listed as text: never a link to follow.
	for _, want := range []string{`id="indicators"`, "phish.example", `id="links"`, "obfuscated", "shortener", `id="problems"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message page lacks %q", want)
		}
	}
	if strings.Contains(msg, `href="https://phish.example`) {
		t.Error("the message page links to what the spam advertised")
	}
	_, q, _ := get(t, c, base+"/quarantine")
	if !strings.Contains(q, `id="top-indicators"`) || !strings.Contains(q, "phish.example") {
		t.Errorf("the quarantine lacks the indicators carried most:\n%s", q)
	}
	// The listing shows each message's subject, read from its head, as
	// escaped text.
	if !strings.Contains(q, "<td>100 B</td><td>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Errorf("the quarantine lacks the message's escaped subject:\n%s", q)
	}
	_, rep, _ := get(t, c, base+"/reports/1")
	if !strings.Contains(rep, "POST /report ip=1") || !strings.Contains(rep, "&#34;addr&#34;: &#34;198.51.100.7&#34;") {
		t.Errorf("a report's page lacks what it sends or its subject:\n%s", rep)
	}
	// A subject that is not JSON is served as a string, the API stays JSON.
	if code, body, _ := get(t, c, base+"/api/reports/3"); code != http.StatusOK || !json.Valid([]byte(body)) {
		t.Errorf("/api/reports/3: %d %s", code, body)
	}
	for p, code := range map[string]int{"/reports/999": 404, "/reports/x": 400, "/quarantine/999": 404, "/quarantine/x": 400, "/attackers?since=forever": 400, "/api/decisions?limit=0": 400, "/nope": 404} {
		if got, _, _ := get(t, c, base+p); got != code {
			t.Errorf("GET %s: %d, want %d", p, got, code)
		}
	}
	// The decisions API serves only what is newer than ?after.
	_, body, _ := get(t, c, base+"/api/decisions")
	var d struct {
		Decisions []struct {
			ID int64  `json:"id"`
			IP string `json:"ip"`
		} `json:"decisions"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil || len(d.Decisions) != 1 || d.Decisions[0].IP != "198.51.100.7" {
		t.Fatalf("/api/decisions: %v %s", err, body)
	}
	_, body, _ = get(t, c, base+"/api/decisions?after="+strconv.FormatInt(d.Decisions[0].ID, 10))
	if strings.Contains(body, "198.51.100.7") {
		t.Fatalf("/api/decisions?after= repeats old decisions: %s", body)
	}
}

// TestReportQueueForms: the queue lists the reports held for review; its
// buttons approve and reject with the CSRF token from the dashboard's own
// origin only; the API takes JSON; with reporting off nothing changes.
func TestReportQueueForms(t *testing.T) {
	st := newStore(t)
	base, _ := serve(t, web.Options{Backend: &bans{m: map[string]string{}}, Store: st, Reports: queue{st}}, "127.0.0.1:0")
	c := noRedirect()
	_, page, _ := get(t, c, base+"/reports")
	m := csrfField.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `id="review"`) || strings.Count(page, `class="approve"`) != 2 || !strings.Contains(page, `id="recent"`) {
		t.Fatalf("the queue page:\n%s", page)
	}
	post := func(form url.Values, header ...string) (int, string) {
		return postForm(t, c, base+"/reports/review", form, header...)
	}
	if code, _ := post(url.Values{"id": {"1"}, "action": {"approve"}}); code != http.StatusForbidden || state(t, st, 1) != store.ReportReview {
		t.Fatalf("approve without the CSRF token: %d, %s", code, state(t, st, 1))
	}
	if code, _ := post(url.Values{"id": {"1"}, "action": {"approve"}, "csrf": {m[1]}}, "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden || state(t, st, 1) != store.ReportReview {
		t.Fatalf("cross-site approve: %d, %s", code, state(t, st, 1))
	}
	code, loc := post(url.Values{"id": {"1"}, "action": {"approve"}, "csrf": {m[1]}}, "Sec-Fetch-Site", "same-origin")
	if code != http.StatusSeeOther || !strings.Contains(loc, "approved+report+1") || state(t, st, 1) != store.ReportPending {
		t.Fatalf("approve: %d to %q, %s", code, loc, state(t, st, 1))
	}
	// Approved already: not held, nothing changes.
	if _, loc := post(url.Values{"id": {"1"}, "action": {"reject"}, "csrf": {m[1]}}); !strings.Contains(loc, "not+held") || state(t, st, 1) != store.ReportPending {
		t.Fatalf("reject an approved report: %q, %s", loc, state(t, st, 1))
	}
	if _, loc := post(url.Values{"id": {"2"}, "action": {"maybe"}, "csrf": {m[1]}}); !strings.Contains(loc, "error=") || state(t, st, 2) != store.ReportReview {
		t.Fatalf("an unknown action: %q, %s", loc, state(t, st, 2))
	}
	// The API takes JSON only.
	api := func(ctype, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/reports/review", strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := api("text/plain", `{"ids":[2]}`); code != http.StatusUnsupportedMediaType || state(t, st, 2) != store.ReportReview {
		t.Fatalf("POST /api/reports/review as text/plain: %d", code)
	}
	if code, _ := api("application/json", `{}`); code != http.StatusBadRequest {
		t.Fatalf("POST /api/reports/review naming nothing: %d", code)
	}
	if code, body := api("application/json", `{"ids":[2],"approve":false}`); code != http.StatusOK || !strings.Contains(body, "2") || state(t, st, 2) != store.ReportRejected {
		t.Fatalf("reject through the API: %d %s, %s", code, body, state(t, st, 2))
	}
	_, body, _ := get(t, c, base+"/api/reports")
	var got web.Reports
	if err := json.Unmarshal([]byte(body), &got); err != nil || !got.Reporting || len(got.Review) != 0 || got.ReviewTotal != 0 || len(got.Recent) != 3 {
		t.Fatalf("/api/reports after review: %v %s", err, body)
	}

	// Reporting off: the queue is shown, nothing can change it.
	st2 := newStore(t)
	base2, _ := serve(t, web.Options{Backend: &bans{m: map[string]string{}}, Store: st2}, "127.0.0.1:0")
	_, page, _ = get(t, c, base2+"/reports")
	_, banPage, _ := get(t, c, base2+"/ban")
	m = csrfField.FindStringSubmatch(banPage)
	if !strings.Contains(page, `id="reporting-off"`) || strings.Contains(page, `class="approve"`) || !strings.Contains(page, `id="review"`) {
		t.Fatalf("the queue page with reporting off:\n%s", page)
	}
	if _, loc := postForm(t, c, base2+"/reports/review", url.Values{"id": {"1"}, "action": {"approve"}, "csrf": {m[1]}}); !strings.Contains(loc, "reporting+is+off") || state(t, st2, 1) != store.ReportReview {
		t.Fatalf("approve with reporting off: to %q, %s", loc, state(t, st2, 1))
	}
}
