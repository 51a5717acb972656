package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/action"
	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/source"
	"github.com/rampart-dev/rampart/internal/store"
)

// The control API is HTTP with JSON bodies on a unix socket that only root
// can open (the directory is 0700, the socket 0600). `rampart status`,
// `ban` and `unban` are its clients.
//
//	GET  /v1/status[?jail=J]   Status (only jail J's bans and jail line)
//	POST /v1/ban    BanRequest → Ban
//	POST /v1/unban  UnbanRequest → {"removed": bool}
//	POST /v1/reload            {"jails": [...]} or 409 {"error": why the running configuration stays}
//	GET  /metrics              Prometheus text format (see metrics.go)

// Status is the answer to GET /v1/status. Its JSON keys are snake_case
// and documented in docs/configuration.md ("Status"); a golden file
// (testdata/status.golden.json) keeps them from drifting.
type Status struct {
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// Health has one entry per component: store, firewall, config, each
	// source, each policy server (and "watching" when nothing is read).
	Health   []Health                 `json:"health"`
	Reload   ReloadStatus             `json:"reload"`
	Firewall FirewallStatus           `json:"firewall"`
	Engine   EngineStatus             `json:"engine"`
	Insight  InsightStatus            `json:"insight"`
	Jails    []JailStatus             `json:"jails"`
	Sources  []SourceState            `json:"sources"`
	Policy   *PolicyStatus            `json:"policy,omitempty"`
	Trap     *TrapStatus              `json:"trap,omitempty"`     // absent while the trap is off
	Evidence *EvidenceStatus          `json:"evidence,omitempty"` // absent while [evidence] is off
	Fleet    *FleetStatus             `json:"fleet,omitempty"`    // absent while the fleet is off
	Feeds    []FeedSubscriptionStatus `json:"feeds,omitempty"`    // the feeds subscribed to
	// Reporting: each reporter's counters and queue; absent while no
	// reporter is enabled.
	Reporting *ReportingStatus `json:"reporting,omitempty"`
	// Actions: each [[action]]'s counters; absent without actions.
	Actions []action.Stats `json:"actions,omitempty"`
	// Descriptors: the limit, the reserve kept for logs and control, and
	// what the listeners (policy servers, syslog) may hold and hold now.
	Descriptors DescriptorStatus `json:"descriptors"`
	// Shields: what each shield dropped, and their events; absent
	// without shields (off, or another backend than nftables).
	Shields *ShieldsStatus `json:"shields,omitempty"`
	// Active lists the bans in force, all or the most recent (see
	// StatusQuery.Bans); ActiveTotal counts them all.
	Active      []Ban `json:"active"`
	ActiveTotal int   `json:"active_total"`
	// Goroutines counts the daemon's goroutines: with live policy servers,
	// one per connection being served (a tarpitted one costs none).
	Goroutines int `json:"goroutines"`
}

// InsightStatus describes the counts kept for the hourly aggregates
// (rampart report, the dashboard).
type InsightStatus struct {
	// Dropped counts the counts left out of per-key rows (an address's,
	// a user name's, a service's...; a failure has up to four, a ban two)
	// and kept in their jail's total only: between two writes to the
	// store the counter met more distinct keys than it holds (see
	// insight.DefaultMaxEntries).
	Dropped uint64 `json:"dropped"`
}

// FirewallStatus describes the enforcer.
type FirewallStatus struct {
	Backend string `json:"backend"` // "nftables", "ipset", "log (dry run)", …
	Applied uint64 `json:"applied"` // decisions applied
	Failed  uint64 `json:"failed"`  // decisions the firewall refused
	// CarvedOut counts the good clients let through prefix bans now.
	CarvedOut int `json:"carved_out"`
	// Repairs counts the times the kernel was found to have lost part of
	// Rampart's state (a flushed ruleset, a deleted set) and it was put
	// back; Restored the bans, carve-outs and allowlist entries put back.
	Repairs  uint64 `json:"repairs"`
	Restored uint64 `json:"restored"`
	// Backlog counts the decisions waiting for the kernel and the store;
	// past 100,000 the log sources wait for them.
	Backlog int64 `json:"backlog"`
}

// EngineStatus is the engine's counters (engine.Stats) as the API shows them.
type EngineStatus struct {
	Tracked       int    `json:"tracked"`     // (address, jail) keys with recent failures
	TrackedCap    int    `json:"tracked_cap"` // the cap on tracked
	Evicted       uint64 `json:"evicted"`     // keys forgotten because the table was full
	Offenders     int    `json:"offenders"`   // addresses with a ban history
	ActiveBans    int    `json:"active_bans"`
	ActiveEvicted uint64 `json:"active_evicted"` // active bans forgotten because the table was full
	Events        uint64 `json:"events"`
	Ignored       uint64 `json:"ignored"` // events that could not count
	Allowlisted   uint64 `json:"allowlisted"`
	WhileBanned   uint64 `json:"while_banned"`
	Successes     uint64 `json:"successes"`
	KnownGood     int    `json:"known_good"`
	HotUsers      int    `json:"hot_users"`
	Prefixes      int    `json:"prefixes"`
	Surges        uint64 `json:"surges"`
	Surge         bool   `json:"surge"`
	Decisions     uint64 `json:"decisions"`
	Pending       int    `json:"pending"` // bans waiting out their grace period
}

func engineStatus(e *engine.Engine) EngineStatus {
	s := e.Stats()
	return EngineStatus{
		Tracked: s.Tracked, TrackedCap: s.TrackedCap, Evicted: s.Evicted, Offenders: s.Offenders,
		ActiveBans: s.ActiveBans, ActiveEvicted: s.ActiveEvicted, Events: s.Events, Ignored: s.Ignored,
		Allowlisted: s.Allowlisted, WhileBanned: s.WhileBanned, Successes: s.Successes, KnownGood: s.KnownGood,
		HotUsers: s.HotUsers, Prefixes: s.Prefixes, Surges: s.Surges, Surge: s.Surge, Decisions: s.Decisions,
		Pending: e.Pending(),
	}
}

// JailStatus describes one jail.
type JailStatus struct {
	Name     string `json:"name"`
	MaxRetry int    `json:"maxretry"`
	FindTime string `json:"findtime"`
	BanTime  string `json:"bantime"`
	Banned   int    `json:"banned"` // its bans in force
	// Ports are those its bans are limited to ("22/tcp"); empty when they
	// ban the whole host.
	Ports string `json:"ports,omitempty"`
	// What fail2ban-client status JAIL tells: the addresses with failures
	// within findtime, the failures its events reported and the bans it
	// decided since the daemon started.
	Failing     int    `json:"failing"`
	FailedTotal uint64 `json:"failed_total"`
	BannedTotal uint64 `json:"banned_total"`
}

// SourceState describes one source.
type SourceState struct {
	Source  string   `json:"source"`
	Jails   []string `json:"jails"`
	Lines   uint64   `json:"lines"`
	Skipped uint64   `json:"skipped"`
	Stale   uint64   `json:"stale"`
	// Syslog only: TCP connections refused at once (over the per-address
	// or total limit, or the descriptor budget), and closed for sending
	// nothing within their first 30 seconds.
	Rejected uint64 `json:"rejected,omitempty"`
	Silent   uint64 `json:"silent,omitempty"`
}

// Ban is an active decision as the API shows it.
type Ban struct {
	IP       string    `json:"ip"`
	Action   string    `json:"action"`
	Ports    string    `json:"ports,omitempty"` // a per-port ban's ports ("22/tcp,53/udp"); empty: the whole host
	Jail     string    `json:"jail,omitempty"`
	Scenario string    `json:"scenario"`
	Reason   string    `json:"reason"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"`
	Origin   string    `json:"origin,omitempty"`
}

// BanRequest asks for a manual ban.
type BanRequest struct {
	IP        string `json:"ip"` // address or CIDR prefix
	Jail      string `json:"jail,omitempty"`
	DurationS int64  `json:"duration_s,omitempty"` // 0: the jail's (or default) ban time
	Reason    string `json:"reason,omitempty"`
}

// UnbanRequest asks to lift a ban.
type UnbanRequest struct {
	IP string `json:"ip"`
}

type control struct {
	d   *Daemon
	ln  net.Listener
	srv *http.Server
}

// listenControl creates the socket (replacing a stale one).
func (d *Daemon) listenControl(path string) (*control, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another rampart is running", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	c := &control{d: d, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", c.status)
	mux.Handle("GET /metrics", d.metrics)
	mux.HandleFunc("POST /v1/ban", c.ban)
	mux.HandleFunc("POST /v1/unban", c.unban)
	mux.HandleFunc("POST /v1/reload", c.reload)
	mux.HandleFunc("GET /v1/trap/accounts", c.trapAccounts)
	mux.HandleFunc("GET /v1/trap/messages", c.trapMessages)
	mux.HandleFunc("GET /v1/trap/messages/{id}", c.trapMessage)
	mux.HandleFunc("GET /v1/evidence/indicators", c.indicators)
	mux.HandleFunc("GET /v1/evidence/messages/{id}", c.messageEvidence)
	mux.HandleFunc("GET /v1/abuse/reports", c.abuseReports)
	mux.HandleFunc("GET /v1/abuse/reports/{id}", c.abuseReport)
	mux.HandleFunc("POST /v1/abuse/review", c.abuseReview)
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	return c, nil
}

func (c *control) serve(ctx context.Context) {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		c.srv.Shutdown(sctx)
	}()
	if err := c.srv.Serve(c.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		c.d.log.Error("control socket stopped", "err", err)
	}
	os.Remove(c.ln.Addr().String())
}

func (c *control) status(w http.ResponseWriter, r *http.Request) {
	q := StatusQuery{Jail: r.URL.Query().Get("jail"), Bans: -1}
	if v := r.URL.Query().Get("bans"); v != "" && v != "all" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "bans=%q: want a number of bans to list, or all", v)
			return
		}
		q.Bans = n
	}
	st, ok := c.d.StatusFor(q)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown jail %q (running jails: %s)", q.Jail, strings.Join(st.JailNames(), ", "))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// JailNames lists the running jails.
func (st Status) JailNames() []string {
	names := make([]string, 0, len(st.Jails))
	for _, j := range st.Jails {
		names = append(names, j.Name)
	}
	return names
}

func (c *control) reload(w http.ResponseWriter, r *http.Request) {
	if err := c.d.Reload(r.Context()); err != nil {
		writeError(w, http.StatusConflict, "reload failed, the running configuration stays in force: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"jails": c.d.currentPipe().JailNames()})
}

// StatusQuery says what a status covers.
type StatusQuery struct {
	// Jail narrows the status to one jail: its line, the sources feeding
	// it, its bans ("" for all).
	Jail string
	// Bans is how many active bans are listed, the most recent; < 0 lists
	// all. Status.ActiveTotal counts them all.
	Bans int
}

// Status reports the daemon's state, every active ban listed.
func (d *Daemon) Status() Status {
	st, _ := d.StatusFor(StatusQuery{Bans: -1})
	return st
}

// StatusFor reports the daemon's state as q asks, the reasons of the listed
// bans read from the store; ok is false for a jail that does not run (st
// then still names the jails that do).
func (d *Daemon) StatusFor(q StatusQuery) (st Status, ok bool) {
	return d.status(q, true)
}

// status reports the daemon's state; what only the store knows (the
// reasons of the listed bans, the abuse report queue's counts) only with
// fromStore: the metrics read neither, and are scraped often.
func (d *Daemon) status(q StatusQuery, fromStore bool) (Status, bool) {
	now := time.Now()
	d.mu.Lock()
	pipe, sources := d.pipe, d.sources
	d.mu.Unlock()
	if q.Jail != "" && !slices.Contains(pipe.JailNames(), q.Jail) {
		return Status{Jails: jailLines(pipe, now)}, false
	}
	health := d.health(now)
	var fw firewall.Stats
	if f, ok := d.enf.(firewallStats); ok {
		fw = f.Stats()
	}
	active, total := pipe.Engine.Recent(now, q.Jail, q.Bans)
	var stored map[event.DecisionKey]event.Decision
	if fromStore && len(active) > 0 {
		stored = d.activeReasons(now, active)
	}
	st := Status{
		Version: d.opt.Version,
		Started: d.started,
		Health:  health,
		Reload:  d.reloads.status(),
		Firewall: FirewallStatus{
			Backend:   d.opt.EnforcerName,
			Applied:   d.apply.applied.Load(),
			Failed:    d.apply.failed.Load(),
			Backlog:   d.apply.backlog.Load(),
			CarvedOut: fw.CarvedOut,
			Repairs:   fw.Repairs,
			Restored:  fw.Restored,
		},
		Engine:   engineStatus(pipe.Engine),
		Insight:  InsightStatus{Dropped: d.insight.Dropped()},
		Policy:   d.policyStatus(),
		Trap:     d.trap.status(),
		Evidence: d.evid.status(),
		Fleet:    d.fleet.status(),
		Feeds:    d.feeds.status(),
		Actions:  d.actions.Stats(),
		Descriptors: func() DescriptorStatus {
			ds := d.fds
			ds.Used = d.peers.Used()
			return ds
		}(),

		Shields:    d.shieldsStatus(context.Background()),
		Goroutines: runtime.NumGoroutine(),
	}
	if fromStore {
		st.Reporting = d.report.status(context.Background(), d.store)
	}
	st.ActiveTotal = total
	st.Active = make([]Ban, 0, len(active))
	for _, a := range active {
		if r, ok := stored[a.Key()]; ok && r.Start.Equal(a.Start) {
			a.Reason, a.Action = r.Reason, r.Action // a trap is a ban to the engine
		}
		st.Active = append(st.Active, banOf(a))
	}
	for _, j := range jailLines(pipe, now) {
		if q.Jail == "" || j.Name == q.Jail {
			st.Jails = append(st.Jails, j)
		}
	}
	for _, rs := range sources {
		feeds := rs.feeds()
		if q.Jail != "" && !slices.Contains(feeds, q.Jail) {
			continue
		}
		var s source.Stats
		if rs.stats != nil {
			s = rs.stats.Stats()
		}
		st.Sources = append(st.Sources, SourceState{
			Source: rs.plan.describe(), Jails: feeds, Lines: s.Lines,
			Skipped: s.TooLong + s.Binary + s.Future + s.Invalid, Stale: rs.stale.Load(),
			Rejected: s.Rejected, Silent: s.Silent,
		})
	}
	return st, true
}

// jailLines describes the pipeline's jails at now.
func jailLines(pipe *Pipeline, now time.Time) []JailStatus {
	counts := map[string]engine.JailCounts{}
	for _, c := range pipe.Engine.JailCounts(now) {
		counts[c.Name] = c
	}
	var out []JailStatus
	for _, j := range pipe.Engine.Jails() {
		c := counts[j.Name]
		out = append(out, JailStatus{Name: j.Name, MaxRetry: j.MaxRetry, FindTime: j.FindTime.String(), BanTime: j.BanTime.String(),
			Banned: c.Active, Ports: event.FormatPorts(j.Ports), Failing: c.Failing, FailedTotal: c.Failed, BannedTotal: c.Banned})
	}
	return out
}

// activeReasons returns the store's active decisions on the targets of
// active, for their reasons, which the engine does not keep. A ban decided
// moments ago may not be stored yet; it is listed without a reason.
func (d *Daemon) activeReasons(now time.Time, active []event.Decision) map[event.DecisionKey]event.Decision {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	targets := make([]netip.Prefix, len(active))
	for i, a := range active {
		targets[i] = a.Target
	}
	ds, err := d.store.ActiveDecisionsOf(ctx, now, targets)
	if err != nil {
		d.log.Warn("status: reasons of active bans unavailable", "err", err)
		return nil
	}
	m := make(map[event.DecisionKey]event.Decision, len(ds))
	for _, x := range ds {
		m[x.Key()] = x
	}
	return m
}

func banOf(d event.Decision) Ban {
	return Ban{IP: Target(d.Target), Action: d.Action.String(), Ports: event.FormatPorts(d.Ports), Jail: d.Jail, Scenario: d.Scenario, Reason: d.Reason, Start: d.Start, End: d.End(), Origin: d.Origin}
}

// readTarget decodes a request body into req and parses the target it
// names; on failure it has answered 400 and returns false.
func readTarget(w http.ResponseWriter, r *http.Request, req any, ip func() string) (netip.Prefix, bool) {
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(req); err != nil {
		writeError(w, http.StatusBadRequest, "bad request: %v", err)
		return netip.Prefix{}, false
	}
	target, err := event.ParseTarget(ip())
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return netip.Prefix{}, false
	}
	return target, true
}

func (c *control) ban(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	target, ok := readTarget(w, r, &req, func() string { return req.IP })
	if !ok {
		return
	}
	b, err := c.d.banByHand(r.Context(), target, req)
	if err != nil {
		writeError(w, requestStatus(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// requestError is a manual ban's or unban's refusal, with the HTTP status
// that says whose fault it is.
type requestError struct {
	code int
	err  error
}

func (e *requestError) Error() string { return e.err.Error() }

func requestStatus(err error) int {
	var re *requestError
	if errors.As(err, &re) {
		return re.code
	}
	return http.StatusInternalServerError
}

// banByHand bans target as req asks (the control socket's and the
// dashboard's ban): in the jail's ban time, or the default one, when req
// gives none. Errors are *requestError.
func (d *Daemon) banByHand(ctx context.Context, target netip.Prefix, req BanRequest) (Ban, error) {
	pipe := d.currentPipe()
	dur := time.Duration(req.DurationS) * time.Second
	if req.Jail != "" {
		found := false
		for _, j := range pipe.Engine.Jails() {
			if j.Name == req.Jail {
				found = true
				if dur == 0 {
					dur = j.BanTime
				}
			}
		}
		if !found {
			return Ban{}, &requestError{http.StatusBadRequest, fmt.Errorf("unknown jail %q", req.Jail)}
		}
	}
	if dur == 0 {
		dur = d.currentConfig().Defaults.BanTime.D()
	}
	reason := req.Reason
	if reason == "" {
		reason = "banned by hand"
	}
	dec, err := pipe.Engine.Ban(event.Decision{Target: target, Action: event.Ban, Start: time.Now(), Duration: dur, Scenario: "manual", Reason: reason, Jail: req.Jail, Origin: "local"})
	if err != nil {
		return Ban{}, &requestError{http.StatusConflict, err}
	}
	d.apply.submit([]event.Decision{dec})
	d.apply.flush(ctx)
	return banOf(dec), nil
}

func (c *control) unban(w http.ResponseWriter, r *http.Request) {
	var req UnbanRequest
	target, ok := readTarget(w, r, &req, func() string { return req.IP })
	if !ok {
		return
	}
	removed, err := c.d.unbanByHand(r.Context(), target)
	if err != nil {
		writeError(w, requestStatus(err), "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"removed": removed})
}

// unbanByHand lifts target's ban (the control socket's and the
// dashboard's unban); it reports whether the engine had one.
func (d *Daemon) unbanByHand(ctx context.Context, target netip.Prefix) (bool, error) {
	removed, err := d.unbanFrom(ctx, target, "unbanned by hand")
	if err == nil {
		d.fleet.unban(target)
	}
	return removed, err
}

// unbanFrom lifts target's ban for reason; it reports whether the engine
// had one.
func (d *Daemon) unbanFrom(ctx context.Context, target netip.Prefix, reason string) (bool, error) {
	removed := d.currentPipe().Engine.Unban(target)
	if err := d.store.Revoke(ctx, target, time.Now(), reason); err != nil && !errors.Is(err, store.ErrNotActive) {
		d.log.Warn("store: revoke failed", "err", err)
	}
	if err := d.enf.Revoke(ctx, []netip.Prefix{target}); err != nil {
		return removed, fmt.Errorf("firewall: %w", err)
	}
	d.log.Info("unban", "addr", Target(target), "was_banned", removed, "reason", reason)
	d.actions.Unbanned(target, reason)
	return removed, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// writeList answers a listing: err as a 500, else xs as a JSON array
// ([] when empty, never null).
func writeList[T any](w http.ResponseWriter, xs []T, err error) {
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if xs == nil {
		xs = []T{}
	}
	writeJSON(w, http.StatusOK, xs)
}

// pathID reads the request's {id}; a bad one (what: "message", "report")
// is answered 400 and ok is false.
func pathID(w http.ResponseWriter, r *http.Request, what string) (id int64, ok bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad %s id %q", what, r.PathValue("id"))
		return 0, false
	}
	return id, true
}

// Client talks to a running daemon's control socket.
type Client struct {
	hc *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{hc: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return c.StatusOf(ctx, "")
}

// StatusOf fetches the daemon's status narrowed to one jail ("" for all),
// every active ban listed; an unknown jail is an error wrapping
// ErrUnknownJail.
func (c *Client) StatusOf(ctx context.Context, jail string) (Status, error) {
	return c.StatusFor(ctx, StatusQuery{Jail: jail, Bans: -1})
}

// StatusFor fetches the daemon's status as q asks; an unknown jail is an
// error wrapping ErrUnknownJail.
func (c *Client) StatusFor(ctx context.Context, q StatusQuery) (Status, error) {
	v := url.Values{}
	if q.Jail != "" {
		v.Set("jail", q.Jail)
	}
	if q.Bans >= 0 {
		v.Set("bans", strconv.Itoa(q.Bans))
	}
	path := "/v1/status"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var st Status
	err := c.call(ctx, http.MethodGet, path, nil, &st)
	return st, err
}

// ErrUnreachable is returned by Client calls when the socket does not answer.
var ErrUnreachable = errors.New("cannot reach the daemon")

// ErrUnknownJail is returned by StatusOf for a jail that does not run.
var ErrUnknownJail = errors.New("unknown jail")

// Reload asks the daemon to reload its configuration; the error says why
// the running one stays in force.
func (c *Client) Reload(ctx context.Context) ([]string, error) {
	var out struct {
		Jails []string `json:"jails"`
	}
	err := c.call(ctx, http.MethodPost, "/v1/reload", struct{}{}, &out)
	return out.Jails, err
}

// Ban asks for a manual ban.
func (c *Client) Ban(ctx context.Context, req BanRequest) (Ban, error) {
	var b Ban
	err := c.call(ctx, http.MethodPost, "/v1/ban", req, &b)
	return b, err
}

// Unban lifts a ban; it reports whether the target was banned.
func (c *Client) Unban(ctx context.Context, ip string) (bool, error) {
	var out struct {
		Removed bool `json:"removed"`
	}
	err := c.call(ctx, http.MethodPost, "/v1/unban", UnbanRequest{IP: ip}, &out)
	return out.Removed, err
}

func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://rampart"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w (is `rampart run` running, and are you root?): %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(e.Error, "unknown jail") {
				return fmt.Errorf("%w%s", ErrUnknownJail, strings.TrimPrefix(e.Error, "unknown jail"))
			}
			return errors.New(e.Error)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	return json.Unmarshal(data, out)
}
