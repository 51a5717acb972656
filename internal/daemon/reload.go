package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/allow"
	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/geo"
	"github.com/rampart-dev/rampart/internal/store"
)

// A reload is all or nothing. Everything that can fail is done first,
// while the running configuration goes on: the file is read and validated,
// the filters compiled, the allowlist built, the new sources made (a
// syslog listener binds its addresses). Only when all of that worked does
// the daemon switch: the engine takes the new jails and settings keeping
// what it has learnt (Engine.Reconfigure), sources that the new
// configuration still reads go on reading with new routers (no line read
// twice or skipped), new sources start, removed ones stop, and active bans
// the new allowlist covers are lifted. On any error nothing changes: the
// old sources keep reading, and the error is logged, shown by status (the
// "config" health line) and returned to whoever asked for the reload.
//
// Policy servers' listen addresses and the state directory are read once:
// changing them needs a restart.

// ReloadStatus reports reloads in Status.
type ReloadStatus struct {
	Loaded      time.Time `json:"loaded"`   // when the configuration in force was loaded
	Reloads     uint64    `json:"reloads"`  // reloads that succeeded
	Failures    uint64    `json:"failures"` // reloads refused
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// reloadLog counts reloads and keeps the latest failure until a reload
// succeeds.
type reloadLog struct {
	mu       sync.Mutex
	loaded   time.Time
	ok, fail uint64
	err      string
	errAt    time.Time
}

func (r *reloadLog) note(err error, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.fail++
		r.err, r.errAt = err.Error(), now
		return
	}
	r.ok++
	r.loaded, r.err, r.errAt = now, "", time.Time{}
}

func (r *reloadLog) status() ReloadStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ReloadStatus{Loaded: r.loaded, Reloads: r.ok, Failures: r.fail, LastError: r.err, LastErrorAt: r.errAt}
}

// ErrNoReload is returned by Reload when the daemon has no configuration to
// re-read (Options.Reload is nil).
var ErrNoReload = errors.New("this daemon cannot reload: it was not started from a configuration it can re-read")

// Reload re-reads the configuration and switches to it, or, on any error,
// keeps the running one in force and returns the error.
func (d *Daemon) Reload(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	// A caller that goes away (a control socket client) must not cut a
	// switch short: the firewall and the store must follow the engine.
	err := d.reload(context.WithoutCancel(ctx))
	d.reloads.note(err, time.Now())
	if err != nil {
		d.log.Error("reload failed: keeping the running configuration and sources", "err", err)
		return err
	}
	d.log.Info("configuration reloaded", "jails", fmt.Sprint(d.currentPipe().JailNames()))
	return nil
}

func (d *Daemon) reload(ctx context.Context) error {
	if d.opt.Reload == nil {
		return ErrNoReload
	}
	d.mu.Lock()
	running := d.runCtx
	d.mu.Unlock()
	if running == nil || running.Err() != nil {
		return errors.New("the daemon is not running")
	}
	cfg, err := d.opt.Reload()
	if err != nil {
		return err
	}
	al, err := newAllowlist(ctx, cfg, d.log)
	if err != nil {
		return err
	}
	// The geo databases are opened again only when a path changed (a
	// changed file is read again without a reload, see checkGeo); the ones
	// no longer used are closed once the engine has let go of them.
	inForce := d.geo.Load()
	gw, oldGeo := inForce, (*geo.Watched)(nil)
	if geoPaths(cfg) != d.geoPaths {
		gw, oldGeo = openGeo(cfg, d.log), inForce
	}
	ok := false
	defer func() {
		if ok {
			oldGeo.Close()
		} else if gw != inForce {
			gw.Close()
		}
	}()
	pipe, ecfg, err := d.currentPipe().reconfigured(cfg, d.opt.Registry, al, asnOf(gw, cfg), d.log)
	if err != nil {
		return err
	}
	if old := d.currentConfig().Daemon.MaxTracked; cfg.Daemon.MaxTracked != old {
		d.log.Warn("reload: max_tracked changes at the next restart", "running", old, "configured", cfg.Daemon.MaxTracked)
	}
	warnRestartOnly(d.log, d.currentConfig(), cfg)
	set, err := d.prepareSources(running, cfg, pipe)
	if err != nil {
		return err
	}
	if err := pipe.Engine.Reconfigure(ecfg); err != nil {
		set.discard()
		return err
	}
	// From here on nothing fails: switch.
	ok = true
	d.geo.Store(gw)
	d.geoPaths = geoPaths(cfg)
	d.reloadShields(ctx, cfg)
	d.mu.Lock()
	d.cfg, d.allow = cfg, al
	d.mu.Unlock()
	d.switchSources(running, set, pipe)
	signal(d.allowNew)
	d.applyAllowlist(ctx, al)
	return nil
}

// applyAllowlist gives the firewall the allowlist in force and lifts the
// active bans it covers.
func (d *Daemon) applyAllowlist(ctx context.Context, al *allow.List) {
	d.enfErr.note(wrapErr("updating the allow set", d.enf.SetAllow(ctx, al.Prefixes())))
	dropped := d.currentPipe().Engine.DropAllowlisted()
	if len(dropped) == 0 {
		return
	}
	now := time.Now()
	targets := make([]netip.Prefix, 0, len(dropped))
	for _, x := range dropped {
		targets = append(targets, x.Target)
		if err := d.store.Revoke(ctx, x.Target, now, "allowlisted"); err != nil && !errors.Is(err, store.ErrNotActive) {
			d.storeErr.note(err)
		}
	}
	d.log.Warn("revoking bans of addresses now allowlisted", "count", len(targets))
	d.enfErr.note(wrapErr("revoking allowlisted bans", d.enf.Revoke(ctx, targets)))
}

// sourceSet is the sources of a configuration, prepared but not yet
// switched to: some kept from the running set, some new.
type sourceSet struct {
	list    []*runningSource
	plans   []*sourcePlan // for list[i]: the jails it is to feed
	routers []*LineRouter // for list[i]
	fresh   []bool        // list[i] is new: to start
}

// discard closes what the set opened for nothing.
func (s *sourceSet) discard() {
	for i, rs := range s.list {
		if s.fresh[i] {
			rs.halt()
		}
	}
}

// prepareSources makes the sources cfg needs, reusing running ones that
// read the same thing, with a router each for pipe's jails. On error it has
// closed whatever it opened.
func (d *Daemon) prepareSources(ctx context.Context, cfg *config.Config, pipe *Pipeline) (*sourceSet, error) {
	d.mu.Lock()
	running := d.sources
	d.mu.Unlock()
	var positions map[string]string
	set := &sourceSet{}
	for _, plan := range planSources(cfg, pipe.JailNames(), journaldRunning()) {
		lr, err := pipe.Matchers(func(j *config.Jail) bool { return containsName(plan.jails, j.Name) })
		if err != nil {
			set.discard()
			return nil, err
		}
		var rs *runningSource
		for _, old := range running {
			if old.plan.same(plan) && old.alive() {
				rs = old
				break
			}
		}
		fresh := rs == nil
		if fresh {
			if positions == nil {
				positions = d.loadPositions(ctx, running)
			}
			rs, err = d.prepareSource(plan, positions)
			if err != nil && handsOver(running, plan) {
				// The new listener needs an address the old one holds:
				// it binds when the old one has closed (see switchSources).
				rs, err = &runningSource{plan: plan, handover: true}, nil
			}
			if err != nil {
				set.discard()
				return nil, fmt.Errorf("%s: %w", plan.describe(), err)
			}
		}
		set.list = append(set.list, rs)
		set.plans = append(set.plans, plan)
		set.routers = append(set.routers, lr)
		set.fresh = append(set.fresh, fresh)
	}
	return set, nil
}

// loadPositions returns the saved positions, overlaid with those of the
// running sources (a journal whose selection changed resumes where the old
// reader was).
func (d *Daemon) loadPositions(ctx context.Context, running []*runningSource) map[string]string {
	positions, err := d.store.Positions(ctx)
	if err != nil {
		d.storeErr.note(err)
		d.log.Warn("store: cannot load saved positions; starting at the end of each log", "err", err)
		positions = map[string]string{}
	}
	for k, v := range positionsOf(running) {
		positions[k] = v
	}
	return positions
}

// switchSources makes set the running sources: kept ones get their new
// routers, new ones start, those no longer wanted stop (their positions
// saved). pipe becomes the pipeline in force.
func (d *Daemon) switchSources(ctx context.Context, set *sourceSet, pipe *Pipeline) {
	maxFind := int64(pipe.maxFindTime())
	keep := map[*runningSource]bool{}
	for i, rs := range set.list {
		rs.router.Store(set.routers[i])
		rs.maxFind.Store(maxFind)
		jails := rs.plan.jails
		if !set.fresh[i] {
			jails = set.plans[i].jails
		}
		rs.jails.Store(&jails)
		keep[rs] = true
	}
	d.mu.Lock()
	old := d.sources
	d.pipe, d.sources = pipe, set.list
	d.mu.Unlock()
	var gone []*runningSource
	for _, rs := range old {
		if !keep[rs] {
			rs.halt()
			gone = append(gone, rs)
			d.log.Info("no longer reading", "source", rs.plan.describe())
		}
	}
	for i, rs := range set.list {
		if !set.fresh[i] {
			continue
		}
		if rs.handover {
			prepared, err := d.prepareSource(rs.plan, nil)
			if err != nil {
				msg := "could not take over the listen addresses: " + err.Error()
				rs.stopped.Store(&msg)
				d.log.Error("source not started", "source", rs.plan.describe(), "err", err)
				continue
			}
			rs.src, rs.stats, rs.syslog = prepared.src, prepared.stats, prepared.syslog
		}
		d.start(ctx, rs)
	}
	d.saveSourcePositions(ctx, gone)
}

// handsOver reports whether plan is a syslog listener that needs an address
// a running one holds.
func handsOver(running []*runningSource, plan *sourcePlan) bool {
	if plan.key != "syslog" {
		return false
	}
	for _, rs := range running {
		if rs.plan.key == "syslog" && rs.alive() && ((plan.udp != "" && plan.udp == rs.plan.udp) || (plan.tcp != "" && plan.tcp == rs.plan.tcp)) {
			return true
		}
	}
	return false
}
