package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/insight"
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

// applier enforces and persists decisions in two stages, each in batches:
// whatever has queued up while a stage was busy or waiting goes in its next
// batch. A stage acts at once on what comes after a quiet spell, and under a
// flood spaces its batches (kernelGap, storeGap), so a busy second costs at
// most a thousand netlink batches and four transactions, not one of each
// per ban.
//
// The kernel stage comes first: a ban is in force before its store write
// begins. The store stage runs on a goroutine of its own, so a slow
// transaction and fsync (a few ms, hundreds on a busy disk) delays neither
// this ban nor the next: the kernel stage never waits for the store. Nothing
// is lost if the daemon dies between the stages: at start-up, bans the
// kernel holds and the store does not are adopted (see Daemon.restore), and
// a decision the kernel refused is still recorded, so it is re-applied then.
// A ban is counted and logged as applied only once both stages are done.
type applier struct {
	store *store.Store
	enf   Enforcer
	log   *slog.Logger
	now   func() time.Time
	quiet bool // the enforcer logs each decision itself (dry run)

	mu      sync.Mutex
	pending []event.Decision // for the kernel stage
	good    []event.Event    // successful logins and accepted mail to remember
	wake    chan struct{}

	qmu   sync.Mutex
	queue []enforced    // for the store stage
	qgood []event.Event // known-good clients and relays for the store stage
	swake chan struct{}

	kernelGap time.Duration    // the least time between the starts of two kernel batches
	storeGap  time.Duration    // the least time between the starts of two store transactions
	smu       sync.Mutex       // held by the store stage while it writes
	retry     []event.Decision // applied but not yet recorded (the store failed); under smu

	applied atomic.Uint64
	failed  atomic.Uint64

	// backlog counts the decisions submitted and not yet through the
	// store stage; log sources wait (throttle) while it is over
	// maxBacklog, so a flood the store cannot keep up with is held in the
	// logs on disk, not in memory. drained is closed after each store pass.
	backlog    atomic.Int64
	maxBacklog int64
	dmu        sync.Mutex
	drained    chan struct{}

	storeErr, enfErr *lastError // outcomes of the latest writes, for health; nil: not kept

	// convert turns the bans the trap takes over into traps (see
	// trapper.convert); nil converts nothing.
	convert func(event.Decision) event.Decision

	// carver is enf when it can carve; nil otherwise.
	carver Carver
	carves carves

	// count counts the bans submitted (insight); nil: not counted (while
	// restoring, bans counted when first decided).
	count *insight.Counter

	// share hands the decisions submitted to the fleet (fleetLink.share);
	// nil: not shared (while restoring).
	share func([]event.Decision)

	// onApplied is told of the decisions applied, after both stages (the
	// reporters and actions); nil while restoring. It must not block.
	onApplied func([]event.Decision)

	// positions returns the sources' positions; nil: none. Each batch of
	// decisions is recorded with the positions read just before it was
	// taken, in one transaction (see enforce).
	positions func() map[string]string
}

// enforced is a batch the kernel stage has handled.
type enforced struct {
	batch []event.Decision  // as decided: what the store records
	live  []event.Decision  // what was sent to the kernel
	err   error             // the kernel's answer
	pos   map[string]string // the sources' positions, all of whose lines' decisions are in this batch or earlier ones
}

func newApplier(st *store.Store, enf Enforcer, log *slog.Logger) *applier {
	a := &applier{store: st, enf: enf, log: log, now: time.Now, kernelGap: defaultKernelGap, storeGap: defaultStoreGap,
		wake: make(chan struct{}, 1), swake: make(chan struct{}, 1), maxBacklog: defaultMaxBacklog}
	a.carver, _ = enf.(Carver)
	return a
}

// submit queues decisions; it never blocks on I/O. A carve-out (an Allow
// decision: the engine found a client good) goes to goodClient, not to the
// bans: it is not recorded as a decision either, as the store keeps the
// good clients themselves (see knownGood).
func (a *applier) submit(ds []event.Decision) {
	if len(ds) == 0 {
		return
	}
	if a.share != nil {
		a.share(ds)
	}
	a.mu.Lock()
	for _, d := range ds {
		if a.convert != nil {
			d = a.convert(d)
		}
		if d.Action == event.Ban || d.Action == event.Trap {
			a.pending = append(a.pending, d)
			a.backlog.Add(1)
		}
	}
	a.mu.Unlock()
	if a.count != nil {
		a.count.Decided(ds)
	}
	for _, d := range ds {
		if d.Action == event.Allow && d.Target.IsSingleIP() {
			a.goodClient(d.Target.Addr(), d.End())
		}
	}
	signal(a.wake)
}

// knownGood queues a successful login (event.AuthSuccess) or accepted mail
// (event.MailAccepted) to be remembered in the store. Its carve-out comes
// from the engine, as an Allow decision (see submit).
func (a *applier) knownGood(ev event.Event) {
	a.mu.Lock()
	if len(a.good) < 10_000 {
		a.good = append(a.good, ev)
	}
	a.mu.Unlock()
	signal(a.wake)
}

// goodClient carves addr out of prefix bans until until: the one way in for
// every kind of good client (logins, delivering relays). It never blocks on
// I/O, and writes to the kernel only when the kernel's entry needs it (see
// carves).
func (a *applier) goodClient(addr netip.Addr, until time.Time) {
	if a.carver != nil && a.carves.good(addr, until, a.now()) {
		signal(a.wake)
	}
}

// sweepCarves queues the carve-out refreshes that are due.
func (a *applier) sweepCarves() {
	if a.carver != nil && a.carves.sweep(a.now()) {
		signal(a.wake)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run runs both stages until ctx ends, then flushes what is left.
func (a *applier) run(ctx context.Context) {
	stored := make(chan struct{})
	go func() {
		defer close(stored)
		spaced(ctx, a.swake, a.storeGap, func() { a.record(ctx) })
	}()
	spaced(ctx, a.wake, a.kernelGap, func() { a.enforce(ctx) })
	<-stored
	a.flush(ctx)
}

// spaced calls do when woken, until ctx ends, the starts of two calls at
// least gap apart: what comes while do runs or waits for the gap is for the
// next call. A wake after a quiet spell calls do at once.
func spaced(ctx context.Context, wake <-chan struct{}, gap time.Duration, do func()) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(gap)
		do()
	}
}

// flush runs both stages on what is queued and returns when every decision
// submitted before the call is applied and recorded (or has failed).
func (a *applier) flush(ctx context.Context) {
	a.enforce(ctx)
	a.record(ctx)
}

// detached returns a context for firewall and store writes: they are not
// cut short by shutdown (ctx is only used for its values), so a decision
// the firewall applies is always recorded, or kept to be recorded later.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// enforce is the kernel stage: it applies what is pending and hands the
// batch to the store stage.
func (a *applier) enforce(ctx context.Context) {
	ctx, cancel := detached(ctx)
	defer cancel()
	// The positions first: a source moves its position past a line only
	// after the line's decisions were submitted, so every line before these
	// positions has its decisions in the batch taken below, or in an
	// earlier one. Saved with the batch, they never skip a decision's
	// lines; at worst a few lines after them are read again after a crash.
	var pos map[string]string
	if a.positions != nil {
		pos = a.positions()
	}
	a.mu.Lock()
	batch, good := a.pending, a.good
	a.pending, a.good = nil, nil
	a.mu.Unlock()
	// Carve-outs before bans: a good client inside a network banned in
	// this batch never loses a packet.
	if cs := a.carves.take(); len(cs) > 0 {
		if err := a.carver.Carve(ctx, cs); err != nil {
			a.carves.failed(cs)
			a.log.Error("firewall: carving out good clients failed", "err", err, "count", len(cs))
		}
	}
	if len(batch) == 0 && len(good) == 0 {
		return
	}
	e := enforced{batch: batch, pos: pos}
	if len(batch) > 0 {
		if e.live = a.live(batch); len(e.live) > 0 {
			e.err = a.enf.Apply(ctx, e.live)
		}
	}
	a.qmu.Lock()
	if len(batch) > 0 {
		a.queue = append(a.queue, e)
	}
	a.qgood = append(a.qgood, good...)
	a.qmu.Unlock()
	signal(a.swake)
}

// record is the store stage: it records every batch the kernel stage has
// handled, in one transaction, then counts and logs them. Calls are
// serialized, so one that finds the queue empty returns only after a
// concurrent call has recorded what it took.
func (a *applier) record(ctx context.Context) {
	ctx, cancel := detached(ctx)
	defer cancel()
	a.smu.Lock()
	defer a.smu.Unlock()
	a.qmu.Lock()
	queue, good := a.queue, a.qgood
	a.queue, a.qgood = nil, nil
	a.qmu.Unlock()
	var batch []event.Decision
	var pos map[string]string
	for _, e := range queue {
		batch = append(batch, e.batch...)
		if e.pos != nil {
			pos = e.pos // the latest
		}
	}
	a.persist(ctx, batch, pos, good)
	for _, e := range queue {
		a.report(e)
	}
	a.backlog.Add(-int64(len(batch)))
	a.dmu.Lock()
	if a.drained != nil {
		close(a.drained)
		a.drained = nil
	}
	a.dmu.Unlock()
}

// defaultKernelGap spaces the kernel stage's batches under a flood. Woken
// for every decision the log sources submit, it took batches of a few
// decisions each: 16,000 of them for the 73,000 bans of bench/pipeline.sh's
// 1M-line log, and as many wake-ups of a goroutine. Spaced by a
// millisecond, about a thousand, for a quarter less of the daemon's CPU
// there (bench/RESULTS.md, issue 19). A ban that comes after a quiet spell is
// applied at once; one that comes right after another batch waits at most
// this long.
const defaultKernelGap = time.Millisecond

// defaultStoreGap spaces the store stage's transactions under a flood. A
// transaction writes every page its rows touch and syncs the log: the
// indexes by target take rows in no order, so in a small transaction each
// row dirties a page of its own (a 1M-line flood, back to back: 339
// transactions of some 200 decisions, 304,000 writes, 247-319 MB over
// runs). Spaced, a transaction takes what a quarter of a second brought,
// and its rows share pages (130-162 MB for the same flood). Only the
// record waits: decisions reach the kernel within a millisecond (see
// defaultKernelGap), a lone decision is stored at once, and the sources'
// positions are stored in the same transactions, so after a crash the
// lines of decisions not yet stored are read again.
const defaultStoreGap = 250 * time.Millisecond

// defaultMaxBacklog is how many decisions may wait for the kernel and the
// store before the log sources wait: some 20 MB, and a few seconds of the
// store's work.
const defaultMaxBacklog = 100_000

// throttle returns once the backlog is at most maxBacklog, or ctx is done.
// Log sources call it after each line: the lines wait in their files (or
// the socket's buffer) while the store catches up. The policy servers and
// the engine's ticks never wait.
func (a *applier) throttle(ctx context.Context) {
	for a.backlog.Load() > a.maxBacklog {
		a.dmu.Lock()
		if a.drained == nil {
			a.drained = make(chan struct{})
		}
		ch := a.drained
		a.dmu.Unlock()
		if a.backlog.Load() <= a.maxBacklog {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// report counts and logs a batch both stages are done with.
func (a *applier) report(e enforced) {
	if len(e.live) == 0 {
		return
	}
	a.enfErr.note(wrapErr("applying decisions", e.err))
	if e.err != nil {
		a.failed.Add(uint64(len(e.live)))
		a.log.Error("firewall: applying decisions failed", "err", e.err, "count", len(e.live))
		return
	}
	a.applied.Add(uint64(len(e.live)))
	if a.onApplied != nil {
		a.onApplied(e.live)
	}
	if a.quiet {
		return
	}
	for _, d := range e.live {
		a.log.Info(d.Action.String(), "addr", Target(d.Target), "jail", d.Jail, "scenario", d.Scenario,
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

// persist records the decisions as taken (with their own start and
// duration), with the sources' positions when there are decisions, and the
// good clients seen, in one transaction. The caller holds smu.
func (a *applier) persist(ctx context.Context, batch []event.Decision, pos map[string]string, good []event.Event) {
	if a.store == nil {
		return
	}
	if len(a.retry) > 0 {
		_, err := a.store.RecordDecisions(ctx, a.retry)
		a.storeErr.note(err)
		if err != nil {
			if len(batch) > 0 && len(a.retry) < 100_000 {
				a.retry = append(a.retry, batch...)
			}
			return
		}
		a.log.Info("store: recorded decisions held back by an earlier failure", "count", len(a.retry))
		a.retry = nil
	}
	if len(batch) == 0 && len(good) == 0 {
		return
	}
	seen := make([]store.Sighting, len(good))
	for i, ev := range good {
		seen[i] = store.Sighting{Addr: ev.Addr, User: ev.User, Relay: ev.Kind == event.MailAccepted, At: ev.Time}
	}
	_, err := a.store.RecordBatch(ctx, batch, pos, seen)
	a.storeErr.note(err)
	if err != nil {
		// Health reports it once (see health.go); this is per batch. The
		// good clients are not held back: the engine keeps them too.
		a.log.Debug("store: recording decisions failed; retrying", "err", err, "count", len(batch))
		if len(a.retry) < 100_000 {
			a.retry = append(a.retry, batch...)
		}
	}
}

// retryStore records the decisions an earlier store failure held back, if
// any: the daemon calls it periodically, so a store that recovers catches
// up without waiting for the next ban.
func (a *applier) retryStore(ctx context.Context) {
	ctx, cancel := detached(ctx)
	defer cancel()
	a.smu.Lock()
	defer a.smu.Unlock()
	if len(a.retry) > 0 {
		a.persist(ctx, nil, nil, nil)
	}
}
