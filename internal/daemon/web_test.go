package daemon

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/rampart-dev/rampart/internal/geo/geotest"
	"github.com/rampart-dev/rampart/internal/store"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "copy the dashboard's screenshots to docs/dashboard/")

// chromium returns the path of Debian's chromium, or skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("skipping: needs the chromium binary (Debian's chromium package; scripts/test installs it)")
	return ""
}

// browser starts a headless Chromium with a profile of its own and
// collects what it reports as errors: console errors, uncaught
// exceptions, failed loads and CSP violations.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{}
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	t.Cleanup(func() { cancelC(); cancelA() })
	b.ctx = ctx
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// listen keeps what the page reports as errors. It runs in chromedp's
// read loop: it must be quick and never call chromedp.
func (b *browser) listen(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			msg = "console: " + strings.Join(parts, " ")
		}
	case *runtime.EventExceptionThrown:
		msg = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *cdplog.EventEntryAdded:
		if e.Entry.Level == cdplog.EntryLevelError {
			msg = "log: " + e.Entry.Text + " " + e.Entry.URL
		}
	}
	if msg != "" {
		b.mu.Lock()
		b.errors = append(b.errors, msg)
		b.mu.Unlock()
	}
}

// takeErrors returns the errors reported since the last call.
func (b *browser) takeErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.errors
	b.errors = nil
	return e
}

// do runs steps with a deadline, failing the test on error.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, b *browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// TestDashboardInBrowser: every page of the dashboard of a running daemon
// loads in Chromium without errors and shows the seeded data (the trapped
// message with what it carried, the reports held for review); the ban
// form bans (the control socket's status shows it) and the unban button
// lifts it; the report queue's approve button sends a report and its
// reject button drops one (the control socket's list, which `rampart
// abuse list` reads, shows both); forms posted from another site are
// refused.
func TestDashboardInBrowser(t *testing.T) {
	dir := t.TempDir()
	country := geotest.WriteCountry(t, map[string]string{"198.51.100.0/24": "NL", "203.0.113.0/24": "CN", "192.0.2.0/24": "US"})
	asn := geotest.WriteASN(t, geotest.AS{Number: 64500, Org: "Example Hosting", Networks: []string{"198.51.100.0/24"}},
		geotest.AS{Number: 64501, Org: "Far Away Telecom", Networks: []string{"203.0.113.0/24"}})
	const hookSecret = "dashboard-hook-secret"
	secretFile := filepath.Join(dir, "hook.secret")
	os.WriteFile(secretFile, []byte(hookSecret), 0o600)
	recv := newReceiver(t, hookSecret, "")
	addr := freeAddr(t)
	h := startHarnessWith(t, dir, 3, func(o *Options) { o.InsightEvery, o.EvidenceEvery = 20*time.Millisecond, 20*time.Millisecond },
		fmt.Sprintf("[geo]\ncountry_database = %q\n[asn]\ndatabase = %q\n[web]\nlisten = %q\n", country, asn, addr),
		fmt.Sprintf("[reporting]\nmode = \"review\"\n[reporting.webhook]\nenabled = true\nurl = %q\nsecret_file = %q\n", recv.URL+"/hook", secretFile))
	base := "http://" + addr
	b := newBrowser(t)
	ctx := context.Background()

	// Seed: a ban from the log, a day of aggregates, a trapped message.
	h.fail(3, "198.51.100.7")
	h.waitFor("ban", func(st Status) bool { return banned(st, "198.51.100.7") })
	seedDashboard(t, h.d.store)
	// The trapped message's client is placed as it is kept, as bans are.
	if m, err := h.client.TrapMessage(context.Background(), 1); err != nil || m.Place != (store.Place{Country: "CN", ASN: 64501, Org: "Far Away Telecom"}) {
		t.Fatalf("the trapped message's place: %+v, %v", m.Place, err)
	}
	waitUntil(t, "aggregates flushed", func() bool {
		rows, _ := h.d.store.Hourly(context.Background(), store.HourlyFilter{Dim: store.DimUser})
		for _, r := range rows {
			if r.Key == "root" && r.Failures >= 3 {
				return true
			}
		}
		return false
	})

	// The message is read for evidence, and the ban and the message are
	// held for review.
	waitUntil(t, "the trapped message read", func() bool {
		_, _, err := h.d.store.Extraction(ctx, 1)
		return err == nil
	})
	var attack, message int64
	waitUntil(t, "reports held for review", func() bool {
		held, err := h.client.AbuseReports(ctx, []string{store.ReportReview}, "", 0)
		if err != nil {
			return false
		}
		for _, r := range held {
			switch {
			case r.Kind == "attack" && r.Target == "198.51.100.7":
				attack = r.ID
			case r.Kind == "message":
				message = r.ID
			}
		}
		return attack != 0 && message != 0
	})

	shots := t.ArtifactDir()
	pages := []struct {
		path, file string
		want       []string // texts the page must show
		wait       string   // a selector that is there once the page is ready
	}{
		{"/", "overview", []string{"198.51.100.7", "ip-failures", "sshd", "store"}, "#timeline .u-over"},
		{"/attackers", "attackers", []string{"NL", "CN", "AS64500", "Example Hosting", "root", "oracle", "198.51.100.0/24"}, "#countries .u-over"},
		{"/decisions", "decisions", []string{"198.51.100.7", "NL", "AS64500", "ip-failures"}, "#feed"},
		{"/quarantine", "quarantine", []string{"203.0.113.66", "Cheap watches", "info", "cheap-watches.example"}, "#top-indicators"},
		{"/quarantine/1", "message", []string{"Cheap watches", "promo@spam.example", "never rendered", "CN, AS64501 Far Away Telecom",
			"https://cheap-watches.example/buy?ref=7", "reply-to", "watch-deals@winner-prize.example", "shortener"}, "#indicators"},
		{"/reports", "reports", []string{"198.51.100.7", "webhook", "attack", "message 1", "Approve", "Reject"}, "#review"},
		{fmt.Sprintf("/reports/%d", attack), "report", []string{"198.51.100.7", "review", "What it sends", "X-Rampart-Signature", "\"jail\": \"sshd\""}, "#sends"},
		{"/ban", "ban", []string{"198.51.100.7", "Unban"}, "#ban-form"},
	}
	for _, p := range pages {
		b.do(t, "load "+p.path, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.wait)))
		text := get(t, b, "text of "+p.path, chromedp.Text(chromedp.CSS("main")))
		png := get(t, b, "screenshot of "+p.path, chromedp.FullScreenshot(100))
		for _, w := range p.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s does not show %q:\n%s", p.path, w, text)
			}
		}
		if strings.Contains(text, "BODY-MARKER") {
			t.Errorf("%s shows a quarantined message's body", p.path)
		}
		if errs := b.takeErrors(); len(errs) > 0 {
			t.Errorf("%s: the browser reported errors:\n%s", p.path, strings.Join(errs, "\n"))
		}
		if err := os.WriteFile(filepath.Join(shots, p.file+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		if *updateScreenshots {
			if err := os.WriteFile(filepath.Join("..", "..", "docs", "dashboard", p.file+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The ban form bans: the daemon's status (the control socket) shows it.
	b.do(t, "ban form",
		chromedp.Navigate(base+"/ban"),
		chromedp.WaitVisible(chromedp.ID("ban-form")),
		chromedp.SendKeys(chromedp.ID("ban-ip"), "192.0.2.77"),
		chromedp.SendKeys(chromedp.ID("ban-duration"), "2h"),
		chromedp.SendKeys(chromedp.ID("ban-reason"), "seen in the dashboard"),
		chromedp.Click(chromedp.ID("ban-submit")),
		chromedp.WaitVisible(chromedp.ID("flash")),
	)
	flash := get(t, b, "flash", chromedp.Text(chromedp.ID("flash")))
	if !strings.Contains(flash, "banned 192.0.2.77 until") {
		t.Fatalf("after the ban form: %q", flash)
	}
	st := h.waitFor("the dashboard's ban", func(st Status) bool { return banned(st, "192.0.2.77") })
	for _, a := range st.Active {
		if a.IP == "192.0.2.77" && (a.Reason != "seen in the dashboard" || a.End.Sub(a.Start) != 2*time.Hour) {
			t.Fatalf("the dashboard's ban: %+v", a)
		}
	}
	// A bad address is refused with a message, nothing banned.
	b.do(t, "ban form with a bad address",
		chromedp.SendKeys(chromedp.ID("ban-ip"), "not-an-address"),
		chromedp.Click(chromedp.ID("ban-submit")),
		chromedp.WaitVisible(chromedp.CSS("#flash.error")),
	)
	// The unban button lifts it.
	b.do(t, "unban",
		chromedp.Click(chromedp.CSS(`button.unban[data-ip="192.0.2.77"]`)),
		chromedp.WaitVisible(chromedp.CSS("#flash:not(.error)")),
	)
	flash = get(t, b, "flash", chromedp.Text(chromedp.ID("flash")))
	if flash != "unbanned 192.0.2.77" {
		t.Fatalf("after unban: %q", flash)
	}
	h.waitFor("unban", func(st Status) bool { return !banned(st, "192.0.2.77") })
	if errs := b.takeErrors(); len(errs) > 0 {
		t.Errorf("the ban and unban forms: the browser reported errors:\n%s", strings.Join(errs, "\n"))
	}

	// Pages on another site post the ban form and the review form to the
	// dashboard: refused, nothing banned, nothing approved.
	evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		if r.URL.Path == "/review" {
			fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/reports/review"><input name="id" value="%d"><input name="action" value="approve"><input name="csrf" value="x"></form>
<script>document.forms[0].submit()</script>`, base, attack)
			return
		}
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/ban"><input name="ip" value="192.0.2.66"><input name="csrf" value="x"></form>
<script>document.forms[0].submit()</script>`, base)
	})}
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go evil.Serve(eln)
	defer evil.Close()
	_, port, _ := net.SplitHostPort(eln.Addr().String())
	for _, c := range []struct{ page, target string }{{"/", "/ban"}, {"/review", "/reports/review"}} {
		b.do(t, "cross-site form", chromedp.Navigate("http://localhost:"+port+c.page))
		get(t, b, "the cross-site post's answer", chromedp.Poll[bool](fmt.Sprintf(`location.href.indexOf(%q) > 0 && document.readyState === "complete"`, c.target), chromedp.WithPollingTimeout(10*time.Second)))
		refused := get(t, b, "text", chromedp.Text(chromedp.CSS("body")))
		if !strings.Contains(refused, "cross-origin request refused") {
			t.Fatalf("a cross-site post to %s got: %q", c.target, refused)
		}
	}
	if st := h.waitFor("status", func(Status) bool { return true }); banned(st, "192.0.2.66") {
		t.Fatal("a cross-site form banned an address")
	}
	if r, err := h.client.AbuseReport(ctx, attack); err != nil || r.State != store.ReportReview {
		t.Fatalf("after a cross-site approve, report %d: %+v, %v", attack, r.Report, err)
	}
	b.takeErrors() // the refused posts' 403s are expected
	if !strings.Contains(h.logs.String(), "cross-origin request refused") {
		t.Error("the refusal was not logged")
	}

	// The queue's buttons: approve sends the ban's report, reject drops
	// the message's; the control socket's list shows both.
	stateOf := func(id int64) string {
		rs, err := h.client.AbuseReports(ctx, nil, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.ID == id {
				return r.State
			}
		}
		return "absent"
	}
	b.do(t, "approve",
		chromedp.Navigate(base+"/reports"),
		chromedp.WaitVisible(chromedp.ID("review")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`button.approve[data-id="%d"]`, attack))),
		chromedp.WaitVisible(chromedp.CSS("#flash:not(.error)")),
	)
	if flash := get(t, b, "flash", chromedp.Text(chromedp.ID("flash"))); flash != fmt.Sprintf("approved report %d", attack) {
		t.Fatalf("after approve: %q", flash)
	}
	waitUntil(t, "the approved report sent", func() bool { return stateOf(attack) == store.ReportSent })
	if hooks, _, bad := recv.got(); len(hooks) != 1 || hooks[0].Subject.Addr != "198.51.100.7" || bad != 0 {
		t.Fatalf("the webhook got %+v (%d bad)", hooks, bad)
	}
	b.do(t, "reject",
		chromedp.Navigate(base+"/reports"), // no flash until the answer's
		chromedp.WaitVisible(chromedp.ID("review")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`button.reject[data-id="%d"]`, message))),
		chromedp.WaitVisible(chromedp.CSS("#flash:not(.error)")),
	)
	if flash := get(t, b, "flash", chromedp.Text(chromedp.ID("flash"))); flash != fmt.Sprintf("rejected report %d", message) {
		t.Fatalf("after reject: %q", flash)
	}
	if st := stateOf(message); st != store.ReportRejected {
		t.Fatalf("the rejected report is %s", st)
	}
	if hooks, _, _ := recv.got(); len(hooks) != 1 {
		t.Fatalf("the rejected report was sent: %+v", hooks)
	}
	// The page now lists both among the recent, none held.
	text := get(t, b, "the queue after review", chromedp.Text(chromedp.CSS("main")))
	if !strings.Contains(text, "rejected") || !strings.Contains(text, "sent") {
		t.Errorf("the queue after review:\n%s", text)
	}
	if n := get(t, b, "held", chromedp.Evaluate[int](`document.querySelectorAll("#review button.approve").length`)); n != 0 {
		t.Errorf("%d reports still held after review", n)
	}
	if errs := b.takeErrors(); len(errs) > 0 {
		t.Errorf("the review forms: the browser reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// seedDashboard adds a day of aggregates from several countries and a
// trapped message with hostile content to the daemon's store.
func seedDashboard(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Hour)
	var rows []store.HourlyRow
	for i := range 24 {
		hour := now.Add(-time.Duration(i) * time.Hour)
		f := int64(10 + (i*7)%23)
		rows = append(rows,
			store.HourlyRow{Hour: hour, Jail: "sshd", Dim: store.DimTotal, Failures: f, Bans: f / 10},
			store.HourlyRow{Hour: hour, Jail: "sshd", Dim: store.DimCountry, Key: "CN", Failures: f / 2, Bans: f / 20},
			store.HourlyRow{Hour: hour, Jail: "sshd", Dim: store.DimCountry, Key: "US", Failures: f / 4},
			store.HourlyRow{Hour: hour, Jail: "sshd", Dim: store.DimASN, Key: "64501", Label: "Far Away Telecom", Failures: f / 2},
			store.HourlyRow{Hour: hour, Jail: "sshd", Dim: store.DimUser, Key: "oracle", Failures: f / 3},
			store.HourlyRow{Hour: hour, Jail: "sshd", Dim: store.DimPrefix, Key: "203.0.113.0/24", Failures: f / 2},
		)
	}
	if err := st.AddHourly(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Quarantine(ctx, store.Quarantined{QueueID: "4XyZ", Received: now, Client: netip.MustParseAddr("203.0.113.66"), Port: 587,
		Helo: "mail.spam.example", Account: "info", TLS: true, MailFrom: "promo@spam.example", RcptTo: []string{"a@example.net", "b@example.net"}, Size: 2048,
		Raw: []byte("From: Promo <promo@spam.example>\r\nReply-To: watch-deals@winner-prize.example\r\nSubject: Cheap watches <script>alert(1)</script>\r\nX-Mailer: <img src=x onerror=alert(2)>\r\nContent-Type: text/html\r\n\r\n" +
			"<html><body>BODY-MARKER<script>alert(3)</script><a href=\"https://cheap-watches.example/buy?ref=7\">buy</a> <a href=\"https://bit.ly/3xWatch\">track</a></body></html>")}); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
