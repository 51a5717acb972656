package bouncer

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newServer(t *testing.T) (*engine.Engine, *httptest.Server, *time.Time) {
	t.Helper()
	e, err := engine.New(engine.DefaultConfig(engine.Jail{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 3, FindTime: time.Minute, BanTime: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	s := New(e, []Key{{Name: "fw", Secret: "0123456789abcdef-fw"}, {Name: "nginx", Secret: "0123456789abcdef-nginx"}}, nil)
	s.now = func() time.Time { return now }
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return e, ts, &now
}

func get(t *testing.T, ts *httptest.Server, key, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.URL+path, nil)
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func ban(t *testing.T, e *engine.Engine, target string, start time.Time, d time.Duration) {
	t.Helper()
	if _, err := e.Ban(event.Decision{Target: netip.MustParsePrefix(target), Action: event.Ban, Start: start, Duration: d, Scenario: "ip-failures", Origin: "local"}); err != nil {
		t.Fatal(err)
	}
}

// TestStream: startup sends what is in force; later pulls send what is
// new and what ended or was lifted, per bouncer; scopes filter.
func TestStream(t *testing.T) {
	e, ts, now := newServer(t)
	ban(t, e, "192.0.2.1/32", t0, time.Hour)
	ban(t, e, "198.51.100.0/24", t0, 10*time.Minute)
	ban(t, e, "2001:db8::/64", t0, 0)
	pull := func(key, q string) StreamResponse {
		t.Helper()
		code, body := get(t, ts, key, "/v1/decisions/stream"+q)
		if code != 200 {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		var r StreamResponse
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	values := func(ds []Decision) string {
		var v []string
		for _, d := range ds {
			v = append(v, d.Scope+":"+d.Value+":"+d.Duration)
		}
		return strings.Join(v, " ")
	}
	r := pull("0123456789abcdef-fw", "?startup=true&scopes=ip,range")
	if got := values(r.New); got != "Ip:192.0.2.1:1h0m0s Range:198.51.100.0/24:10m0s Range:2001:db8::/64:87600h0m0s" || len(r.Deleted) != 0 {
		t.Fatalf("startup: new %s, deleted %s", got, values(r.Deleted))
	}
	if r := pull("0123456789abcdef-fw", "?scopes=ip,range"); len(r.New)+len(r.Deleted) != 0 {
		t.Fatalf("nothing changed, yet %+v", r)
	}
	*now = t0.Add(15 * time.Minute) // the /24 ended
	ban(t, e, "203.0.113.9/32", *now, time.Hour)
	e.Unban(netip.MustParsePrefix("192.0.2.1/32"))
	r = pull("0123456789abcdef-fw", "?scopes=Ip,Range")
	if values(r.New) != "Ip:203.0.113.9:1h0m0s" || values(r.Deleted) != "Ip:192.0.2.1:0s Range:198.51.100.0/24:0s" {
		t.Fatalf("changes: new %s, deleted %s", values(r.New), values(r.Deleted))
	}
	// A bouncer restarting asks for startup again: all in force, resent.
	r = pull("0123456789abcdef-fw", "?startup=true&scopes=ip,range")
	if values(r.New) != "Range:2001:db8::/64:87600h0m0s Ip:203.0.113.9:1h0m0s" || len(r.Deleted) != 0 {
		t.Fatalf("startup again: new %s, deleted %s", values(r.New), values(r.Deleted))
	}
	// Another bouncer has its own state; naming no scope leaves ranges out.
	if r := pull("0123456789abcdef-nginx", "?startup=true"); values(r.New) != "Ip:203.0.113.9:1h0m0s" {
		t.Fatalf("nginx with no scopes: %s", values(r.New))
	}
	// A ban extended is sent again with its new duration, not deleted.
	ban(t, e, "203.0.113.9/32", *now, 2*time.Hour)
	if r := pull("0123456789abcdef-fw", "?scopes=ip,range"); values(r.New) != "Ip:203.0.113.9:2h0m0s" || len(r.Deleted) != 0 {
		t.Fatalf("extended: new %s, deleted %s", values(r.New), values(r.Deleted))
	}
}

// TestDecisionsAndBlocklists: the ip= and range= queries, null when
// nothing, the blocklists, and the key check.
func TestDecisionsAndBlocklists(t *testing.T) {
	e, ts, _ := newServer(t)
	ban(t, e, "198.51.100.0/24", t0, time.Hour)
	ban(t, e, "192.0.2.1/32", t0, time.Hour)
	key := "0123456789abcdef-fw"
	if code, body := get(t, ts, key, "/v1/decisions?ip=198.51.100.7"); code != 200 || !strings.Contains(body, `"value":"198.51.100.0/24"`) || !strings.Contains(body, `"scope":"Range"`) {
		t.Errorf("ip in a banned range: %d %s", code, body)
	}
	if code, body := get(t, ts, key, "/v1/decisions?ip=203.0.113.1"); code != 200 || strings.TrimSpace(body) != "null" {
		t.Errorf("clean ip: %d %s", code, body)
	}
	if code, _ := get(t, ts, key, "/v1/decisions?ip=nope"); code != 400 {
		t.Errorf("bad ip: %d", code)
	}
	if code, body := get(t, ts, key, "/v1/decisions?range=198.51.100.0/24"); code != 200 || !strings.Contains(body, `"origin":"rampart"`) {
		t.Errorf("range: %d %s", code, body)
	}
	if _, body := get(t, ts, key, "/v1/blocklist.txt"); body != "192.0.2.1\n198.51.100.0/24\n" {
		t.Errorf("text blocklist %q", body)
	}
	if _, body := get(t, ts, key, "/v1/blocklist.json"); !strings.HasPrefix(body, `[{"target":"192.0.2.1/32","end":"2026-05-01T13:00:00Z","scenario":"ip-failures","origin":"local"}`) {
		t.Errorf("json blocklist %s", body)
	}
	for _, k := range []string{"", "wrong", "0123456789abcdef-f", "0123456789abcdef-fwx"} {
		if code, _ := get(t, ts, k, "/v1/decisions/stream?startup=true"); code != 403 {
			t.Errorf("key %q: %d, want 403", k, code)
		}
	}
}
