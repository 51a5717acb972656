package abuse

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/evidence"
	"github.com/rampart-dev/rampart/internal/httpout"
	"github.com/rampart-dev/rampart/internal/store"
)

// clock is a test's time: it moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// lab is a store, a clock, a log and the redactor of a host called
// mail.our-host.test at 192.0.2.10.
type lab struct {
	t      *testing.T
	path   string
	st     *store.Store
	clock  *clock
	logBuf *bytes.Buffer
	log    *slog.Logger
	redact *Redactor
}

func newLab(t *testing.T) *lab {
	l := &lab{t: t, path: filepath.Join(t.TempDir(), "rampart.db"), clock: &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}, logBuf: &bytes.Buffer{}}
	l.log = slog.New(slog.NewTextHandler(syncWriter{w: l.logBuf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l.redact = NewRedactor([]string{"mail.our-host.test", "our-host.test"}, []netip.Addr{netip.MustParseAddr("192.0.2.10")})
	l.open()
	return l
}

type syncWriter struct{ w *bytes.Buffer }

var logMu sync.Mutex

func (s syncWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return s.w.Write(p)
}

func (l *lab) open() {
	st, err := store.Open(context.Background(), l.path)
	if err != nil {
		l.t.Fatal(err)
	}
	l.st = st
	l.t.Cleanup(func() { st.Close() })
}

// restart closes and reopens the store, as a daemon restart does.
func (l *lab) restart() {
	l.st.Close()
	l.open()
}

func (l *lab) queue(cfg Config, reps ...Reporter) *Queue {
	if cfg.Dedup == 0 {
		cfg.Dedup = 24 * time.Hour
	}
	q := NewQueue(l.st, cfg, reps, l.redact, l.log)
	q.now = l.clock.Now
	return q
}

func (l *lab) http() *httpout.Client {
	return httpout.New(httpout.Options{UserAgent: "rampart-test", Redirects: 3})
}

func (l *lab) decision(addr, jail, scenario, reason string) event.Decision {
	return event.Decision{Target: event.AddrPrefix(netip.MustParseAddr(addr)), Action: event.Ban, Start: l.clock.Now(),
		Duration: time.Hour, Scenario: scenario, Reason: reason, Jail: jail, Origin: "local"}
}

// trapped quarantines a corpus message as sent by client, extracts it and
// saves its indicators, as the daemon does.
func (l *lab) trapped(name, client string) (store.Quarantined, *evidence.Result, []store.Indicator) {
	raw, err := os.ReadFile("../evidence/testdata/corpus/" + name)
	if err != nil {
		l.t.Fatal(err)
	}
	m := store.Quarantined{QueueID: "4F2A61C0D3", Received: l.clock.Now(), Client: netip.MustParseAddr(client), Port: 587,
		Helo: "mail.our-host.test", MailFrom: "bounce@bulk-mailer.example", RcptTo: []string{"victim1@customer.example", "victim2@other.example"},
		Size: int64(len(raw)), Raw: raw}
	ctx := context.Background()
	if m.ID, err = l.st.Quarantine(ctx, m); err != nil {
		l.t.Fatal(err)
	}
	env := evidence.Envelope{Client: m.Client, Helo: m.Helo, MailFrom: m.MailFrom, RcptTo: m.RcptTo, Received: m.Received}
	r := evidence.Extract(raw, env, evidence.Options{})
	var inds []store.Indicator
	for _, i := range r.Indicators(env) {
		inds = append(inds, store.Indicator(i))
	}
	if _, err := l.st.SaveExtraction(ctx, m.ID, m.Received, m.Received, []byte("{}"), inds); err != nil {
		l.t.Fatal(err)
	}
	return m, r, inds
}

func (l *lab) reports(states ...string) []store.Report {
	rs, err := l.st.Reports(context.Background(), store.ReportFilter{States: states})
	if err != nil {
		l.t.Fatal(err)
	}
	return rs
}

func (l *lab) abuseIPDB(f *fakeAbuseIPDB) *AbuseIPDB {
	return &AbuseIPDB{URL: f.URL + "/api/v2/report", Key: "k-123-secret", HTTP: l.http(),
		Categories: map[string][]int{"sshd": {18, 22}}, Default: []int{18}, Spam: []int{11}}
}

const sshReason = `5 failures within 10m (last: auth-failure for "alice" via sshd on mail.our-host.test to 192.0.2.10)`

// TestAbuseIPDBReports: attacks and spam reach AbuseIPDB as its API wants
// them, with the right categories and a redacted comment; what is not an
// attack by a public address of ours to report is not reported.
func TestAbuseIPDBReports(t *testing.T) {
	l := newLab(t)
	f := newFakeAbuseIPDB(t, "k-123-secret", l.clock.Now)
	q := l.queue(Config{}, l.abuseIPDB(f))
	ctx := context.Background()
	q.Decision(ctx, l.decision("203.0.113.7", "sshd", "ip-failures", sshReason))
	q.Decision(ctx, l.decision("198.51.100.9", "postfix", "user-spray", `user "info" failed from 5 addresses`))
	skipped := []event.Decision{
		l.decision("203.0.113.8", "sshd", "manual", "banned by hand"),
		l.decision("10.1.2.3", "sshd", "ip-failures", "private"),
		l.decision("127.0.0.2", "sshd", "ip-failures", "loopback"),
	}
	prefix := l.decision("203.0.113.9", "sshd", "prefix", "a network")
	prefix.Target = netip.MustParsePrefix("203.0.113.0/24")
	peer := l.decision("203.0.113.10", "sshd", "ip-failures", "a peer's")
	peer.Origin = "peer-a"
	allow := l.decision("203.0.113.11", "sshd", "known-good", "logged in")
	allow.Action = event.Allow
	for _, d := range append(skipped, prefix, peer, allow) {
		q.Decision(ctx, d)
	}
	m, r, inds := l.trapped("multipart-alternative.eml", "203.0.113.45")
	q.Message(ctx, m, r, inds, false)
	if n := q.Process(ctx); n != 3 {
		t.Fatalf("processed %d reports, want 3", n)
	}
	got := f.reports()
	if len(got) != 3 {
		t.Fatalf("AbuseIPDB got %d reports: %v", len(got), got)
	}
	byIP := map[string]url.Values{}
	for _, v := range got {
		byIP[v.Get("ip")] = v
	}
	ssh := byIP["203.0.113.7"]
	if ssh.Get("categories") != "18,22" || ssh.Get("timestamp") != "2026-03-01T10:00:00Z" {
		t.Errorf("ssh report: %v", ssh)
	}
	comment := ssh.Get("comment")
	for _, leak := range []string{"alice", "our-host", "192.0.2.10"} {
		if strings.Contains(comment, leak) {
			t.Errorf("comment %q leaks %q", comment, leak)
		}
	}
	if !strings.Contains(comment, `"[user]"`) || !strings.Contains(comment, "jail sshd") {
		t.Errorf("comment %q", comment)
	}
	if byIP["198.51.100.9"].Get("categories") != "18" || byIP["203.0.113.45"].Get("categories") != "11" {
		t.Errorf("categories: postfix %v, spam %v", byIP["198.51.100.9"], byIP["203.0.113.45"])
	}
	if !strings.Contains(byIP["203.0.113.45"].Get("comment"), "mail trap") {
		t.Errorf("spam comment %q", byIP["203.0.113.45"].Get("comment"))
	}
	sent := l.reports(store.ReportSent)
	if len(sent) != 3 || sent[0].Receipt != "abuse confidence score 52" || sent[0].Destination != strings.TrimPrefix(f.URL, "http://") {
		t.Errorf("sent reports %+v", sent)
	}
	if st := q.Stats("abuseipdb"); st.Sent.Load() != 3 || st.Queued.Load() != 3 {
		t.Errorf("counters: sent %d queued %d", st.Sent.Load(), st.Queued.Load())
	}
	// The key never shows: not in the log, not in what review shows.
	_, text, err := q.Render(ctx, sent[0].ID)
	if err != nil || strings.Contains(text, "k-123") || !strings.Contains(text, "Key: [the API key]") {
		t.Errorf("render: %v\n%s", err, text)
	}
	if strings.Contains(l.logBuf.String(), "k-123") {
		t.Error("the API key is in the log")
	}
}

// TestBadKeyNeverLogged: AbuseIPDB refusing the key is final, and the key
// is neither logged nor kept with the report.
func TestBadKeyNeverLogged(t *testing.T) {
	l := newLab(t)
	f := newFakeAbuseIPDB(t, "the-right-key", l.clock.Now)
	q := l.queue(Config{}, l.abuseIPDB(f))
	ctx := context.Background()
	q.Decision(ctx, l.decision("203.0.113.7", "sshd", "ip-failures", "5 failures"))
	q.Process(ctx)
	failed := l.reports(store.ReportFailed)
	if len(failed) != 1 || !strings.Contains(failed[0].LastError, "401") || failed[0].Attempts != 1 {
		t.Fatalf("failed %+v", failed)
	}
	for _, s := range []string{l.logBuf.String(), failed[0].LastError} {
		if strings.Contains(s, "k-123") {
			t.Errorf("key leaked: %s", s)
		}
	}
}

// TestReviewMode: in review nothing is sent until approved; a rejected
// report is never sent.
func TestReviewMode(t *testing.T) {
	l := newLab(t)
	f := newFakeAbuseIPDB(t, "k-123-secret", l.clock.Now)
	q := l.queue(Config{Modes: map[string]string{"abuseipdb": ModeReview}}, l.abuseIPDB(f))
	ctx := context.Background()
	for _, a := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
		q.Decision(ctx, l.decision(a, "sshd", "ip-failures", "5 failures"))
	}
	q.Process(ctx)
	l.clock.Advance(time.Hour)
	q.Process(ctx)
	if n := len(f.reports()); n != 0 {
		t.Fatalf("%d reports sent before approval", n)
	}
	held := l.reports(store.ReportReview)
	if len(held) != 3 {
		t.Fatalf("held %d", len(held))
	}
	approved, err := q.Review(ctx, []int64{held[2].ID}, true) // the first queued
	if err != nil || len(approved) != 1 {
		t.Fatalf("approved %v, %v", approved, err)
	}
	q.Process(ctx)
	if got := f.reports(); len(got) != 1 || got[0].Get("ip") != "203.0.113.1" {
		t.Fatalf("after approving one: %v", got)
	}
	if rejected, _ := q.Review(ctx, nil, false); len(rejected) != 2 {
		t.Fatalf("rejected %v", rejected)
	}
	if again, _ := q.Review(ctx, nil, true); len(again) != 0 {
		t.Fatalf("a rejected report approved: %v", again)
	}
	l.clock.Advance(time.Hour)
	q.Process(ctx)
	if got := f.reports(); len(got) != 1 {
		t.Fatalf("rejected reports sent: %v", got)
	}
	// A rejected target is not queued again within the period either.
	q.Decision(ctx, l.decision("203.0.113.2", "sshd", "ip-failures", "again"))
	if held := l.reports(store.ReportReview); len(held) != 0 {
		t.Fatalf("re-queued after rejection: %+v", held)
	}
}

// TestNothingTwiceAcrossRestart: a sent report's target is not reported
// again by a restarted daemon; a dry run records and sends nothing.
func TestNothingTwiceAcrossRestart(t *testing.T) {
	l := newLab(t)
	f := newFakeAbuseIPDB(t, "k-123-secret", l.clock.Now)
	recv := newFakeReceiver(t, "hook-secret", l.clock.Now)
	hook := func() *Webhook {
		return &Webhook{URL: recv.URL + "/hook", Secret: []byte("hook-secret"), HTTP: l.http(), now: l.clock.Now}
	}
	ctx := context.Background()
	cfg := Config{Modes: map[string]string{"webhook": ModeDryRun}}
	q := l.queue(cfg, l.abuseIPDB(f), hook())
	d := l.decision("203.0.113.7", "sshd", "ip-failures", "5 failures")
	q.Decision(ctx, d)
	q.Process(ctx)
	l.restart()
	l.clock.Advance(20 * time.Minute) // past AbuseIPDB's 15 minutes: only Rampart's dedup stops a second report
	q = l.queue(cfg, l.abuseIPDB(f), hook())
	q.Decision(ctx, d)
	q.Decision(ctx, l.decision("203.0.113.7", "sshd", "recidive", "banned 3 times"))
	q.Process(ctx)
	if f.seen["203.0.113.7"] != 1 || len(f.reports()) != 1 {
		t.Fatalf("reported %d times across a restart", f.seen["203.0.113.7"])
	}
	if st := q.Stats("abuseipdb"); st.Duplicates.Load() != 2 || st.Queued.Load() != 0 {
		t.Errorf("after the restart: %d duplicates, %d queued", st.Duplicates.Load(), st.Queued.Load())
	}
	if got := recv.received(); len(got) != 0 {
		t.Fatalf("dry run sent %d", len(got))
	}
	dry := l.reports(store.ReportDryRun)
	if len(dry) != 1 || dry[0].Reporter != "webhook" {
		t.Fatalf("dry-run records %+v", dry)
	}
	if _, text, err := q.Render(ctx, dry[0].ID); err != nil || !strings.Contains(text, `"addr":"203.0.113.7"`) {
		t.Fatalf("dry-run render %v: %s", err, text)
	}
	// A crash while sending: the report is sent again after the restart
	// (a receiver may see it twice; its delivery ID is the same), never lost.
	q2 := l.queue(Config{}, hook())
	q2.Decision(ctx, l.decision("203.0.113.99", "sshd", "ip-failures", "5"))
	pending := l.reports(store.ReportPending)
	pending[0].State = store.ReportSending
	l.st.UpdateReport(ctx, pending[0])
	l.restart()
	q2 = l.queue(Config{}, hook())
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { q2.Run(runCtx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(recv.received()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if got := recv.received(); len(got) != 1 || got[0].Target != "203.0.113.99" {
		t.Fatalf("resumed report: %+v", got)
	}
}

// Test429Storm: AbuseIPDB over its daily limit answers 429 with
// Retry-After for a while. The reporter pauses for as long as it is told
// (one request per pause, not one per report), loses nothing and sends
// nothing twice; a 429 is not an attempt.
func Test429Storm(t *testing.T) {
	l := newLab(t)
	f := newFakeAbuseIPDB(t, "k-123-secret", l.clock.Now)
	f.limited = 6
	q := l.queue(Config{MaxAttempts: 2}, l.abuseIPDB(f))
	ctx := context.Background()
	var addrs []string
	for i := range 12 {
		a := netip.AddrFrom4([4]byte{203, 0, 113, byte(20 + i)}).String()
		addrs = append(addrs, a)
		q.Decision(ctx, l.decision(a, "sshd", "ip-failures", "5 failures"))
	}
	for range 100 {
		q.Process(ctx)
		if len(f.reports()) == len(addrs) {
			break
		}
		l.clock.Advance(10 * time.Second)
	}
	for _, a := range addrs {
		if f.seen[a] != 1 {
			t.Errorf("%s reported %d times", a, f.seen[a])
		}
	}
	if f.answered[429] != 6 {
		t.Errorf("%d requests answered 429: the reporter did not wait as asked (want 6, one per pause)", f.answered[429])
	}
	sent := l.reports(store.ReportSent)
	if len(sent) != len(addrs) || len(l.reports(store.ReportFailed)) != 0 {
		t.Fatalf("sent %d, failed %d", len(sent), len(l.reports(store.ReportFailed)))
	}
	for _, r := range sent {
		if r.Attempts != 1 {
			t.Errorf("report %d: %d attempts; a 429 is not one", r.ID, r.Attempts)
		}
	}
	if q.Stats("abuseipdb").Limited.Load() < 6 {
		t.Errorf("limited %d", q.Stats("abuseipdb").Limited.Load())
	}
}

// TestRateLimitPerDestination: a reporter sends a destination at most
// per_hour reports an hour; the rest wait for a slot.
func TestRateLimitPerDestination(t *testing.T) {
	l := newLab(t)
	f := newFakeAbuseIPDB(t, "k-123-secret", l.clock.Now)
	q := l.queue(Config{PerHour: map[string]int{"abuseipdb": 3}}, l.abuseIPDB(f))
	ctx := context.Background()
	for i := range 5 {
		q.Decision(ctx, l.decision(netip.AddrFrom4([4]byte{203, 0, 113, byte(40 + i)}).String(), "sshd", "ip-failures", "5"))
	}
	q.Process(ctx)
	if n := len(f.reports()); n != 3 {
		t.Fatalf("first hour: %d sent, want 3", n)
	}
	l.clock.Advance(30 * time.Minute)
	q.Process(ctx)
	if n := len(f.reports()); n != 3 {
		t.Fatalf("half an hour later: %d sent", n)
	}
	l.clock.Advance(31 * time.Minute)
	q.Process(ctx)
	if n := len(f.reports()); n != 5 {
		t.Fatalf("an hour later: %d sent, want 5", n)
	}
}

// TestRetriesAndFailures: 5xx answers are tried again with backoff; a
// refusal (400) is given up at once; max_attempts bounds the tries.
func TestRetriesAndFailures(t *testing.T) {
	l := newLab(t)
	recv := newFakeReceiver(t, "hook-secret", l.clock.Now)
	recv.fail = func(n int) int {
		switch {
		case n <= 2:
			return 503
		case n == 4:
			return 400
		case n >= 5:
			return 502
		}
		return 0
	}
	q := l.queue(Config{MaxAttempts: 3}, &Webhook{URL: recv.URL, Secret: []byte("hook-secret"), HTTP: l.http(), now: l.clock.Now})
	ctx := context.Background()
	q.Decision(ctx, l.decision("203.0.113.7", "sshd", "ip-failures", "5"))
	q.Process(ctx) // 503
	l.clock.Advance(30 * time.Second)
	q.Process(ctx) // not due yet
	l.clock.Advance(30 * time.Second)
	q.Process(ctx) // 503
	l.clock.Advance(2 * time.Minute)
	q.Process(ctx) // 204
	sent := l.reports(store.ReportSent)
	if len(sent) != 1 || sent[0].Attempts != 3 || recv.n != 3 {
		t.Fatalf("sent %+v after %d requests", sent, recv.n)
	}
	if recv.deliveries["report-"+strconv.FormatInt(sent[0].ID, 10)] != 1 {
		t.Errorf("deliveries %v", recv.deliveries)
	}
	q.Decision(ctx, l.decision("203.0.113.8", "sshd", "ip-failures", "5"))
	q.Process(ctx) // 400: given up
	q.Decision(ctx, l.decision("203.0.113.9", "sshd", "ip-failures", "5"))
	for range 5 {
		q.Process(ctx) // 502 three times, then given up
		l.clock.Advance(time.Hour)
	}
	failed := l.reports(store.ReportFailed)
	if len(failed) != 2 || failed[0].Attempts != 3 || failed[1].Attempts != 1 {
		t.Fatalf("failed %+v", failed)
	}
	if st := q.Stats("webhook"); st.Retried.Load() != 4 || st.Failed.Load() != 2 || recv.badSig != 0 {
		t.Errorf("retried %d failed %d bad signatures %d", st.Retried.Load(), st.Failed.Load(), recv.badSig)
	}
}

// TestNetcraftLinks: the links a trapped message advertised reach
// Netcraft's API, each once; redirectors are not reported (their targets
// are), nor big providers' links.
func TestNetcraftLinks(t *testing.T) {
	l := newLab(t)
	f := newFakeNetcraft(t, "nc-key")
	q := l.queue(Config{}, &Netcraft{URL: f.URL + "/api/v3/report/urls", Email: "reports@our-org.test", Key: "nc-key", HTTP: l.http()})
	ctx := context.Background()
	m, r, inds := l.trapped("redirectors.eml", "203.0.113.45")
	q.Message(ctx, m, r, inds, false)
	m2, r2, inds2 := l.trapped("redirectors.eml", "203.0.113.46") // the same links again
	q.Message(ctx, m2, r2, inds2, false)
	q.Process(ctx)
	want := []string{"http://parcel-fee.example/fb", "https://bit.ly/3xParcel", "https://parcel-fee.example/pay?c=4471",
		"https://parcel-fee.example/reschedule", "https://parcel-news.example/story/4471"}
	var got []string
	for u, n := range f.urls {
		got = append(got, u)
		if n != 1 {
			t.Errorf("%s reported %d times", u, n)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("reported\n %v\nwant\n %v", got, want)
	}
	if f.body[0]["email"] != "reports@our-org.test" || !strings.Contains(f.body[0]["reason"].(string), "203.0.113.45") {
		t.Errorf("body %v", f.body[0])
	}
	if sent := l.reports(store.ReportSent); len(sent) != 5 || !strings.HasPrefix(sent[0].Receipt, "submission ") {
		t.Errorf("sent %+v", sent)
	}
}

func TestRedactor(t *testing.T) {
	r := NewRedactor([]string{"Mail.Our-Host.test", "our-host.test"}, []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")})
	keep := netip.MustParseAddr("203.0.113.7")
	for in, want := range map[string]string{
		`5 failures for "alice" from 203.0.113.7 to 192.0.2.10`:                        `5 failures for "[user]" from 203.0.113.7 to [local address]`,
		"relay MAIL.OUR-HOST.TEST refused bob@our-host.test":                           "relay [local] refused [email]",
		"prefix 198.51.100.0/24 (last: 198.51.100.7) and 2001:db8::10 and 2001:db8::7": "prefix [address]/24 (last: [address]) and [local address] and [address]",
		"line\nbreak\x1b[31m": "line break[31m",
	} {
		if got := r.Text(in, 0, keep); got != want {
			t.Errorf("Text(%q)\n got %q\nwant %q", in, got, want)
		}
	}
	if got := r.Text(strings.Repeat("é", 600), 1000); len(got) != 1000 {
		t.Errorf("cut to %d bytes", len(got))
	}
	msg := r.Message([]byte("To: \"Victim One\" <Victim1@Customer.example>,\n victim2@customer.example\nReceived: from mail.our-host.test ([192.0.2.10])\n"+
		"CC: a@b.example\n\nhi victim1@customer.example\nTo: not a header\n"), []string{"victim1@customer.example"})
	if want := "To: [redacted]\r\nReceived: from [local] ([[local address]])\r\nCC: [redacted]\r\n\r\nhi [redacted]\r\nTo: not a header\r\n"; string(msg) != want {
		t.Errorf("Message:\n got %q\nwant %q", msg, want)
	}
}

func TestRedactLink(t *testing.T) {
	victims := []string{"Victim1@Customer.example", "<v2@other.example>"}
	for in, want := range map[string]string{
		"https://phish.example/login?user=victim1@customer.example":    "https://phish.example/login?user=redacted@example.invalid",
		"https://phish.example/login?u=VICTIM1%40customer.example&x=1": "https://phish.example/login?u=redacted%40example.invalid&x=1",
		"https://phish.example/#dmljdGltMUBjdXN0b21lci5leGFtcGxl":      "https://phish.example/#cmVkYWN0ZWRAZXhhbXBsZS5pbnZhbGlk",
		"https://phish.example/p/djJAb3RoZXIuZXhhbXBsZQ==/x":           "https://phish.example/p/cmVkYWN0ZWRAZXhhbXBsZS5pbnZhbGlk/x",
		"https://phish.example/clean":                                  "https://phish.example/clean",
	} {
		if got := redactLink(in, victims); got != want {
			t.Errorf("redactLink(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}
