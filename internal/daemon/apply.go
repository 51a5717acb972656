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

// applier persists and enforces decisions in batches: whatever has queued
// up while the previous batch was written goes in the next, so one busy
// second costs one transaction and one netlink batch, not one per ban.
// A decision is persisted before it is applied, so a ban reported as
// applied is never lost.
type applier struct {
	store *store.Store
	enf   Enforcer
	log   *slog.Logger
	now   func() time.Time
	quiet bool // the enforcer logs each decision itself (dry run)

	mu      sync.Mutex
	pending []event.Decision
	good    []event.Event // successful logins to remember
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

func (a *applier) flush(ctx context.Context) {
	a.mu.Lock()
	batch, good := a.pending, a.good
	a.pending, a.good = nil, nil
	a.mu.Unlock()
	for _, ev := range good {
		if a.store == nil {
			break
		}
		if err := a.store.AddKnownGood(ctx, ev.Addr, ev.User, ev.Time); err != nil {
			a.log.Warn("store: remembering a known-good client failed", "err", err)
			break
		}
	}
	if len(batch) == 0 {
		return
	}
	if a.store != nil {
		if _, err := a.store.RecordDecisions(ctx, batch); err != nil {
			a.log.Error("store: recording decisions failed; applying them anyway", "err", err, "count", len(batch))
		}
	}
	// The kernel timeout is what is left of each ban: a decision taken on a
	// delayed log line must not outlive its intended end.
	now := a.now()
	live := batch[:0:0]
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
	if err := a.enf.Apply(ctx, live); err != nil {
		a.failed.Add(uint64(len(live)))
		a.log.Error("firewall: applying decisions failed", "err", err, "count", len(live))
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
