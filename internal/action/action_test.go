package action

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/httpout"
	"github.com/rampart-dev/rampart/internal/smarthost"
	"github.com/rampart-dev/rampart/internal/smarthost/smarthosttest"
)

// hostile is a reason carrying what an attacker can put in a log line
// (a user name): quotes, a line break, shell syntax.
const hostile = "5 failures for \"x\\\"; rm -rf /\"\n$(touch /tmp/pwned) `id` 'quoted'"

func sampleBan(addr string) event.Decision {
	return event.Decision{Target: event.AddrPrefix(netip.MustParseAddr(addr)), Action: event.Ban,
		Start: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), Duration: time.Hour, Scenario: "ip-failures", Reason: hostile, Jail: "sshd", Origin: "local"}
}

// blocking is a sink that waits until released, counting what it got.
type blocking struct {
	release chan struct{}
	mu      sync.Mutex
	got     []Event
}

func (b *blocking) Handle(ctx context.Context, ev Event) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	b.got = append(b.got, ev)
	b.mu.Unlock()
	return nil
}

// TestPublishNeverBlocks: an action that hangs takes at most its queue;
// the rest is dropped and counted at once; the others are unaffected.
func TestPublishNeverBlocks(t *testing.T) {
	slow := &blocking{release: make(chan struct{})}
	fast := &blocking{release: make(chan struct{})}
	close(fast.release)
	d := NewDispatcher([]*Action{
		{Name: "slow", Type: "exec", Filter: Filter{On: []string{Ban}}, Sink: slow, Queue: 3, Timeout: time.Minute},
		{Name: "fast", Type: "exec", Filter: Filter{On: []string{Ban}}, Sink: fast, Queue: 1000, Timeout: time.Minute},
	}, "host.test", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	start := time.Now()
	for i := range 100 {
		d.Decided([]event.Decision{sampleBan(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}).String())})
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("publishing 100 events took %s", took)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := d.Stats()
		if st[1].Done == 100 {
			if s := st[0]; s.Queued+s.Dropped != 100 || s.Dropped < 96 {
				t.Fatalf("slow action: %+v", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fast action: %+v", st[1])
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(slow.release)
	for st := d.Stats()[0]; st.Done != st.Queued; st = d.Stats()[0] {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("slow action never finished: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if st := d.Stats()[0]; st.Done != st.Queued || st.Waiting != 0 {
		t.Fatalf("queued events not finished at the end: %+v", st)
	}
}

func TestFilterAndExpiry(t *testing.T) {
	var mu sync.Mutex
	var got []Event
	rec := SinkFunc(func(_ context.Context, ev Event) error { mu.Lock(); got = append(got, ev); mu.Unlock(); return nil })
	d := NewDispatcher([]*Action{{Name: "a", Type: "exec", Filter: Filter{On: []string{Ban, Unban}, Jails: []string{"sshd"}}, Sink: rec, Queue: 100}}, "h", nil)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	b := sampleBan("203.0.113.7")
	d.Decided([]event.Decision{b})
	other := sampleBan("203.0.113.8")
	other.Jail = "postfix" // not this action's jail
	d.Decided([]event.Decision{other})
	trap := sampleBan("203.0.113.9")
	trap.Action = event.Trap // not an event it takes
	d.Decided([]event.Decision{trap})
	d.expire(t0.Add(30 * time.Minute))
	again := b
	again.Start, again.Duration = t0.Add(50*time.Minute), 2*time.Hour // banned again before the end: ends later
	d.Decided([]event.Decision{again})
	d.expire(t0.Add(time.Hour)) // the first end: no unban, the ban goes on
	d.expire(t0.Add(3 * time.Hour))
	d.Unbanned(netip.MustParsePrefix("203.0.113.8/32"), "unbanned by hand") // postfix's: filtered out
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.Run(ctx) // drains
	var summary []string
	for _, ev := range got {
		summary = append(summary, ev.Type+" "+ev.IP+" "+ev.End.Format("15:04")+" "+ev.Reason[:min(7, len(ev.Reason))])
	}
	// The trap is no event this action takes, but its end is an unban.
	want := []string{"ban 203.0.113.7 11:00 5 failu", "ban 203.0.113.7 12:50 5 failu", "unban 203.0.113.9 00:00 expired", "unban 203.0.113.7 00:00 expired"}
	if strings.Join(summary, "|") != strings.Join(want, "|") {
		t.Fatalf("events\n got %q\nwant %q", summary, want)
	}
	if got[3].Jail != "sshd" || !got[3].Time.Equal(t0.Add(170*time.Minute)) {
		t.Errorf("unban %+v", got[3])
	}
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(context.Context, Event) error

func (f SinkFunc) Handle(ctx context.Context, ev Event) error { return f(ctx, ev) }

var _ Sink = SinkFunc(nil)

func TestWebhook(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	var sigs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies, sigs = append(bodies, b), append(sigs, r.Header.Get(httpout.SignatureHeader))
		mu.Unlock()
		if r.Header.Get("X-Rampart-Event") != "ban" || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(400)
		}
	}))
	defer srv.Close()
	hc := httpout.New(httpout.Options{})
	ev := FromDecision(sampleBan("203.0.113.7"), "mail.example.test")
	// A template: fields escaped inside JSON strings, whatever they hold.
	tmpl := template.Must(template.New("t").Parse(`{"text": "{{.IP}} banned by {{.Jail}}: {{.Reason}}", "seconds": {{.DurationS}}}`))
	w := &Webhook{URL: srv.URL, Secret: []byte("s3"), Template: tmpl, HTTP: hc}
	if err := w.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	// No template: the event as JSON; no secret: no signature.
	if err := (&Webhook{URL: srv.URL, HTTP: hc}).Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	var templated struct {
		Text    string `json:"text"`
		Seconds int    `json:"seconds"`
	}
	if err := json.Unmarshal(bodies[0], &templated); err != nil || templated.Text != "203.0.113.7 banned by sshd: "+hostile || templated.Seconds != 3600 {
		t.Fatalf("templated body %s: %v", bodies[0], err)
	}
	if err := httpout.Verify([]byte("s3"), sigs[0], bodies[0], time.Now(), time.Minute); err != nil {
		t.Errorf("signature: %v", err)
	}
	var plain Event
	if err := json.Unmarshal(bodies[1], &plain); err != nil || plain.Reason != hostile || plain.Host != "mail.example.test" || sigs[1] != "" {
		t.Fatalf("plain body %s: %v", bodies[1], err)
	}
	// A template writing something that is not JSON is refused, not sent.
	bad := &Webhook{URL: srv.URL, HTTP: hc, Template: template.Must(template.New("b").Parse(`{"text": {{.Reason}}}`))}
	if err := bad.Handle(context.Background(), ev); err == nil || len(bodies) != 2 {
		t.Fatalf("invalid JSON: %v, %d bodies", err, len(bodies))
	}
}

func TestExec(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	ev := FromDecision(sampleBan("203.0.113.7"), "h")
	ev.Reason = strings.ReplaceAll(hostile, "/tmp/pwned", pwned)
	script := filepath.Join(dir, "record.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nout=$1; shift\nfor a in \"$@\"; do printf '%s\\n---\\n' \"$a\"; done > \"$out\"\nprintf '%s' \"$RAMPART_IP $RAMPART_DURATION_S $PATH\" > \"$out.env\"\n"), 0o755)
	out := filepath.Join(dir, "argv")
	x := &Exec{Argv: tmpls(t, script, out, "{{.IP}}", "{{.Reason}}")}
	ctx := context.Background()
	if err := x.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if string(b) != "203.0.113.7\n---\n"+ev.Reason+"\n---\n" {
		t.Fatalf("argv:\n%s", b)
	}
	if env, _ := os.ReadFile(out + ".env"); !strings.HasPrefix(string(env), "203.0.113.7 3600 /usr/local/sbin:") {
		t.Errorf("environment %q", env)
	}
	// With a shell, fields are quoted.
	shellOut := filepath.Join(dir, "shell")
	sh := &Exec{Shell: true, Argv: tmpls(t, "printf '%s|%s' {{.IP}} {{.Reason}} > "+shellOut)}
	if err := sh.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(shellOut); string(b) != "203.0.113.7|"+ev.Reason {
		t.Fatalf("shell output %q", b)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a field ran as a command")
	}
	// A failing program's output is in the error.
	fail := &Exec{Argv: tmpls(t, "/bin/sh", "-c", "echo broken pipe >&2; exit 3")}
	if err := fail.Handle(ctx, ev); err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("failure: %v", err)
	}
	// At the timeout the whole process group is killed: the child too.
	pidFile := filepath.Join(dir, "pid")
	hang := &Exec{Argv: tmpls(t, "/bin/sh", "-c", "sleep 60 & echo $! > "+pidFile+"; wait")}
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := hang.Handle(tctx, ev); err == nil || !strings.Contains(err.Error(), "timeout") || time.Since(start) > 5*time.Second {
		t.Fatalf("hang: %v after %s", err, time.Since(start))
	}
	pb, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pb)))
	deadline := time.Now().Add(3 * time.Second)
	for pid > 0 && processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the child %d outlived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func tmpls(t *testing.T, args ...string) []*template.Template {
	var out []*template.Template
	for _, a := range args {
		out = append(out, template.Must(template.New("x").Parse(a)))
	}
	return out
}

func TestDigest(t *testing.T) {
	refuse := true
	var mu sync.Mutex
	relay := smarthosttest.New(t, smarthosttest.Options{Refuse: func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	}})
	m := &Digest{Mail: smarthost.New(smarthost.Config{Addr: relay.Addr, TLSConfig: relay.ClientTLS}), From: "Rampart <rampart@example.test>",
		To: []string{"ops@example.test"}, Subject: template.Must(template.New("s").Parse("Rampart: {{.Count}} events on {{.Host}}")),
		Every: time.Hour, Host: "mail.example.test"}
	ctx := context.Background()
	for i := range 3 {
		m.Handle(ctx, FromDecision(sampleBan("203.0.113."+strconv.Itoa(i+1)), "mail.example.test"))
	}
	if n, err := m.Flush(ctx); err == nil || n != 3 {
		t.Fatalf("refused digest: %d, %v", n, err)
	}
	m.Handle(ctx, Event{Type: Report, Time: time.Now(), IP: "203.0.113.4", Reporter: "abuseipdb", Kind: "attack", Target: "203.0.113.4", Destination: "api.abuseipdb.com"})
	mu.Lock()
	refuse = false
	mu.Unlock()
	if n, err := m.Flush(ctx); err != nil || n != 0 {
		t.Fatalf("flush: %d, %v", n, err)
	}
	if n, err := m.Flush(ctx); err != nil || n != 0 {
		t.Fatalf("an empty flush: %d, %v", n, err)
	}
	got := relay.Wait(t, 1, 5*time.Second)
	if len(got) != 1 || got[0].From != "rampart@example.test" || got[0].To[0] != "ops@example.test" {
		t.Fatalf("mailed %+v", got)
	}
	body := string(got[0].Data)
	for _, want := range []string{"Subject: Rampart: 4 events on mail.example.test\r\n", "ban    203.0.113.1", "report 203.0.113.4", "abuseipdb attack of 203.0.113.4 to api.abuseipdb.com"} {
		if !strings.Contains(body, want) {
			t.Errorf("digest lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "\n$(touch") {
		t.Errorf("a reason's line break reached the mail:\n%s", body)
	}
}

func TestSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := OpenSQL("sqlite", path, "bans")
	if err != nil {
		t.Fatal(err)
	}
	checkSQL(t, s, "sqlite", path, "SELECT ip, reason, duration_s, time FROM bans ORDER BY id")
}

// checkSQL writes three events in two batches through s and reads them
// back through a connection of its own (database/sql's driver and dsn).
func checkSQL(t *testing.T, s *SQL, driver, dsn, query string) {
	t.Helper()
	ctx := context.Background()
	evs := []Event{FromDecision(sampleBan("203.0.113.1"), "h"), FromDecision(sampleBan("2001:db8::7"), "h")}
	if err := s.HandleBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.Handle(ctx, Event{Type: Unban, Time: time.Now(), IP: "203.0.113.1", Reason: "expired", Host: "h"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var ip, reason, ts string
		var dur int64
		var tv any
		if err := rows.Scan(&ip, &reason, &dur, &tv); err != nil {
			t.Fatal(err)
		}
		switch v := tv.(type) {
		case time.Time:
			ts = v.UTC().Format(time.RFC3339)
		case string:
			ts = v
		}
		got = append(got, ip+" "+strconv.FormatInt(dur, 10)+" "+ts[:10]+" "+strconv.FormatBool(reason == hostile))
	}
	if len(got) != 3 || got[0] != "203.0.113.1 3600 2026-03-01 true" || got[1] != "2001:db8::7 3600 2026-03-01 true" || !strings.HasPrefix(got[2], "203.0.113.1 0 ") {
		t.Fatalf("rows %q", got)
	}
}
