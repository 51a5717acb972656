package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/action"
	"github.com/rampart-dev/rampart/internal/allow"
	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/connlimit"
	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/geo"
	"github.com/rampart-dev/rampart/internal/insight"
	"github.com/rampart-dev/rampart/internal/store"
)

// Options configure a Daemon.
type Options struct {
	Config   *config.Config
	Registry *filter.Registry
	Logger   *slog.Logger
	// Enforcer is the firewall to use; nil selects one from the
	// configuration (see SelectEnforcer).
	Enforcer Enforcer
	// EnforcerName describes Enforcer in status output ("nftables", "log (dry run)").
	EnforcerName string
	// Reload returns a fresh configuration on SIGHUP; nil disables reloads.
	Reload func() (*config.Config, error)
	// Version is reported by status.
	Version string
	// ReconcileEvery is how often the kernel is checked for lost bans when
	// nothing reports a change; zero means 5 s (see keepFirewall).
	ReconcileEvery time.Duration
	// InsightEvery is how often the counts are written to the hourly
	// aggregates and the geo files checked for changes; zero means a minute.
	InsightEvery time.Duration
	// InsightMaxEntries bounds the keys the insight counter holds between
	// two writes; zero means insight.DefaultMaxEntries.
	InsightMaxEntries int
	// EvidenceEvery is how often the quarantine is checked for mail to
	// read (evidence.go); zero means 5 s.
	EvidenceEvery time.Duration
	// ReportTransport and SmarthostTLS replace the reporters' HTTP
	// transport and the smarthost's TLS configuration (tests: services on
	// loopback with certificates of their own); nil: the defaults.
	ReportTransport http.RoundTripper
	SmarthostTLS    *tls.Config
}

// Daemon is a running Rampart.
type Daemon struct {
	opt     Options
	log     *slog.Logger
	store   *store.Store
	enf     Enforcer
	apply   *applier
	trap    *trapper           // nil: the trap is off (trap.go)
	evid    *evidencer         // nil: [evidence] is off (evidence.go)
	fleet   *fleetLink         // nil: the fleet is off (fleet.go)
	feeds   *feeds             // nil: [feed] is unused (feeds.go)
	report  *reporting         // nil: no reporter is enabled (report.go)
	actions *action.Dispatcher // nil: no [[action]] (actions.go)
	policy  policies
	live    liveFailures // failures the policy servers counted, not to count again from logs
	started time.Time
	peers   *connlimit.Budget // descriptors the listeners may hold together (descriptors.go)
	fds     DescriptorStatus
	metrics http.Handler // GET /metrics (metrics.go)

	// Health (health.go).
	book      healthBook
	storeFile storeFile
	storeErr  lastError  // the latest store write
	state     stateSaver // when the engine's state is saved next (state.go)
	enfErr    lastError  // the latest firewall change
	servers   sync.Map   // policy server name → error it stopped with
	reloads   reloadLog
	checks    atomic.Uint64 // Reconcile calls made by keepFirewall

	reloadMu sync.Mutex // one reload at a time (SIGHUP, the control socket)
	// geo locates addresses (insight.go); nil without a database. The
	// engine's ASN scenario reads it too. Swapped by a reload that changes
	// the paths (geoPaths, under reloadMu).
	geo      atomic.Pointer[geo.Watched]
	geoPaths [2]string
	insight  *insight.Counter // failures and bans to write to the hourly aggregates

	shields  *firewall.Shields // nil without the nftables enforcer (shields.go)
	shieldEv shieldEvents
	srcWG    sync.WaitGroup
	allowNew chan struct{} // a reload replaced the allowlist

	mu      sync.Mutex // guards the fields below, swapped on reload
	runCtx  context.Context
	cfg     *config.Config
	pipe    *Pipeline
	allow   *allow.List
	sources []*runningSource
}

// New opens the store, restores state and prepares the firewall. Run starts
// the work. Store problems are survived: a corrupt database is moved aside
// and a new one started, an unusable state directory falls back to an
// in-memory store; both are logged as errors.
func New(ctx context.Context, opt Options) (*Daemon, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Registry == nil {
		reg, err := Filters(opt.Config)
		if err != nil {
			return nil, err
		}
		opt.Registry = reg
	}
	d := &Daemon{opt: opt, log: opt.Logger, cfg: opt.Config, started: time.Now(), allowNew: make(chan struct{}, 1)}
	d.book.log = d.log
	d.reloads.loaded = d.started
	d.peers, d.fds = peerBudget(d.log)
	d.metrics = newMetricsHandler(func() Status {
		st, _ := d.status(StatusQuery{}, false) // the counts: no ban listed, nothing read from the store
		return st
	}, d.log)
	d.geo.Store(openGeo(opt.Config, d.log))
	d.geoPaths = geoPaths(opt.Config)
	d.insight = &insight.Counter{MaxEntries: opt.InsightMaxEntries}
	st, err := openStore(ctx, opt.Config.Daemon.StateDir, d.log, store.WithLocator(d.place))
	if err != nil {
		d.geo.Load().Close()
		return nil, err
	}
	d.store = st
	d.storeFile = statStore(st.Path())
	d.enf = opt.Enforcer
	if d.enf == nil {
		d.enf, d.opt.EnforcerName, err = SelectEnforcer(ctx, opt.Config, d.log)
		if err != nil {
			st.Close()
			return nil, err
		}
	}
	d.setupShields(ctx)
	pipe, al, err := newPipeline(ctx, opt.Config, opt.Registry, asnOf(d.geo.Load(), opt.Config), d.shieldEv.reader != nil, d.log)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.allow, d.pipe = al, pipe
	d.apply = newApplier(st, d.enf, d.log)
	if d.trap, err = newTrapper(ctx, opt.Config, d.enf, st, d.log); err != nil {
		d.Close()
		return nil, err
	}
	d.apply.convert = d.trap.convert
	d.evid = newEvidencer(opt.Config, st, opt.EvidenceEvery, d.log)
	if d.report, err = newReporting(ctx, opt.Config, st, opt, d.log); err != nil {
		d.Close()
		return nil, err
	}
	if d.evid != nil {
		d.evid.found = d.report.message
	}
	if d.actions, err = newActions(opt.Config, opt, d.log); err != nil {
		d.Close()
		return nil, err
	}
	if d.report != nil && d.actions != nil {
		host, _ := os.Hostname()
		d.report.q.Sent = reportSent(d.actions, host)
	}
	d.apply.storeErr, d.apply.enfErr = &d.storeErr, &d.enfErr
	d.apply.positions = func() map[string]string {
		d.mu.Lock()
		sources := d.sources
		d.mu.Unlock()
		return positionsOf(sources)
	}
	_, d.apply.quiet = d.enf.(*firewall.Log)
	if err := d.restore(ctx); err != nil {
		d.Close()
		return nil, err
	}
	// Bans restored above were counted when first decided, and shared;
	// from here on every ban the applier takes is new.
	d.apply.count = d.insight
	if d.fleet, err = newFleet(d, opt.Config); err != nil {
		d.Close()
		return nil, err
	}
	d.apply.share = d.fleet.share
	if d.feeds, err = newFeeds(d, opt.Config); err != nil {
		d.Close()
		return nil, err
	}
	d.apply.onApplied = func(ds []event.Decision) {
		d.report.decided(ds)
		d.actions.Decided(ds)
	}
	trackActive(ctx, d.actions, st)
	return d, nil
}

// newPipeline builds the decision path for cfg as the daemon runs it: the
// allowlist (the host's own addresses always in it, names resolved), the
// jails' filters and the engine, with asn (OpenASN's; nil without one),
// and the shields' jails when their events reach the daemon. `rampart
// replay` builds it here too (NewReplayPipeline), so it bans exactly what
// the daemon would.
func newPipeline(ctx context.Context, cfg *config.Config, reg *filter.Registry, asn engine.ASNLookup, shields bool, log *slog.Logger) (*Pipeline, *allow.List, error) {
	al, err := newAllowlist(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	p, ecfg, err := compile(cfg, reg, al, asn, shields, log)
	if err != nil {
		return nil, nil, err
	}
	e, err := engine.New(ecfg)
	if err != nil {
		return nil, nil, err
	}
	p.Engine = e
	return p, al, nil
}

// NewReplayPipeline builds the pipeline `rampart replay` runs logs
// through: the daemon's own (see newPipeline), allowlist included. log may
// be nil.
func NewReplayPipeline(ctx context.Context, cfg *config.Config, reg *filter.Registry, log *slog.Logger) (*Pipeline, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pipe, _, err := newPipeline(ctx, cfg, reg, OpenASN(cfg, log), false, log)
	return pipe, err
}

// newAllowlist builds cfg's allowlist and resolves its names (a name that
// does not resolve is retried in the background).
func newAllowlist(ctx context.Context, cfg *config.Config, log *slog.Logger) (*allow.List, error) {
	al, err := allow.New(cfg.Allow.Entries, allow.Options{Own: true, NoLoopback: !cfg.Allow.Loopback, Logger: log})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := al.Resolve(rctx); err != nil {
		log.Warn("allowlist: some names did not resolve; retrying in the background", "err", err)
	}
	return al, nil
}

// openStore opens the SQLite store under dir, surviving what it can: it
// falls back to an in-memory store (Path store.Memory) when the directory
// or the database is unusable.
func openStore(ctx context.Context, dir string, log *slog.Logger, opts ...store.Option) (*store.Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Error("state directory unusable; bans will not survive a restart", "dir", dir, "err", err)
		return store.Open(ctx, store.Memory, opts...)
	}
	path := filepath.Join(dir, "rampart.db")
	var st *store.Store
	var err error
	for attempt := range 5 {
		st, err = store.Open(ctx, path, opts...)
		if err == nil {
			return st, nil
		}
		if errors.Is(err, store.ErrCorrupt) {
			moved, merr := store.MoveAside(path)
			log.Error("database corrupt; moved aside, starting a new one (active kernel bans are adopted)", "path", path, "moved_to", moved, "err", err)
			if merr != nil {
				break
			}
			continue
		}
		log.Warn("database not available yet; retrying", "path", path, "err", err, "attempt", attempt+1)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * time.Second):
		}
	}
	log.Error("database unusable; keeping state in memory only: bans will not survive a restart", "path", path, "err", err)
	return store.Open(ctx, store.Memory, opts...)
}

// restore reconciles the store, the engine and the kernel after a start:
// bans in the store are re-applied (the kernel may have lost them, or they
// were refreshed); kernel bans the store does not know (a database lost to
// corruption) are adopted; allowlisted bans are revoked.
func (d *Daemon) restore(ctx context.Context) error {
	if err := d.loadState(ctx); err != nil {
		return err
	}
	now := time.Now()
	active, err := d.store.ActiveDecisions(ctx, now)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	since := now.Add(-max(d.cfg.Escalation.Window.D(), d.cfg.Recidive.Window.D()))
	past, err := d.store.EachBan(ctx, since, d.pipe.Engine.RestoreBan)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := d.restoreKnownGood(ctx, d.pipe, now); err != nil {
		return err
	}
	known := map[event.DecisionKey]bool{}
	for _, a := range active {
		known[a.Key()] = true
	}
	kernel, err := d.enf.Active(ctx)
	if err != nil {
		d.log.Warn("firewall: cannot list active bans; re-applying the store's", "err", err)
	}
	var adopted []event.Decision
	for _, k := range kernel {
		if !known[k.Key()] {
			k.Scenario, k.Reason, k.Origin = "adopted", "found in the firewall at start-up, unknown to the store", "local"
			adopted = append(adopted, k)
		}
	}
	if len(adopted) > 0 {
		if _, err := d.store.RecordDecisions(ctx, adopted); err != nil {
			d.log.Error("store: recording adopted bans failed", "err", err)
		}
		active = append(active, adopted...)
	}
	// The engine knows traps as the bans it decided (see trapper.convert).
	dropped := d.pipe.Engine.Restore(asBans(active))
	var revoke []netip.Prefix
	for _, x := range dropped {
		revoke = append(revoke, x.Target)
		if err := d.store.Revoke(ctx, x.Target, now, "allowlisted"); err != nil {
			d.log.Error("store: revoke failed", "err", err)
		}
	}
	if len(revoke) > 0 {
		d.log.Warn("revoking bans of allowlisted addresses", "count", len(revoke))
		if err := d.enf.Revoke(ctx, revoke); err != nil {
			d.log.Error("firewall: revoke failed", "err", err)
		}
	}
	if err := d.enf.SetAllow(ctx, d.allow.Prefixes()); err != nil {
		return fmt.Errorf("firewall: allow set: %w", err)
	}
	// Re-apply what the engine took (the store's decisions, with their
	// reasons; the engine does not keep reasons).
	gone := map[netip.Prefix]bool{}
	for _, x := range dropped {
		gone[x.Target] = true
	}
	var keep []event.Decision
	for _, a := range active {
		if !gone[a.Target] && a.Active(now) {
			keep = append(keep, a)
		}
	}
	d.apply.submit(keep)
	d.apply.flush(ctx) // the bans, and the known-good clients' carve-outs
	d.log.Info("state restored", "active_bans", len(keep), "adopted", len(adopted), "history", past)
	return nil
}

// restoreKnownGood loads the addresses that logged in, or delivered mail,
// within their TTLs, and carves each out of prefix bans until its TTL ends.
func (d *Daemon) restoreKnownGood(ctx context.Context, p *Pipeline, now time.Time) error {
	ttl := d.cfg.KnownGood.TTL.D()
	kg, err := d.store.KnownGood(ctx, now.Add(-ttl))
	if err != nil {
		return fmt.Errorf("restore known-good clients: %w", err)
	}
	for _, k := range kg {
		p.Engine.RestoreKnownGood(k.Addr, k.User, k.LastSeen)
		d.apply.goodClient(k.Addr, k.LastSeen.Add(ttl))
	}
	if !d.cfg.Relays.Enabled {
		return nil
	}
	rs, err := d.store.Relays(ctx, now.Add(-d.cfg.Relays.TTL.D()))
	if err != nil {
		return fmt.Errorf("restore delivering relays: %w", err)
	}
	for _, r := range rs {
		p.Engine.RestoreRelay(r.Addr, r.LastSeen)
		d.apply.goodClient(r.Addr, r.LastSeen.Add(d.cfg.Relays.TTL.D()))
	}
	return nil
}

// Run starts the sources and serves until ctx ends. It returns after every
// goroutine it started has stopped; kernel bans stay in place and expire by
// themselves. Each value received on hup reloads the configuration (see
// Reload).
func (d *Daemon) Run(ctx context.Context, hup <-chan os.Signal) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.mu.Lock()
	d.runCtx = ctx
	d.mu.Unlock()

	// The governor outlives ctx: the state saved and the hourly aggregates
	// flushed on the way out allocate as much as a minute of the flood, and
	// without it the heap would double before they are done.
	govCtx, stopGov := context.WithCancel(context.WithoutCancel(ctx))
	defer stopGov()
	wg.Add(1)
	go func() { defer wg.Done(); newHeapGovernor().follow(govCtx, 2*time.Second) }()
	wg.Add(1)
	go func() { defer wg.Done(); d.apply.run(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); d.runAllow(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); d.keepFirewall(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); d.readShieldLog(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); d.evid.run(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); d.report.run(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); d.actions.Run(ctx) }()
	ctl, err := d.listenControl(d.cfg.Daemon.Socket)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); ctl.serve(ctx) }()
	if addr := d.cfg.Metrics.Listen; addr != "" {
		ms, err := listenMetrics(addr, d.metrics, d.log)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); ms.serve(ctx) }()
	}
	if err := d.feeds.listen(); err != nil {
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); d.feeds.run(ctx) }()
	api, err := d.startAPI(d.cfg)
	if err != nil {
		return err
	}
	if api != nil {
		wg.Add(1)
		go func() { defer wg.Done(); api.serve(ctx) }()
	}
	wl, err := d.startWeb(d.cfg)
	if err != nil {
		return err
	}
	if wl != nil {
		wg.Add(1)
		go func() { defer wg.Done(); wl.Serve(ctx) }()
	}

	if err := d.fleet.start(); err != nil {
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); d.fleet.run(ctx); d.fleet.stop() }()
	if err := d.startSources(ctx); err != nil {
		d.stopSources()
		return err
	}
	if err := d.startPolicies(ctx, &wg); err != nil {
		d.stopSources()
		return err
	}
	if err := d.trap.start(ctx, &wg); err != nil {
		d.stopSources()
		return err
	}
	d.log.Info("rampart running", "jails", fmt.Sprint(d.pipe.JailNames()), "firewall", d.opt.EnforcerName, "socket", d.cfg.Daemon.Socket)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	save := time.NewTicker(5 * time.Second)
	defer save.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	every := d.opt.InsightEvery
	if every <= 0 {
		every = time.Minute
	}
	insightTick := time.NewTicker(every)
	defer insightTick.Stop()
	for {
		select {
		case <-ctx.Done():
			d.stopSources()
			d.saveState(context.WithoutCancel(ctx), time.Now())
			d.flushInsight(context.WithoutCancel(ctx))
			d.log.Info("rampart stopped; firewall bans stay in place until they expire")
			return nil
		case <-hup:
			d.Reload(ctx)
		case now := <-tick.C:
			d.apply.submit(d.currentPipe().Engine.Tick(now))
			d.health(now)
		case now := <-save.C:
			d.saveStateIfDue(ctx, now)
			d.apply.retryStore(ctx)
		case now := <-prune.C:
			d.pruneDecisions(ctx, now)
			d.compactInsight(ctx, now)
			d.trap.prune(ctx, now)
			d.evid.prune(ctx, now)
			d.report.prune(ctx, d.store, now)
		case <-insightTick.C:
			d.flushInsight(ctx)
			d.checkGeo()
		}
	}
}

// pruneDecisions deletes the store's active entries that ended and the
// history entries older than daemon.history_retention.
func (d *Daemon) pruneDecisions(ctx context.Context, now time.Time) {
	if _, err := d.store.PruneExpired(ctx, now); err != nil {
		d.log.Warn("store: prune failed", "err", err)
	}
	n, err := d.store.PruneHistory(ctx, now.Add(-d.currentConfig().Daemon.HistoryRetention.D()))
	if err != nil {
		d.log.Warn("store: pruning the history failed", "err", err)
	}
	if n > 0 {
		d.log.Debug("history pruned", "deleted", n)
	}
}

func (d *Daemon) currentPipe() *Pipeline {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pipe
}

func (d *Daemon) currentConfig() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// runAllow re-resolves the names on the allowlist in force, following the
// list across reloads, and keeps the firewall's allow set up to date.
func (d *Daemon) runAllow(ctx context.Context) {
	for {
		d.mu.Lock()
		al, every := d.allow, d.cfg.Allow.ResolveEvery.D()
		d.mu.Unlock()
		lctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			al.Run(lctx, every, func(ps []netip.Prefix) {
				d.enfErr.note(wrapErr("updating the allow set", d.enf.SetAllow(lctx, ps)))
			})
		}()
		select {
		case <-ctx.Done():
		case <-d.allowNew:
		}
		stop()
		<-done
		if ctx.Err() != nil {
			return
		}
	}
}

// wrapErr adds what was being done to a non-nil error.
func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// startSources starts the sources of the configuration in force.
func (d *Daemon) startSources(ctx context.Context) error {
	d.mu.Lock()
	cfg, pipe := d.cfg, d.pipe
	d.mu.Unlock()
	set, err := d.prepareSources(ctx, cfg, pipe)
	if err != nil {
		return err
	}
	d.switchSources(ctx, set, pipe)
	return nil
}

func containsName(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

func (d *Daemon) stopSources() {
	d.mu.Lock()
	sources := d.sources
	d.mu.Unlock()
	for _, rs := range sources {
		if rs.stop != nil {
			rs.stop()
		}
	}
	d.srcWG.Wait()
}

// savePositions saves the positions of the running sources.
func (d *Daemon) savePositions(ctx context.Context) {
	d.mu.Lock()
	sources := d.sources
	d.mu.Unlock()
	d.saveSourcePositions(ctx, sources)
}

func (d *Daemon) saveSourcePositions(ctx context.Context, sources []*runningSource) {
	pos := positionsOf(sources)
	if len(pos) == 0 {
		return
	}
	err := d.store.SavePositions(ctx, pos)
	d.storeErr.note(err)
	if err != nil {
		d.log.Debug("store: saving positions failed", "err", err)
	}
}

// positionsOf returns the sources' positions by key.
func positionsOf(sources []*runningSource) map[string]string {
	pos := map[string]string{}
	for _, rs := range sources {
		if rs.pos != nil {
			if p := rs.pos.position(); p != "" {
				pos[rs.plan.key] = p
			}
		}
	}
	return pos
}

// Close releases the store and the firewall handle (not the kernel state).
func (d *Daemon) Close() error {
	var errs []error
	if d.shields != nil {
		errs = append(errs, d.shields.Close())
	}
	if r := d.shieldEv.reader; r != nil && !d.shieldEv.read.Load() {
		errs = append(errs, r.Close()) // never read: Run did not start
	}
	if d.enf != nil {
		errs = append(errs, d.enf.Close())
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
	}
	errs = append(errs, d.geo.Load().Close())
	return errors.Join(errs...)
}
