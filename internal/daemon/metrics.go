package daemon

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// metrics serves GET /metrics on the control socket in the Prometheus text
// exposition format: engine table sizes against their caps, events,
// decisions, source counters and policy server counters. A handful of
// gauges and counters do not need a client library.
func (c *control) metrics(w http.ResponseWriter, r *http.Request) {
	st := c.d.status(false)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	m := &metricWriter{w: w}
	e := st.Engine
	m.gauge("rampart_engine_tracked_keys", "Tracked (address, jail) keys.", float64(e.Tracked))
	m.gauge("rampart_engine_tracked_keys_cap", "Hard cap on tracked keys.", float64(e.TrackedCap))
	m.counter("rampart_engine_evicted_total", "Keys evicted because the table was full.", float64(e.Evicted))
	m.counter("rampart_engine_events_total", "Events observed.", float64(e.Events))
	m.counter("rampart_engine_decisions_total", "Decisions taken.", float64(e.Decisions))
	m.counter("rampart_engine_allowlisted_total", "Events from allowlisted addresses.", float64(e.Allowlisted))
	m.counter("rampart_engine_while_banned_total", "Events from addresses already banned.", float64(e.WhileBanned))
	m.counter("rampart_engine_successes_total", "Successful logins seen.", float64(e.Successes))
	m.gauge("rampart_engine_known_good", "Addresses remembered as known-good.", float64(e.KnownGood))
	m.gauge("rampart_engine_active_bans", "Active decisions.", float64(e.ActiveBans))
	m.counter("rampart_engine_active_bans_evicted_total", "Active bans forgotten by the engine because its table was full (the firewall and the store keep them).", float64(e.ActiveEvicted))
	m.counter("rampart_engine_surges_total", "Times surge mode turned on.", float64(e.Surges))
	m.gauge("rampart_engine_surge", "1 while surge mode is on.", b2f(e.Surge))
	m.counter("rampart_firewall_applied_total", "Decisions applied to the firewall.", float64(st.Firewall.Applied))
	m.counter("rampart_firewall_failed_total", "Decisions the firewall failed to apply.", float64(st.Firewall.Failed))
	m.gauge("rampart_firewall_carved_out", "Good clients let through prefix bans.", float64(st.Firewall.CarvedOut))
	m.counter("rampart_firewall_repairs_total", "Times the kernel had lost part of Rampart's state and it was put back.", float64(st.Firewall.Repairs))
	m.counter("rampart_firewall_restored_total", "Bans, carve-outs and allowlist entries put back in the kernel.", float64(st.Firewall.Restored))
	m.counter("rampart_reloads_total", "Configuration reloads that succeeded.", float64(st.Reload.Reloads))
	m.counter("rampart_reload_failures_total", "Configuration reloads refused (the running configuration stayed in force).", float64(st.Reload.Failures))
	m.gauge("rampart_config_last_reload_ok", "1 unless the last reload failed.", b2f(st.Reload.LastError == ""))
	healthy := map[string]int{}
	for _, h := range st.Health {
		if h.State == HealthOK {
			healthy[h.Component] = 1
		} else {
			healthy[h.Component] = 0
		}
	}
	m.labelled("rampart_healthy", "gauge", "1 while a component works as configured, 0 while it is degraded or failed (see rampart status).", "component", healthy)
	perJail := map[string]int{}
	for _, j := range st.Jails {
		perJail[j.Name] = j.Banned
	}
	m.labelled("rampart_jail_banned", "gauge", "Active bans per jail.", "jail", perJail)
	lines, skipped := map[string]int{}, map[string]int{}
	for _, s := range st.Sources {
		lines[s.Source] = int(s.Lines)
		skipped[s.Source] = int(s.Skipped)
	}
	m.labelled("rampart_source_lines_total", "counter", "Lines read per source.", "source", lines)
	m.labelled("rampart_source_skipped_total", "counter", "Lines skipped (too long, binary, future, invalid) per source.", "source", skipped)
	refused, silent := map[string]int{}, map[string]int{}
	for _, s := range st.Sources {
		if s.Rejected+s.Silent > 0 || strings.HasPrefix(s.Source, "syslog") {
			refused[s.Source], silent[s.Source] = int(s.Rejected), int(s.Silent)
		}
	}
	m.labelled("rampart_source_connections_refused_total", "counter", "Syslog TCP connections refused at once: over the per-address or total limit, or the descriptor budget.", "source", refused)
	m.labelled("rampart_source_connections_silent_total", "counter", "Syslog TCP connections closed for sending nothing at first.", "source", silent)
	m.gauge("rampart_descriptors_limit", "RLIMIT_NOFILE.", float64(st.Descriptors.Limit))
	m.gauge("rampart_descriptors_peers", "Descriptors the listeners may hold together.", float64(st.Descriptors.Peers))
	m.gauge("rampart_descriptors_peers_used", "Descriptors the listeners hold now.", float64(st.Descriptors.Used))
	if p := st.Policy; p != nil {
		if pf := p.Postfix; pf != nil {
			m.counter("rampart_postfix_policy_requests_total", "Postfix policy requests answered.", float64(pf.Requests))
			m.counter("rampart_postfix_policy_delayed_total", "Postfix answers held back by the tarpit.", float64(pf.Delayed))
			m.counter("rampart_postfix_policy_rejected_total", "Postfix answers refusing a banned client or a sprayed user.", float64(pf.Rejected))
			m.counter("rampart_postfix_policy_blinded_total", "Postfix answers deferring an enumerator's recipient.", float64(pf.Blinded))
			m.gauge("rampart_postfix_policy_parked", "Postfix connections waiting for a held answer.", float64(pf.Parked))
			m.counter("rampart_postfix_policy_failed_total", "Postfix requests answered with the fail action.", float64(pf.Failed))
			m.counter("rampart_postfix_policy_refused_total", "Postfix policy connections refused at once: max_conns or the descriptor budget.", float64(pf.Refused))
			m.counter("rampart_postfix_policy_silent_total", "Postfix policy connections closed for sending nothing at first.", float64(pf.Silent))
		}
		if dv := p.Dovecot; dv != nil {
			m.counter("rampart_dovecot_policy_requests_total", "Dovecot policy requests.", float64(dv.Requests))
			m.counter("rampart_dovecot_policy_rejected_total", "Dovecot logins refused.", float64(dv.Rejected))
			m.counter("rampart_dovecot_policy_delayed_total", "Dovecot logins held back by the tarpit, each once.", float64(dv.Delayed))
			m.counter("rampart_dovecot_policy_unauthorized_total", "Dovecot policy requests without the shared secret.", float64(dv.Unauthorized))
			if c := p.DovecotConns; c != nil {
				m.counter("rampart_dovecot_policy_refused_total", "Dovecot policy connections refused at once: its cap or the descriptor budget.", float64(c.RejectedFull))
			}
		}
	}
}

type metricWriter struct{ w io.Writer }

func (m *metricWriter) head(name, kind, help string) {
	fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

func (m *metricWriter) gauge(name, help string, v float64) {
	m.head(name, "gauge", help)
	fmt.Fprintf(m.w, "%s %g\n", name, v)
}

func (m *metricWriter) counter(name, help string, v float64) {
	m.head(name, "counter", help)
	fmt.Fprintf(m.w, "%s %g\n", name, v)
}

func (m *metricWriter) labelled(name, kind, help, label string, vals map[string]int) {
	m.head(name, kind, help)
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(m.w, "%s{%s=%q} %d\n", name, label, k, vals[k])
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
