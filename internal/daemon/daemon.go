package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/allow"
	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/logline"
	"github.com/rampart-dev/rampart/internal/source"
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
}

// Daemon is a running Rampart.
type Daemon struct {
	opt     Options
	log     *slog.Logger
	store   *store.Store
	enf     Enforcer
	allow   *allow.List
	apply   *applier
	policy  policies
	live    liveFailures // failures the policy servers counted, not to count again from logs
	started time.Time

	mu      sync.Mutex // guards the fields below, swapped on reload
	cfg     *config.Config
	pipe    *Pipeline
	sources []*runningSource
	stopSrc context.CancelFunc
	srcWG   sync.WaitGroup
}

// runningSource is one source with the router of the jails it feeds.
type runningSource struct {
	plan  *sourcePlan
	src   interface{ Stats() source.Stats }
	pos   positioned    // nil for sources without a position
	stale atomic.Uint64 // lines too old to count
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
		reg, err := filter.Builtin()
		if err != nil {
			return nil, err
		}
		opt.Registry = reg
	}
	d := &Daemon{opt: opt, log: opt.Logger, cfg: opt.Config, started: time.Now()}
	st, err := openStore(ctx, opt.Config.Daemon.StateDir, d.log)
	if err != nil {
		return nil, err
	}
	d.store = st
	al, err := allow.New(opt.Config.Allow.Entries, allow.Options{Own: true, NoLoopback: !opt.Config.Allow.Loopback, Logger: d.log})
	if err != nil {
		st.Close()
		return nil, err
	}
	d.allow = al
	if _, err := al.Resolve(ctx); err != nil {
		d.log.Warn("allowlist: some names did not resolve; retrying in the background", "err", err)
	}
	pipe, err := NewPipeline(opt.Config, opt.Registry, al, OpenASN(opt.Config, d.log), d.log)
	if err != nil {
		st.Close()
		return nil, err
	}
	d.pipe = pipe
	d.enf = opt.Enforcer
	if d.enf == nil {
		d.enf, d.opt.EnforcerName, err = SelectEnforcer(ctx, opt.Config, d.log)
		if err != nil {
			st.Close()
			return nil, err
		}
	}
	d.apply = newApplier(st, d.enf, d.log)
	_, d.apply.quiet = d.enf.(*firewall.Log)
	if err := d.restore(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// openStore opens the SQLite store under dir, surviving what it can.
func openStore(ctx context.Context, dir string, log *slog.Logger) (*store.Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Error("state directory unusable; bans will not survive a restart", "dir", dir, "err", err)
		return store.Open(ctx, ":memory:")
	}
	path := filepath.Join(dir, "rampart.db")
	var st *store.Store
	var err error
	for attempt := range 5 {
		st, err = store.Open(ctx, path)
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
	return store.Open(ctx, ":memory:")
}

// restore reconciles the store, the engine and the kernel after a start:
// bans in the store are re-applied (the kernel may have lost them, or they
// were refreshed); kernel bans the store does not know (a database lost to
// corruption) are adopted; allowlisted bans are revoked.
func (d *Daemon) restore(ctx context.Context) error {
	now := time.Now()
	active, err := d.store.ActiveDecisions(ctx, now)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	since := now.Add(-max(d.cfg.Escalation.Window.D(), d.cfg.Recidive.Window.D()))
	hist, err := d.store.History(ctx, store.HistoryFilter{Since: since})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	past := pastBans(hist)
	if err := d.restoreKnownGood(ctx, d.pipe, now); err != nil {
		return err
	}
	known := map[netip.Prefix]bool{}
	for _, a := range active {
		known[a.Target] = true
	}
	kernel, err := d.enf.Active(ctx)
	if err != nil {
		d.log.Warn("firewall: cannot list active bans; re-applying the store's", "err", err)
	}
	var adopted []event.Decision
	for _, k := range kernel {
		if !known[k.Target] {
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
	dropped := d.pipe.Engine.Restore(active, past)
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
	if len(keep) > 0 {
		d.apply.submit(keep)
		d.apply.flush(ctx)
	}
	d.log.Info("state restored", "active_bans", len(keep), "adopted", len(adopted), "history", len(past))
	return nil
}

// pastBans keeps the history entries that count for escalation: bans that
// ran their course, not revocations nor bans lifted by hand.
func pastBans(hist []store.HistoryEntry) []event.Decision {
	var past []event.Decision
	for _, h := range hist {
		if h.Revocation || !h.RevokedAt.IsZero() {
			continue
		}
		past = append(past, h.Decision)
	}
	return past
}

// restoreKnownGood loads the addresses that logged in within the TTL.
func (d *Daemon) restoreKnownGood(ctx context.Context, p *Pipeline, now time.Time) error {
	kg, err := d.store.KnownGood(ctx, now.Add(-d.cfg.KnownGood.TTL.D()))
	if err != nil {
		return fmt.Errorf("restore known-good clients: %w", err)
	}
	for _, k := range kg {
		p.Engine.RestoreKnownGood(k.Addr, k.User, k.LastSeen)
	}
	return nil
}

// Run starts the sources and serves until ctx ends. It returns after every
// goroutine it started has stopped; kernel bans stay in place and expire by
// themselves.
func (d *Daemon) Run(ctx context.Context, hup <-chan os.Signal) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	wg.Add(1)
	go func() { defer wg.Done(); d.apply.run(ctx) }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.allow.Run(ctx, d.cfg.Allow.ResolveEvery.D(), func(ps []netip.Prefix) {
			if err := d.enf.SetAllow(ctx, ps); err != nil {
				d.log.Error("firewall: updating the allow set failed", "err", err)
			}
		})
	}()
	ctl, err := d.listenControl(d.cfg.Daemon.Socket)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); ctl.serve(ctx) }()

	if err := d.startSources(ctx); err != nil {
		return err
	}
	if err := d.startPolicies(ctx, &wg); err != nil {
		return err
	}
	d.log.Info("rampart running", "jails", fmt.Sprint(d.pipe.JailNames()), "firewall", d.opt.EnforcerName, "socket", d.cfg.Daemon.Socket)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	save := time.NewTicker(5 * time.Second)
	defer save.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			d.stopSources()
			d.savePositions(context.WithoutCancel(ctx))
			d.log.Info("rampart stopped; firewall bans stay in place until they expire")
			return nil
		case <-hup:
			d.reload(ctx)
		case now := <-tick.C:
			d.apply.submit(d.currentPipe().Engine.Tick(now))
		case <-save.C:
			d.savePositions(ctx)
		case now := <-prune.C:
			if _, err := d.store.PruneExpired(ctx, now); err != nil {
				d.log.Warn("store: prune failed", "err", err)
			}
		}
	}
}

func (d *Daemon) currentPipe() *Pipeline {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pipe
}

// startSources starts one goroutine per planned source.
func (d *Daemon) startSources(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	positions, err := d.store.Positions(ctx)
	if err != nil {
		d.log.Warn("store: cannot load saved positions; starting at the end of each log", "err", err)
		positions = map[string]string{}
	}
	sctx, stop := context.WithCancel(ctx)
	d.stopSrc = stop
	d.sources = nil
	maxFind := time.Duration(0)
	for _, j := range d.pipe.Engine.Jails() {
		maxFind = max(maxFind, j.FindTime)
	}
	for _, plan := range planSources(d.cfg, d.pipe.JailNames(), journaldRunning()) {
		lr, err := d.pipe.Matchers(func(j *config.Jail) bool { return containsName(plan.jails, j.Name) })
		if err != nil {
			stop()
			return err
		}
		rs := &runningSource{plan: plan}
		var src source.Source
		parser := newParser()
		switch {
		case plan.file != "":
			f := &source.File{Path: plan.file, Parser: parser, Logger: d.log}
			if s, ok := positions[plan.key]; ok {
				if p, err := ParsePosition(s); err == nil {
					f.Start = &p
				}
			}
			src, rs.src, rs.pos = f, f, fileSource{f}
		case plan.jrnl != nil:
			j := &source.Journal{Units: plan.jrnl.Units, Identifiers: plan.jrnl.Identifiers, AfterCursor: positions[plan.key], Parser: parser, Logger: d.log}
			src, rs.src, rs.pos = j, j, journalSource{j}
		default:
			s, err := source.ListenSyslog(d.cfg.Syslog.UDP, d.cfg.Syslog.TCP)
			if err != nil {
				stop()
				return err
			}
			s.Parser, s.Logger = parser, d.log
			src, rs.src = s, s
		}
		d.sources = append(d.sources, rs)
		d.log.Info("reading", "source", plan.describe(), "jails", fmt.Sprint(plan.jails))
		d.srcWG.Add(1)
		go func() {
			defer d.srcWG.Done()
			err := src.Run(sctx, func(l logline.Line) { d.line(lr, rs, &l, maxFind) })
			if err != nil && sctx.Err() == nil {
				d.log.Error("source stopped", "source", plan.describe(), "err", err)
			}
		}()
	}
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

// line handles one live line: filters, engine, then the applier.
func (d *Daemon) line(lr *LineRouter, rs *runningSource, l *logline.Line, maxFind time.Duration) {
	now := time.Now()
	if l.Time.IsZero() || l.Time.After(now.Add(time.Minute)) {
		l.Time = now
	} else if now.Sub(l.Time) > maxFind {
		// A backlog line too old to matter for any window.
		rs.stale.Add(1)
		return
	}
	ev, ok, ds := lr.observe(l, func(ev event.Event) bool { return d.live.absorb(ev, now) })
	if ok && ev.Kind == event.AuthSuccess && ev.Addr.IsValid() {
		d.apply.knownGood(ev)
	}
	d.apply.submit(ds)
}

func (d *Daemon) stopSources() {
	d.mu.Lock()
	stop := d.stopSrc
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
	d.srcWG.Wait()
}

func (d *Daemon) savePositions(ctx context.Context) {
	d.mu.Lock()
	pos := map[string]string{}
	for _, rs := range d.sources {
		if rs.pos != nil {
			if p := rs.pos.position(); p != "" {
				pos[rs.plan.key] = p
			}
		}
	}
	d.mu.Unlock()
	if len(pos) == 0 {
		return
	}
	if err := d.store.SavePositions(ctx, pos); err != nil {
		d.log.Warn("store: saving positions failed", "err", err)
	}
}

// reload re-reads the configuration: sources stop (their positions saved),
// a new pipeline takes over the engine's active bans and ban history, and
// sources start again where they were. Kernel bans are untouched. A bad
// configuration is logged and the running one kept.
func (d *Daemon) reload(ctx context.Context) {
	if d.opt.Reload == nil {
		return
	}
	cfg, err := d.opt.Reload()
	if err != nil {
		d.log.Error("reload: keeping the running configuration", "err", err)
		return
	}
	pipe, err := NewPipeline(cfg, d.opt.Registry, d.allow, OpenASN(cfg, d.log), d.log)
	if err != nil {
		d.log.Error("reload: keeping the running configuration", "err", err)
		return
	}
	d.stopSources()
	d.savePositions(ctx)
	now := time.Now()
	hist, err := d.store.History(ctx, store.HistoryFilter{Since: now.Add(-max(cfg.Escalation.Window.D(), cfg.Recidive.Window.D()))})
	if err != nil {
		d.log.Warn("reload: ban history unavailable; escalation restarts", "err", err)
	}
	past := pastBans(hist)
	pipe.Engine.Restore(d.currentPipe().Engine.Active(now), past)
	if err := d.restoreKnownGood(ctx, pipe, now); err != nil {
		d.log.Warn("reload: known-good clients unavailable", "err", err)
	}
	d.mu.Lock()
	d.cfg, d.pipe = cfg, pipe
	d.mu.Unlock()
	if err := d.startSources(ctx); err != nil {
		d.log.Error("reload: starting sources failed", "err", err)
		return
	}
	d.log.Info("configuration reloaded", "jails", fmt.Sprint(pipe.JailNames()))
}

// Close releases the store and the firewall handle (not the kernel state).
func (d *Daemon) Close() error {
	var errs []error
	if d.enf != nil {
		errs = append(errs, d.enf.Close())
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
	}
	return errors.Join(errs...)
}
