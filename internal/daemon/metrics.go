package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampart-dev/rampart/internal/policy/dovecot"
	"github.com/rampart-dev/rampart/internal/policy/postfix"
)

// The metrics are read from the daemon's status when Prometheus scrapes,
// not kept in counters of their own: the engine, the sources and the
// policy servers already count, and a second set of counters could only
// drift from what `rampart status` shows. So a collector turns one status
// snapshot into constant metrics (the client library renders them, label
// values escaped as the exposition format wants), beside the Go runtime's
// and the process's own collectors.
//
// They are served on the control socket (GET /metrics) and, when
// [metrics] listen names an address, on a TCP listener of their own.

// metric is one family: its name, help, type and how to read it from a
// status. A family with a label reads one value per label value.
type metric struct {
	name, help string
	kind       prometheus.ValueType
	label      string // "" for one unlabelled value
	value      func(*Status) (float64, bool)
	values     func(*Status) map[string]float64
}

const (
	gauge   = prometheus.GaugeValue
	counter = prometheus.CounterValue
)

func always(f func(*Status) float64) func(*Status) (float64, bool) {
	return func(st *Status) (float64, bool) { return f(st), true }
}

// pf and dv read a policy server's counter; there is no series while the
// server is off.
func pf(f func(*postfix.Stats) uint64) func(*Status) (float64, bool) {
	return func(st *Status) (float64, bool) {
		if st.Policy == nil || st.Policy.Postfix == nil {
			return 0, false
		}
		return float64(f(st.Policy.Postfix)), true
	}
}

func dv(f func(*dovecot.Stats) uint64) func(*Status) (float64, bool) {
	return func(st *Status) (float64, bool) {
		if st.Policy == nil || st.Policy.Dovecot == nil {
			return 0, false
		}
		return float64(f(st.Policy.Dovecot)), true
	}
}

// metricTable lists every family the daemon exports, in exposition order.
// The names are a public interface (dashboards, alerts): never rename one.
func metricTable() []metric {
	return append([]metric{
		{name: "rampart_engine_tracked_keys", help: "Tracked (address, jail) keys.", kind: gauge, value: always(func(s *Status) float64 { return float64(s.Engine.Tracked) })},
		{name: "rampart_engine_tracked_keys_cap", help: "Hard cap on tracked keys.", kind: gauge, value: always(func(s *Status) float64 { return float64(s.Engine.TrackedCap) })},
		{name: "rampart_engine_evicted_total", help: "Keys evicted because the table was full.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Engine.Evicted) })},
		{name: "rampart_engine_events_total", help: "Events observed.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Engine.Events) })},
		{name: "rampart_engine_decisions_total", help: "Decisions taken.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Engine.Decisions) })},
		{name: "rampart_engine_allowlisted_total", help: "Events from allowlisted addresses.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Engine.Allowlisted) })},
		{name: "rampart_engine_while_banned_total", help: "Events from addresses already banned.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Engine.WhileBanned) })},
		{name: "rampart_engine_successes_total", help: "Successful logins seen.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Engine.Successes) })},
		{name: "rampart_engine_known_good", help: "Addresses remembered as known-good.", kind: gauge, value: always(func(s *Status) float64 { return float64(s.Engine.KnownGood) })},
		{name: "rampart_engine_active_bans", help: "Active decisions.", kind: gauge, value: always(func(s *Status) float64 { return float64(s.Engine.ActiveBans) })},
		{name: "rampart_engine_active_bans_evicted_total", help: "Active bans forgotten by the engine because its table was full (the firewall and the store keep them).", kind: counter, value: always(func(s *Status) float64 { return float64(s.Engine.ActiveEvicted) })},
		{name: "rampart_engine_surges_total", help: "Times surge mode turned on.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Engine.Surges) })},
		{name: "rampart_engine_surge", help: "1 while surge mode is on.", kind: gauge, value: always(func(s *Status) float64 { return b2f(s.Engine.Surge) })},
		{name: "rampart_insight_dropped_total", help: "Counts left out of the hourly aggregates' per-key rows (address, user, service...) and kept in their jail's total only: more distinct keys between two writes than the counter holds.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Insight.Dropped) })},
		{name: "rampart_firewall_applied_total", help: "Decisions applied to the firewall.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Firewall.Applied) })},
		{name: "rampart_firewall_failed_total", help: "Decisions the firewall failed to apply.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Firewall.Failed) })},
		{name: "rampart_decisions_backlog", help: "Decisions waiting for the firewall and the store (log sources wait past 100,000).", kind: gauge, value: always(func(s *Status) float64 { return float64(s.Firewall.Backlog) })},
		{name: "rampart_firewall_carved_out", help: "Good clients let through prefix bans.", kind: gauge, value: always(func(s *Status) float64 { return float64(s.Firewall.CarvedOut) })},
		{name: "rampart_firewall_repairs_total", help: "Times the kernel had lost part of Rampart's state and it was put back.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Firewall.Repairs) })},
		{name: "rampart_firewall_restored_total", help: "Bans, carve-outs and allowlist entries put back in the kernel.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Firewall.Restored) })},
		{name: "rampart_reloads_total", help: "Configuration reloads that succeeded.", kind: counter, value: always(func(s *Status) float64 { return float64(s.Reload.Reloads) })},
		{name: "rampart_reload_failures_total", help: "Configuration reloads refused (the running configuration stayed in force).", kind: counter, value: always(func(s *Status) float64 { return float64(s.Reload.Failures) })},
		{name: "rampart_config_last_reload_ok", help: "1 unless the last reload failed.", kind: gauge, value: always(func(s *Status) float64 { return b2f(s.Reload.LastError == "") })},
		{name: "rampart_healthy", help: "1 while a component works as configured, 0 while it is degraded or failed (see rampart status).", kind: gauge, label: "component", values: func(s *Status) map[string]float64 {
			m := map[string]float64{}
			for _, h := range s.Health {
				m[h.Component] = b2f(h.State == HealthOK)
			}
			return m
		}},
		{name: "rampart_jail_banned", help: "Active bans per jail.", kind: gauge, label: "jail", values: func(s *Status) map[string]float64 {
			m := map[string]float64{}
			for _, j := range s.Jails {
				m[j.Name] = float64(j.Banned)
			}
			return m
		}},
		{name: "rampart_source_lines_total", help: "Lines read per source.", kind: counter, label: "source", values: perSource(func(s SourceState) (float64, bool) { return float64(s.Lines), true })},
		{name: "rampart_source_skipped_total", help: "Lines skipped (too long, binary, future, invalid) per source.", kind: counter, label: "source", values: perSource(func(s SourceState) (float64, bool) { return float64(s.Skipped), true })},
		{name: "rampart_source_connections_refused_total", help: "Syslog TCP connections refused at once: over the per-address or total limit, or the descriptor budget.", kind: counter, label: "source", values: perSource(func(s SourceState) (float64, bool) { return float64(s.Rejected), syslogLike(s) })},
		{name: "rampart_source_connections_silent_total", help: "Syslog TCP connections closed for sending nothing at first.", kind: counter, label: "source", values: perSource(func(s SourceState) (float64, bool) { return float64(s.Silent), syslogLike(s) })},
		{name: "rampart_descriptors_limit", help: "RLIMIT_NOFILE.", kind: gauge, value: always(func(s *Status) float64 { return float64(s.Descriptors.Limit) })},
		{name: "rampart_descriptors_peers", help: "Descriptors the listeners may hold together.", kind: gauge, value: always(func(s *Status) float64 { return float64(s.Descriptors.Peers) })},
		{name: "rampart_descriptors_peers_used", help: "Descriptors the listeners hold now.", kind: gauge, value: always(func(s *Status) float64 { return float64(s.Descriptors.Used) })},
		{name: "rampart_shield_packets_total", help: "Packets each shield dropped (label group/kind: ssh/rate, ssh/conn, ssh/net, ssh/syn, ...), and closed-port answers seen (scan).", kind: counter, label: "shield", values: func(s *Status) map[string]float64 {
			if s.Shields == nil {
				return nil
			}
			m := map[string]float64{}
			for _, c := range s.Shields.Counters {
				name := c.Kind
				if c.Group != "" {
					name = c.Group + "/" + c.Kind
				}
				m[name] = float64(c.Packets)
			}
			return m
		}},
		{name: "rampart_shield_events_total", help: "Shield drops and port probes that became events.", kind: counter, value: func(s *Status) (float64, bool) {
			if s.Shields == nil {
				return 0, false
			}
			return float64(s.Shields.Events), true
		}},
		{name: "rampart_shield_log_lost_total", help: "Times the kernel dropped shield log messages the daemon read too slowly.", kind: counter, value: func(s *Status) (float64, bool) {
			if s.Shields == nil {
				return 0, false
			}
			return float64(s.Shields.Lost), true
		}},
		{name: "rampart_postfix_policy_requests_total", help: "Postfix policy requests answered.", kind: counter, value: pf(func(p *postfix.Stats) uint64 { return uint64(p.Requests) })},
		{name: "rampart_postfix_policy_delayed_total", help: "Postfix answers held back by the tarpit.", kind: counter, value: pf(func(p *postfix.Stats) uint64 { return uint64(p.Delayed) })},
		{name: "rampart_postfix_policy_rejected_total", help: "Postfix answers refusing a banned client or a sprayed user.", kind: counter, value: pf(func(p *postfix.Stats) uint64 { return uint64(p.Rejected) })},
		{name: "rampart_postfix_policy_blinded_total", help: "Postfix answers deferring an enumerator's recipient.", kind: counter, value: pf(func(p *postfix.Stats) uint64 { return uint64(p.Blinded) })},
		{name: "rampart_postfix_policy_parked", help: "Postfix connections waiting for a held answer.", kind: gauge, value: pf(func(p *postfix.Stats) uint64 { return uint64(p.Parked) })},
		{name: "rampart_postfix_policy_failed_total", help: "Postfix requests answered with the fail action.", kind: counter, value: pf(func(p *postfix.Stats) uint64 { return uint64(p.Failed) })},
		{name: "rampart_postfix_policy_refused_total", help: "Postfix policy connections refused at once: max_conns or the descriptor budget.", kind: counter, value: pf(func(p *postfix.Stats) uint64 { return uint64(p.Refused) })},
		{name: "rampart_postfix_policy_silent_total", help: "Postfix policy connections closed for sending nothing at first.", kind: counter, value: pf(func(p *postfix.Stats) uint64 { return uint64(p.Silent) })},
		{name: "rampart_dovecot_policy_requests_total", help: "Dovecot policy requests.", kind: counter, value: dv(func(p *dovecot.Stats) uint64 { return p.Requests })},
		{name: "rampart_dovecot_policy_rejected_total", help: "Dovecot logins refused.", kind: counter, value: dv(func(p *dovecot.Stats) uint64 { return p.Rejected })},
		{name: "rampart_dovecot_policy_delayed_total", help: "Dovecot logins held back by the tarpit, each once.", kind: counter, value: dv(func(p *dovecot.Stats) uint64 { return p.Delayed })},
		{name: "rampart_dovecot_policy_unauthorized_total", help: "Dovecot policy requests without the shared secret.", kind: counter, value: dv(func(p *dovecot.Stats) uint64 { return p.Unauthorized })},
		{name: "rampart_dovecot_policy_refused_total", help: "Dovecot policy connections refused at once: its cap or the descriptor budget.", kind: counter, value: func(s *Status) (float64, bool) {
			if s.Policy == nil || s.Policy.Dovecot == nil || s.Policy.DovecotConns == nil {
				return 0, false
			}
			return float64(s.Policy.DovecotConns.RejectedFull), true
		}},
	}, append(evidenceMetrics(), actionsMetrics()...)...)
}

func perSource(f func(SourceState) (float64, bool)) func(*Status) map[string]float64 {
	return func(st *Status) map[string]float64 {
		m := map[string]float64{}
		for _, s := range st.Sources {
			if v, ok := f(s); ok {
				m[s.Source] = v
			}
		}
		return m
	}
}

// syslogLike reports whether a source's connection counters are worth a
// series: a syslog listener's, or any source that counted some.
func syslogLike(s SourceState) bool {
	return s.Rejected+s.Silent > 0 || strings.HasPrefix(s.Source, "syslog")
}

// statusCollector exports metricTable from one status snapshot per scrape.
type statusCollector struct {
	status func() Status
	table  []metric
	descs  []*prometheus.Desc
}

func newStatusCollector(status func() Status) *statusCollector {
	c := &statusCollector{status: status, table: metricTable()}
	for _, m := range c.table {
		var labels []string
		if m.label != "" {
			labels = []string{m.label}
		}
		c.descs = append(c.descs, prometheus.NewDesc(m.name, m.help, labels, nil))
	}
	return c
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	for i, m := range c.table {
		if m.label == "" {
			if v, ok := m.value(&st); ok {
				ch <- prometheus.MustNewConstMetric(c.descs[i], m.kind, v)
			}
			continue
		}
		for lv, v := range m.values(&st) {
			ch <- prometheus.MustNewConstMetric(c.descs[i], m.kind, v, lv)
		}
	}
}

// newMetricsHandler returns the /metrics handler: the daemon's families
// (read from status at each scrape), the Go runtime's and the process's.
func newMetricsHandler(status func() Status, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newStatusCollector(status),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// slogPrinter gives promhttp a logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("metrics: " + strings.TrimSpace(fmt.Sprintln(v...)))
}

// metricsServer serves /metrics on a TCP address ([metrics] listen).
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// listenMetrics binds addr for the metrics listener.
func listenMetrics(addr string, h http.Handler, log *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return &metricsServer{ln: ln, log: log, srv: &http.Server{
		Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
	}}, nil
}

// serve serves until ctx ends.
func (m *metricsServer) serve(ctx context.Context) {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		m.srv.Shutdown(sctx)
	}()
	m.log.Info("metrics listening", "addr", m.ln.Addr().String())
	if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		m.log.Error("metrics listener stopped", "err", err)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
