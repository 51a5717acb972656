package daemon

// The daemon's side of [[action]] (issue 14, docs/actions.md): the sinks
// built from the configuration, fed with the decisions applied, the bans
// lifted by hand or expired, and the reports sent.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"text/template"
	"time"

	"github.com/rampart-dev/rampart/internal/abuse"
	"github.com/rampart-dev/rampart/internal/action"
	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/httpout"
	"github.com/rampart-dev/rampart/internal/store"
)

// newActions builds cfg's actions; nil when there are none. Secrets (a
// webhook's signing secret, a database's connection string) come from
// RAMPART_ACTION_<NAME>_SECRET or _DSN, else their files.
func newActions(cfg *config.Config, opt Options, log *slog.Logger) (*action.Dispatcher, error) {
	if len(cfg.Actions) == 0 {
		return nil, nil
	}
	host, _ := os.Hostname()
	var out []*action.Action
	fail := func(i int, key, format string, args ...any) error {
		for _, a := range out {
			if c, ok := a.Sink.(action.Closer); ok {
				c.Close()
			}
		}
		return cfg.Errorf(fmt.Sprintf("action.%d.%s", i, key), "action %q: %s", cfg.Actions[i].Name, fmt.Sprintf(format, args...))
	}
	for i, a := range cfg.Actions {
		var sink action.Sink
		switch a.Type {
		case "webhook":
			sec, err := secret(a.SecretEnv("SECRET"), a.SecretFile)
			if err != nil {
				return nil, fail(i, "secret_file", "%v", err)
			}
			w := &action.Webhook{URL: a.URL, Secret: []byte(sec),
				HTTP: httpout.New(httpout.Options{UserAgent: "rampart", Timeout: a.Timeout.D(), Transport: opt.ReportTransport})}
			if a.Template != "" {
				w.Template = template.Must(template.New(a.Name).Parse(a.Template)) // parsed by config already
			}
			sink = w
		case "mail":
			r := cfg.Reporting
			pass, err := secret("RAMPART_SMTP_PASSWORD", r.SMTP.PasswordFile)
			if err != nil {
				return nil, fail(i, "type", "[reporting.smtp] password_file: %v", err)
			}
			sink = &action.Digest{
				Mail: newSmarthost(r.SMTP, pass, opt), From: r.From, To: a.To, Subject: template.Must(template.New(a.Name).Parse(a.Subject)), Every: a.Interval.D(), Host: host}
		case "exec":
			x := &action.Exec{Shell: a.Shell}
			for _, c := range a.Command {
				x.Argv = append(x.Argv, template.Must(template.New(a.Name).Parse(c)))
			}
			sink = x
		case "sql":
			dsn, err := secret(a.SecretEnv("DSN"), a.DSNFile)
			if err != nil {
				return nil, fail(i, "dsn_file", "%v", err)
			}
			if dsn == "" {
				dsn = a.DSN
			}
			s, err := action.OpenSQL(a.Driver, dsn, a.Table)
			if err != nil {
				return nil, fail(i, "driver", "%v", err)
			}
			sink = s
		}
		out = append(out, &action.Action{Name: a.Name, Type: a.Type, Sink: sink, Queue: a.Queue, Timeout: a.Timeout.D(),
			Filter: action.Filter{On: a.On, Jails: a.Jails, Scenarios: a.Scenarios}})
	}
	log.Info("actions: on", "count", len(out))
	return action.NewDispatcher(out, host, log), nil
}

// warnRestartOnly says which of evidence's, reporting's and actions'
// sections a reload leaves as they were started: they change at the next
// restart.
func warnRestartOnly(log *slog.Logger, running, next *config.Config) {
	for _, s := range []struct {
		name      string
		old, next any
	}{{"[evidence]", running.Evidence, next.Evidence}, {"[reporting]", running.Reporting, next.Reporting},
		{"[[action]]", running.Actions, next.Actions}} {
		if !reflect.DeepEqual(s.old, s.next) {
			log.Warn("reload: "+s.name+" changes at the next restart", "section", s.name)
		}
	}
}

// trackActive tells the actions when the bans in force end, for their
// unban events (the bans restored at start are not published again).
func trackActive(ctx context.Context, d *action.Dispatcher, st *store.Store) {
	if d == nil {
		return
	}
	active, err := st.ActiveDecisions(ctx, time.Now())
	if err != nil {
		return
	}
	for _, dec := range active {
		d.Track(dec)
	}
}

// reportSent is the actions' report event for a report sent.
func reportSent(d *action.Dispatcher, host string) func(abuse.Item) {
	return func(it abuse.Item) {
		d.Publish(action.Event{Type: action.Report, Time: it.Sent, IP: it.Subject.Addr, Jail: it.Subject.Jail,
			Scenario: it.Subject.Scenario, Reason: it.Subject.Reason, Host: host, Reporter: it.Reporter, Kind: it.Kind,
			Target: it.Target, Destination: it.Destination})
	}
}

// actionsMetrics are the actions' families in metricTable.
func actionsMetrics() []metric {
	per := func(f func(action.Stats) float64) func(*Status) map[string]float64 {
		return func(s *Status) map[string]float64 {
			if len(s.Actions) == 0 {
				return nil
			}
			m := map[string]float64{}
			for _, a := range s.Actions {
				m[a.Name] = f(a)
			}
			return m
		}
	}
	return []metric{
		{name: "rampart_action_queued_total", help: "Events an action took.", kind: counter, label: "action", values: per(func(a action.Stats) float64 { return float64(a.Queued) })},
		{name: "rampart_action_done_total", help: "Events an action acted on.", kind: counter, label: "action", values: per(func(a action.Stats) float64 { return float64(a.Done) })},
		{name: "rampart_action_failed_total", help: "Events an action failed on.", kind: counter, label: "action", values: per(func(a action.Stats) float64 { return float64(a.Failed) })},
		{name: "rampart_action_dropped_total", help: "Events an action dropped: its queue was full.", kind: counter, label: "action", values: per(func(a action.Stats) float64 { return float64(a.Dropped) })},
		{name: "rampart_action_waiting", help: "Events waiting in an action's queue.", kind: gauge, label: "action", values: per(func(a action.Stats) float64 { return float64(a.Waiting) })},
	}
}
