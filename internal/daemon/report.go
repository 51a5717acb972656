package daemon

// The daemon's side of abuse reporting (issue 14, docs/reporting.md): the
// queue built from [reporting], fed with the decisions applied and the
// trapped messages read, its status, and the control socket's review.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/abuse"
	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/evidence"
	"github.com/rampart-dev/rampart/internal/httpout"
	"github.com/rampart-dev/rampart/internal/smarthost"
	"github.com/rampart-dev/rampart/internal/store"
)

// reporting is the queue and what feeds it: nil when no reporter is
// enabled. Its methods are nil-safe.
type reporting struct {
	q          *abuse.Queue
	cfg        config.Reporting
	decisions  chan event.Decision // applied decisions, for the queue's goroutine
	dropped    atomic.Uint64       // decisions not reported: the channel was full
	recipients bool                // the webhook gets the trapped mail's recipients
	log        *slog.Logger
}

// secret returns a secret from the environment variable env, else from
// file; "" when neither is set. It is never logged.
func secret(env, file string) (string, error) {
	if v := strings.TrimSpace(os.Getenv(env)); v != "" {
		return v, nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// reportingSecrets reads the secrets cfg's enabled reporters need,
// failing (at the key, never showing a secret) on one that is needed and
// missing or unreadable.
func reportingSecrets(cfg *config.Config) (map[string]string, error) {
	r := cfg.Reporting
	out := map[string]string{}
	for _, s := range []struct {
		name, env, file, key string
		needed, on           bool
	}{
		{"abuseipdb", "RAMPART_ABUSEIPDB_KEY", r.AbuseIPDB.KeyFile, "reporting.abuseipdb.key_file", true, r.AbuseIPDB.Enabled},
		{"netcraft", "RAMPART_NETCRAFT_KEY", r.Netcraft.KeyFile, "reporting.netcraft.key_file", false, r.Netcraft.Enabled},
		{"webhook", "RAMPART_WEBHOOK_SECRET", r.Webhook.SecretFile, "reporting.webhook.secret_file", true, r.Webhook.Enabled},
		{"smtp", "RAMPART_SMTP_PASSWORD", r.SMTP.PasswordFile, "reporting.smtp.password_file", r.SMTP.Username != "", r.SMTP.Server != ""},
	} {
		if !s.on {
			continue
		}
		v, err := secret(s.env, s.file)
		switch {
		case err != nil:
			return nil, cfg.Errorf(s.key, "%s: %v", s.name, err)
		case v == "" && s.needed:
			return nil, cfg.Errorf(s.key, "%s needs a secret: set %s or %s", s.name, s.key[strings.LastIndexByte(s.key, '.')+1:], s.env)
		}
		out[s.name] = v
	}
	return out, nil
}

// newReporting builds the queue for cfg's enabled reporters, or returns
// nil when none is. This host's names (hostNames) and addresses are
// redacted from what is sent, with [reporting] local_domains.
func newReporting(ctx context.Context, cfg *config.Config, st *store.Store, opt Options, log *slog.Logger) (*reporting, error) {
	r := cfg.Reporting
	if !r.AbuseIPDB.Enabled && !r.Netcraft.Enabled && !r.AbuseContacts.Enabled && !r.Webhook.Enabled && !r.Postmaster.Enabled {
		return nil, nil
	}
	names := hostNames(ctx, cfg)
	secrets, err := reportingSecrets(cfg)
	if err != nil {
		return nil, err
	}
	own, _ := hostAddrs()
	var addrs []netip.Addr
	for a := range own {
		if !a.IsLoopback() {
			addrs = append(addrs, a)
		}
	}
	redact := abuse.NewRedactor(append(append([]string(nil), names...), r.LocalDomains...), addrs)
	ua := "rampart"
	if opt.Version != "" {
		ua += "/" + opt.Version
	}
	hc := httpout.New(httpout.Options{UserAgent: ua, Redirects: 5, Transport: opt.ReportTransport})
	var mailer *smarthost.Mailer
	if r.SMTP.Server != "" {
		mailer = newSmarthost(r.SMTP, secrets["smtp"], opt)
	}
	var sender abuse.Sender
	if r.From != "" {
		from, err := mail.ParseAddress(r.From)
		if err != nil {
			return nil, cfg.Errorf("reporting.from", "%v", err)
		}
		sender = abuse.Sender{From: *from, Organisation: r.Organisation, Version: opt.Version}
	}
	qc := abuse.Config{Dedup: r.Dedup.D(), MaxAttempts: r.MaxAttempts, Modes: map[string]string{}, PerHour: map[string]int{},
		Jails: r.Jails, Scenarios: r.Scenarios, Ignore: r.IgnoreDomains}
	var reps []abuse.Reporter
	add := func(rep abuse.Reporter, mode string, perHour int) {
		reps = append(reps, rep)
		qc.Modes[rep.Name()] = r.ReporterMode(mode)
		qc.PerHour[rep.Name()] = perHour
	}
	if a := r.AbuseIPDB; a.Enabled {
		add(&abuse.AbuseIPDB{URL: a.URL, Key: secrets["abuseipdb"], HTTP: hc, Categories: a.Categories,
			Default: a.DefaultCategories, Spam: a.SpamCategories}, a.Mode, a.PerHour)
	}
	if n := r.Netcraft; n.Enabled {
		add(&abuse.Netcraft{URL: n.URL, Email: n.Email, Key: secrets["netcraft"], HTTP: hc}, n.Mode, n.PerHour)
	}
	if c := r.AbuseContacts; c.Enabled {
		add(&abuse.AbuseContacts{RDAP: &abuse.RDAP{Bootstrap: c.Bootstrap, HTTP: hc, Store: st, TTL: c.CacheTTL.D()},
			Mail: mailer, Sender: sender, Addresses: c.Addresses, Domains: c.Domains, Store: st, Redact: redact}, c.Mode, c.PerHour)
	}
	if w := r.Webhook; w.Enabled {
		add(&abuse.Webhook{URL: w.URL, Secret: []byte(secrets["webhook"]), HTTP: hc}, w.Mode, w.PerHour)
	}
	if p := r.Postmaster; p.Enabled {
		add(&abuse.Postmaster{Mail: mailer, Sender: sender}, p.Mode, 0)
		qc.PostmasterDomains, qc.PostmasterInterval = p.Domains, p.Interval.D()
	}
	rp := &reporting{q: abuse.NewQueue(st, qc, reps, redact, log), cfg: r, decisions: make(chan event.Decision, 10_000),
		recipients: r.Webhook.Recipients, log: log}
	var on []string
	for _, n := range rp.q.Reporters() {
		on = append(on, n+"="+rp.q.Mode(n))
	}
	log.Info("reporting: on", "reporters", strings.Join(on, ","))
	return rp, nil
}

// newSmarthost returns the mailer of [reporting.smtp], which the abuse
// reporters and the mail actions share.
func newSmarthost(c config.ReportSMTP, password string, opt Options) *smarthost.Mailer {
	return smarthost.New(smarthost.Config{Addr: c.Server, Security: smarthost.Security(c.Security),
		Username: c.Username, Password: password, Hostname: c.Hostname, TLSConfig: opt.SmarthostTLS})
}

// hostNames returns the names this host goes by: its host name, the
// trap's, and Postfix's myhostname when Postfix is there (not mydomain:
// list the mail domains in [reporting] local_domains).
func hostNames(ctx context.Context, cfg *config.Config) []string {
	var names []string
	if h, err := os.Hostname(); err == nil {
		names = append(names, h)
	}
	names = append(names, cfg.Trap.Hostname)
	pc := postconf(ctx, cfg.Trap.PostfixConfig)
	names = append(names, pc.Main["myhostname"])
	return names
}

// run sends reports, and queues the decisions handed over, until ctx ends.
func (r *reporting) run(ctx context.Context) {
	if r == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.q.Run(ctx)
	}()
	for {
		select {
		case <-ctx.Done():
			<-done
			return
		case d := <-r.decisions:
			r.q.Decision(ctx, d)
		}
	}
}

// decided hands applied decisions to the queue without waiting: when its
// channel is full (a ban storm) a decision is counted as dropped, never
// held up.
func (r *reporting) decided(ds []event.Decision) {
	if r == nil {
		return
	}
	for _, d := range ds {
		select {
		case r.decisions <- d:
		default:
			r.dropped.Add(1)
		}
	}
}

// message queues the reports a trapped message calls for.
func (r *reporting) message(ctx context.Context, m store.Quarantined, res *evidence.Result, inds []store.Indicator) {
	if r == nil {
		return
	}
	r.q.Message(ctx, m, res, inds, r.recipients)
}

// prune forgets reports done with past the retention.
func (r *reporting) prune(ctx context.Context, st *store.Store, now time.Time) {
	if r == nil {
		return
	}
	if n, err := st.PruneReports(ctx, now.Add(-r.cfg.Retention.D())); err != nil {
		r.log.Warn("reporting: pruning reports failed", "err", err)
	} else if n > 0 {
		r.log.Info("reporting: reports past their retention forgotten", "count", n)
	}
}

// ReportingStatus is reporting's part of status.
type ReportingStatus struct {
	Reporters []ReporterStatus `json:"reporters"`
	// Dropped counts decisions not reported because the queue's intake was
	// full (a ban storm); the bans themselves are unaffected.
	Dropped uint64 `json:"dropped"`
}

// ReporterStatus is one reporter's counters since start, and its queue.
type ReporterStatus struct {
	Name        string    `json:"name"`
	Mode        string    `json:"mode"`
	Queued      uint64    `json:"queued"`
	Duplicates  uint64    `json:"duplicates"`
	Sent        uint64    `json:"sent"`
	Failed      uint64    `json:"failed"`
	Retried     uint64    `json:"retried"`
	Limited     uint64    `json:"limited"`
	Review      int       `json:"review"`  // held for review now
	Pending     int       `json:"pending"` // waiting to be sent now
	PausedUntil time.Time `json:"paused_until,omitzero"`
}

func (r *reporting) status(ctx context.Context, st *store.Store) *ReportingStatus {
	if r == nil {
		return nil
	}
	counts, _ := st.ReportCounts(ctx)
	out := &ReportingStatus{Dropped: r.dropped.Load()}
	for _, n := range r.q.Reporters() {
		c := r.q.Stats(n)
		out.Reporters = append(out.Reporters, ReporterStatus{Name: n, Mode: r.q.Mode(n), Queued: c.Queued.Load(),
			Duplicates: c.Duplicates.Load(), Sent: c.Sent.Load(), Failed: c.Failed.Load(), Retried: c.Retried.Load(),
			Limited: c.Limited.Load(), Review: counts[n][store.ReportReview],
			Pending: counts[n][store.ReportPending] + counts[n][store.ReportSending], PausedUntil: r.q.PausedUntil(n)})
	}
	return out
}

// Control socket: the queue, for `rampart abuse`. Listing reads the
// store, so it answers with reporting off too; review needs it on.
//
//	GET  /v1/abuse/reports[?state=S,S&reporter=R&limit=N]  []store.Report
//	GET  /v1/abuse/reports/{id}                           AbuseReport (with what would be sent)
//	POST /v1/abuse/review  ReviewRequest → {"changed": [ids]}

// AbuseReport is one report with its subject and what it sends.
type AbuseReport struct {
	store.Report
	Subject json.RawMessage `json:"subject"`
	Render  string          `json:"render,omitempty"`
}

// ReviewRequest approves or rejects reports held for review.
type ReviewRequest struct {
	IDs     []int64 `json:"ids"` // empty with All: every one held
	All     bool    `json:"all"`
	Approve bool    `json:"approve"`
}

func (c *control) abuseReports(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.ReportFilter{Reporter: q.Get("reporter"), Limit: 100}
	if s := q.Get("state"); s != "" {
		f.States = strings.Split(s, ",")
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil {
		f.Limit = n
	}
	rs, err := c.d.store.Reports(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	out := make([]AbuseReport, 0, len(rs))
	for _, rep := range rs {
		out = append(out, AbuseReport{Report: rep, Subject: rep.Subject})
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *control) abuseReport(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "report")
	if !ok {
		return
	}
	rep, err := c.d.store.Report(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no report %d", id)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	out := AbuseReport{Report: rep, Subject: rep.Subject}
	if rp := c.d.report; rp != nil {
		if _, text, err := rp.q.Render(r.Context(), id); err == nil {
			out.Render = text
		} else {
			out.Render = "(" + err.Error() + ")"
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *control) abuseReview(w http.ResponseWriter, r *http.Request) {
	var req ReviewRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad request: %v", err)
		return
	}
	if len(req.IDs) == 0 && !req.All {
		writeError(w, http.StatusBadRequest, "name the reports, or all")
		return
	}
	if c.d.report == nil {
		writeError(w, http.StatusConflict, "reporting is off: no reporter is enabled in [reporting]")
		return
	}
	ids := req.IDs
	if req.All {
		ids = nil
	}
	changed, err := c.d.report.q.Review(r.Context(), ids, req.Approve)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if changed == nil {
		changed = []int64{}
	}
	verb := "rejected"
	if req.Approve {
		verb = "approved"
	}
	c.d.log.Info("reporting: reports "+verb, "count", len(changed))
	writeJSON(w, http.StatusOK, map[string][]int64{"changed": changed})
}

// AbuseReports lists reports in states (all when empty) of reporter (""
// all), newest first, up to limit (0: the server's 100; -1 all).
func (c *Client) AbuseReports(ctx context.Context, states []string, reporter string, limit int) ([]AbuseReport, error) {
	var out []AbuseReport
	q := url.Values{"state": {strings.Join(states, ",")}, "reporter": {reporter}, "limit": {strconv.Itoa(limit)}}
	err := c.call(ctx, http.MethodGet, "/v1/abuse/reports?"+q.Encode(), nil, &out)
	return out, err
}

// AbuseReport returns one report with what it sends.
func (c *Client) AbuseReport(ctx context.Context, id int64) (AbuseReport, error) {
	var out AbuseReport
	err := c.call(ctx, http.MethodGet, "/v1/abuse/reports/"+strconv.FormatInt(id, 10), nil, &out)
	return out, err
}

// ReviewReports approves or rejects reports held for review.
func (c *Client) ReviewReports(ctx context.Context, req ReviewRequest) ([]int64, error) {
	var out struct {
		Changed []int64 `json:"changed"`
	}
	err := c.call(ctx, http.MethodPost, "/v1/abuse/review", req, &out)
	return out.Changed, err
}
