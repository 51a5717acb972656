package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rampart-dev/rampart/internal/action"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/policy/postfix"
)

// scrape serves one scrape of h and parses it as Prometheus would.
func scrape(t *testing.T, h http.Handler) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	body := rec.Body.String()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, body)
	}
	return fams, body
}

// labelled returns the value of family name's series with label = value.
func labelled(t *testing.T, fams map[string]*dto.MetricFamily, name, label, value string) (float64, bool) {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				if f.GetType() == dto.MetricType_COUNTER {
					return m.GetCounter().GetValue(), true
				}
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func TestMetricsExpositionParses(t *testing.T) {
	// Label values that need escaping: quotes, backslashes, a newline,
	// non-ASCII text. A source is named after its file path, which the
	// configuration (or a hostile file name) decides.
	hostile := "/var/log/we\"ird\\path\nnext \u00e9\u2603.log"
	st := Status{
		Engine:  EngineStatus{Tracked: 12, TrackedCap: 1_000_000, Events: 345, Surge: true},
		Insight: InsightStatus{Dropped: 6},
		Health:  []Health{{Component: "store", State: HealthOK}, {Component: "source " + hostile, State: HealthDegraded}},
		Jails:   []JailStatus{{Name: "sshd", Banned: 7}, {Name: "postfix", Banned: 0}},
		Sources: []SourceState{
			{Source: hostile, Lines: 1000, Skipped: 3},
			{Source: "syslog udp 127.0.0.1:514", Lines: 5},
		},
		Policy:    &PolicyStatus{Postfix: &postfix.Stats{Requests: 9, Parked: 2}},
		Evidence:  &EvidenceStatus{Messages: 2, Indicators: 30},
		Reporting: &ReportingStatus{Reporters: []ReporterStatus{{Name: "abuseipdb", Sent: 3}}},
		Actions:   []action.Stats{{Name: "notify", Done: 2}},
		Shields: &ShieldsStatus{Events: 4, Counters: []firewall.ShieldCounter{
			{Group: "ssh", Kind: firewall.ShieldRate, Packets: 17}, {Kind: firewall.ShieldScan, Packets: 3}}},
	}
	fams, body := scrape(t, newMetricsHandler(func() Status { return st }, slog.New(slog.DiscardHandler)))

	for _, m := range metricTable() {
		if strings.HasPrefix(m.name, "rampart_dovecot_") {
			if _, ok := fams[m.name]; ok {
				t.Errorf("%s exported without a Dovecot policy server", m.name)
			}
			continue
		}
		f, ok := fams[m.name]
		if !ok {
			t.Errorf("family %s missing", m.name)
			continue
		}
		want := dto.MetricType_GAUGE
		if m.kind == counter {
			want = dto.MetricType_COUNTER
		}
		if f.GetType() != want || f.GetHelp() != m.help {
			t.Errorf("%s: type %v help %q, want %v %q", m.name, f.GetType(), f.GetHelp(), want, m.help)
		}
	}
	scalar := func(name string) float64 {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Fatalf("%s: %v", name, f)
		}
		if f.GetType() == dto.MetricType_COUNTER {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
		return f.GetMetric()[0].GetGauge().GetValue()
	}
	for name, want := range map[string]float64{
		"rampart_engine_tracked_keys":           12,
		"rampart_engine_tracked_keys_cap":       1e6,
		"rampart_engine_events_total":           345,
		"rampart_engine_surge":                  1,
		"rampart_insight_dropped_total":         6,
		"rampart_postfix_policy_requests_total": 9,
		"rampart_postfix_policy_parked":         2,
	} {
		if got := scalar(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"rampart_source_lines_total", "source", hostile, 1000},
		{"rampart_source_skipped_total", "source", hostile, 3},
		{"rampart_healthy", "component", "source " + hostile, 0},
		{"rampart_healthy", "component", "store", 1},
		{"rampart_jail_banned", "jail", "sshd", 7},
		{"rampart_source_connections_refused_total", "source", "syslog udp 127.0.0.1:514", 0},
	} {
		got, ok := labelled(t, fams, c.name, c.label, c.value)
		if !ok || got != c.want {
			t.Errorf("%s{%s=%q} = %v (present %v), want %v", c.name, c.label, c.value, got, ok, c.want)
		}
	}
	if _, ok := labelled(t, fams, "rampart_source_connections_refused_total", "source", hostile); ok {
		t.Error("a file source has syslog connection counters")
	}
	// The runtime's and the process's collectors come along.
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	// The exact text, for the names a dashboard greps for.
	for _, want := range []string{"rampart_engine_tracked_keys_cap 1e+06\n", `rampart_jail_banned{jail="sshd"} 7` + "\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

func TestMetricsListener(t *testing.T) {
	h := newMetricsHandler(func() Status { return Status{Jails: []JailStatus{{Name: "sshd", Banned: 1}}} }, slog.New(slog.DiscardHandler))
	ms, err := listenMetrics("127.0.0.1:0", h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ms.serve(ctx) }()
	url := "http://" + ms.ln.Addr().String()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `rampart_jail_banned{jail="sshd"} 1`) {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	// Only /metrics, only GET.
	if resp, err := http.Post(url+"/metrics", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /metrics: %v %v", resp.Status, err)
	}
	if resp, err := http.Get(url + "/v1/status"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /v1/status on the metrics listener: %v %v", resp.Status, err)
	}
	cancel()
	<-done
	if _, err := net.Dial("tcp", ms.ln.Addr().String()); err == nil {
		t.Fatal("metrics listener still open after shutdown")
	}
}

// TestGrafanaDashboard: dist's dashboard is valid JSON and asks only for
// families the daemon exports (a renamed metric would leave a panel empty).
func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("../../dist/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	known := map[string]bool{}
	for _, m := range metricTable() {
		known[m.name] = true
	}
	name := regexp.MustCompile(`rampart_[a-z_]+`)
	used := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				used++
				if !known[n] {
					t.Errorf("panel %q queries %s, which the daemon does not export", p.Title, n)
				}
			}
		}
	}
	if used < 10 {
		t.Errorf("dashboard queries only %d rampart metrics", used)
	}
}
