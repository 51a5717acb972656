package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/store"
)

// Enforcer applies decisions to the firewall. Implementations live in
// package firewall; the semantics of each method are documented there.
type Enforcer interface {
	Apply(ctx context.Context, ds []event.Decision) error
	Revoke(ctx context.Context, targets []netip.Prefix) error
	Active(ctx context.Context) ([]event.Decision, error)
	SetAllow(ctx context.Context, allow []netip.Prefix) error
	Close() error
}

// applier enforces and persists decisions in batches: whatever has queued
// up while the previous batch was handled goes in the next, so one busy
// second costs one netlink batch and one transaction, not one per ban.
//
// The kernel comes first and the store second, so a ban is in force before
// the store's transaction and its fsync begin: its own write to disk (a few
// ms, hundreds on a busy disk) never delays a ban. One goroutine does both,
// though, so a slow write of one batch holds up the next batch. Nothing is
// lost if the daemon dies between the two: at start-up, bans the kernel
// holds and the store does not are adopted (see Daemon.restore), and a
// decision the kernel refused is still recorded, so it is re-applied then.
// A ban is counted and logged as applied only once both are done.
type applier struct {
	store *store.Store
	enf   Enforcer
	log   *slog.Logger
	now   func() time.Time
	quiet bool // the enforcer logs each decision itself (dry run)

	mu      sync.Mutex
	pending []event.Decision
	good    []event.Event    // successful logins to remember
	retry   []event.Decision // applied but not yet persisted (the store failed); flush only

	wake    chan struct{}
	applied atomic.Uint64
	failed  atomic.Uint64
}

func newApplier(st *store.Store, enf Enforcer, log *slog.Logger) *applier {
	return &applier{store: st, enf: enf, log: log, now: time.Now, wake: make(chan struct{}, 1)}
}

// submit queues decisions; it never blocks on I/O.
func (a *applier) submit(ds []event.Decision) {
	if len(ds) == 0 {
		return
	}
	a.mu.Lock()
	a.pending = append(a.pending, ds...)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// knownGood queues a successful login to be remembered in the store.
func (a *applier) knownGood(ev event.Event) {
	a.mu.Lock()
	if len(a.good) < 10_000 {
		a.good = append(a.good, ev)
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run writes queued decisions until ctx ends, then flushes what is left.
func (a *applier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			a.flush(context.WithoutCancel(ctx))
			return
		case <-a.wake:
			a.flush(ctx)
		}
	}
}

// flush persists and applies what is queued. Store writes are not cut short
// by shutdown (ctx is only used for its values): a decision the firewall
// applies is always recorded, or kept to be recorded at the next flush.
func (a *applier) flush(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	a.mu.Lock()
	batch, good := a.pending, a.good
	a.pending, a.good = nil, nil
	a.mu.Unlock()
	var live []event.Decision
	var applyErr error
	if len(batch) > 0 {
		if live = a.live(batch); len(live) > 0 {
			applyErr = a.enf.Apply(ctx, live)
		}
	}
	a.persist(ctx, batch, good)
	if len(live) == 0 {
		return
	}
	if applyErr != nil {
		a.failed.Add(uint64(len(live)))
		a.log.Error("firewall: applying decisions failed", "err", applyErr, "count", len(live))
		return
	}
	a.applied.Add(uint64(len(live)))
	if a.quiet {
		return
	}
	for _, d := range live {
		a.log.Info("ban", "addr", Target(d.Target), "jail", d.Jail, "scenario", d.Scenario,
			"duration_s", int64(d.Duration/time.Second), "reason", d.Reason)
	}
}

// live returns the decisions of batch still to enforce, each with what is
// left of it: a decision taken on a delayed log line must not outlive its
// intended end in the kernel.
func (a *applier) live(batch []event.Decision) []event.Decision {
	now := a.now()
	live := make([]event.Decision, 0, len(batch))
	for _, d := range batch {
		if d.Duration > 0 {
			left := d.End().Sub(now)
			if left <= 0 {
				continue
			}
			if left < d.Duration {
				d.Start, d.Duration = now, left
			}
		}
		live = append(live, d)
	}
	return live
}

// persist records the batch's decisions as taken (with their own start and
// duration) and the known-good clients.
func (a *applier) persist(ctx context.Context, batch []event.Decision, good []event.Event) {
	if a.store == nil {
		return
	}
	if len(a.retry) > 0 {
		if _, err := a.store.RecordDecisions(ctx, a.retry); err == nil {
			a.log.Info("store: recorded decisions held back by an earlier failure", "count", len(a.retry))
			a.retry = nil
		}
	}
	if len(batch) > 0 {
		if _, err := a.store.RecordDecisions(ctx, batch); err != nil {
			a.log.Error("store: recording decisions failed; retrying at the next flush", "err", err, "count", len(batch))
			if len(a.retry) < 100_000 {
				a.retry = append(a.retry, batch...)
			}
		}
	}
	for _, ev := range good {
		if err := a.store.AddKnownGood(ctx, ev.Addr, ev.User, ev.Time); err != nil {
			a.log.Warn("store: remembering a known-good client failed", "err", err)
			break
		}
	}
}
