package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/store"
)

// applyFunc is an Enforcer whose Apply is f; the other methods do nothing.
type applyFunc func(ctx context.Context, ds []event.Decision) error

func (f applyFunc) Apply(ctx context.Context, ds []event.Decision) error { return f(ctx, ds) }
func (applyFunc) Revoke(context.Context, []netip.Prefix) error           { return nil }
func (applyFunc) Active(context.Context) ([]event.Decision, error)       { return nil, nil }
func (applyFunc) SetAllow(context.Context, []netip.Prefix) error         { return nil }
func (applyFunc) Close() error                                           { return nil }

var _ Enforcer = applyFunc(nil)

// memoryStore opens a store in memory, closed when the test ends.
func memoryStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Memory)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestApplierKernelFirst checks the applier's order: a ban reaches the
// enforcer before the store's transaction, and is recorded even when the
// enforcer refuses it (so a restart re-applies it).
func TestApplierKernelFirst(t *testing.T) {
	ctx := context.Background()
	st := memoryStore(t)
	now := time.Now()
	ban := func(ip string) event.Decision {
		return event.Decision{Target: event.AddrPrefix(netip.MustParseAddr(ip)), Action: event.Ban,
			Start: now, Duration: time.Hour, Scenario: "ip-failures", Jail: "sshd"}
	}
	recorded := func() int {
		t.Helper()
		ds, err := st.ActiveDecisions(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return len(ds)
	}

	var refuse bool
	var inStoreAtApply []int
	enf := applyFunc(func(_ context.Context, ds []event.Decision) error {
		inStoreAtApply = append(inStoreAtApply, recorded())
		if refuse {
			return errors.New("refused")
		}
		return nil
	})
	a := newApplier(st, enf, slog.New(slog.DiscardHandler))

	a.submit([]event.Decision{ban("192.0.2.1")})
	a.flush(ctx)
	if len(inStoreAtApply) != 1 || inStoreAtApply[0] != 0 {
		t.Fatalf("decisions in the store when Apply ran: %v, want [0] (kernel first)", inStoreAtApply)
	}
	if n := recorded(); n != 1 || a.applied.Load() != 1 {
		t.Fatalf("after flush: %d recorded, %d applied; want 1 and 1", n, a.applied.Load())
	}

	refuse = true
	a.submit([]event.Decision{ban("192.0.2.2")})
	a.flush(ctx)
	if n := recorded(); n != 2 || a.failed.Load() != 1 || a.applied.Load() != 1 {
		t.Fatalf("refused ban: %d recorded, %d failed, %d applied; want 2, 1, 1", n, a.failed.Load(), a.applied.Load())
	}
}

// TestApplierKernelStageDoesNotWaitForStore holds the store stage (as a
// long transaction would) and checks that a new ban still reaches the
// enforcer, and is counted once the store stage is free again.
func TestApplierKernelStageDoesNotWaitForStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st := memoryStore(t)
	applied := make(chan netip.Prefix, 1)
	a := newApplier(st, applyFunc(func(_ context.Context, ds []event.Decision) error {
		applied <- ds[0].Target
		return nil
	}), slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { defer close(done); a.run(ctx) }()
	defer func() { cancel(); <-done }()

	a.smu.Lock() // the store stage is busy
	target := event.AddrPrefix(netip.MustParseAddr("192.0.2.3"))
	a.submit([]event.Decision{{Target: target, Action: event.Ban, Start: time.Now(), Duration: time.Hour}})
	select {
	case got := <-applied:
		if got != target {
			t.Fatalf("applied %v, want %v", got, target)
		}
	case <-time.After(5 * time.Second):
		a.smu.Unlock()
		t.Fatal("the kernel stage waited for the store stage")
	}
	if n := a.applied.Load(); n != 0 {
		t.Fatalf("counted %d applied before the store recorded it", n)
	}
	a.smu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for a.applied.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the ban was never counted after the store stage was free")
		}
		time.Sleep(time.Millisecond)
	}
	ds, err := st.ActiveDecisions(context.Background(), time.Now())
	if err != nil || len(ds) != 1 {
		t.Fatalf("recorded %v, %v; want the one ban", ds, err)
	}
}

// TestApplierThrottlesSources: while the store stage is held and more
// decisions wait than the backlog allows, a log source's throttle waits;
// it returns once the store has caught up, and when its context ends.
func TestApplierThrottlesSources(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st := memoryStore(t)
	a := newApplier(st, applyFunc(func(context.Context, []event.Decision) error { return nil }), slog.New(slog.DiscardHandler))
	a.maxBacklog = 10
	done := make(chan struct{})
	go func() { defer close(done); a.run(ctx) }()
	defer func() { cancel(); <-done }()

	a.throttle(ctx) // nothing waits: returns at once
	a.smu.Lock()    // the store stage is busy
	now := time.Now()
	var ds []event.Decision
	for i := range 20 {
		ds = append(ds, event.Decision{Target: event.AddrPrefix(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})), Action: event.Ban,
			Start: now, Duration: time.Hour, Scenario: "ip-failures"})
	}
	a.submit(ds)
	if n := a.backlog.Load(); n != 20 {
		t.Fatalf("backlog %d, want 20", n)
	}
	// A source whose context ends stops waiting.
	sctx, scancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { a.throttle(sctx); close(stopped) }()
	scancel()
	<-stopped

	released := make(chan struct{})
	go func() { a.throttle(ctx); close(released) }()
	select {
	case <-released:
		t.Fatal("throttle returned with 20 decisions waiting for a held store (at most 10 allowed)")
	case <-time.After(100 * time.Millisecond):
	}
	a.smu.Unlock()
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("throttle still waits after the store stage was freed")
	}
	if n := a.backlog.Load(); n != 0 {
		t.Fatalf("backlog %d after the store caught up, want 0", n)
	}
	if got, _ := st.ActiveDecisions(ctx, time.Now()); len(got) != 20 {
		t.Fatalf("recorded %d, want 20", len(got))
	}
}

// TestApplierSpacesStoreTransactions: the store stage records a lone
// decision at once, waits storeGap before its next transaction (what
// arrives meanwhile waits for it, already enforced), and records what
// waits when it stops.
func TestApplierSpacesStoreTransactions(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st := memoryStore(t)
	enforced := make(chan struct{}, 10)
	a := newApplier(st, applyFunc(func(context.Context, []event.Decision) error {
		enforced <- struct{}{}
		return nil
	}), slog.New(slog.DiscardHandler))
	a.storeGap = 3 * time.Second // long against a loaded machine's delays
	done := make(chan struct{})
	go func() { defer close(done); a.run(ctx) }()
	ban := func(ip string) []event.Decision {
		return []event.Decision{{Target: event.AddrPrefix(netip.MustParseAddr(ip)), Action: event.Ban, Start: time.Now(), Duration: time.Hour}}
	}
	waitApplied := func(n uint64, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for a.applied.Load() < n {
			if time.Since(start) > within {
				t.Fatalf("%d recorded after %v, want %d", a.applied.Load(), within, n)
			}
			time.Sleep(time.Millisecond)
		}
		return time.Since(start)
	}

	a.submit(ban("192.0.2.1"))
	waitApplied(1, a.storeGap/2) // at once: no transaction before it
	a.submit(ban("192.0.2.2"))
	<-enforced
	<-enforced // the kernel stage does not wait
	time.Sleep(200 * time.Millisecond)
	if n := a.applied.Load(); n != 1 {
		t.Fatalf("%d recorded within 200ms of the first transaction, want 1 (the next waits for the gap)", n)
	}
	if took := waitApplied(2, 10*time.Second); took < a.storeGap/3 {
		t.Errorf("the second transaction came %v after the first's end; the gap is %v", took, a.storeGap)
	}

	a.submit(ban("192.0.2.3")) // waits for the gap: stopping records it
	<-enforced
	cancel()
	<-done
	ds, err := st.ActiveDecisions(context.Background(), time.Now())
	if err != nil || len(ds) != 3 {
		t.Fatalf("recorded %d decisions (%v) after stopping, want 3", len(ds), err)
	}
}

// TestApplierSpacesKernelBatches: the kernel stage applies a lone decision
// at once, then waits kernelGap before its next batch: what is submitted
// meanwhile goes to the firewall together, and what waits when the applier
// stops is applied then.
func TestApplierSpacesKernelBatches(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st := memoryStore(t)
	batches := make(chan int, 10)
	a := newApplier(st, applyFunc(func(_ context.Context, ds []event.Decision) error {
		batches <- len(ds)
		return nil
	}), slog.New(slog.DiscardHandler))
	a.kernelGap = 3 * time.Second // long against a loaded machine's delays
	done := make(chan struct{})
	go func() { defer close(done); a.run(ctx) }()
	ban := func(i int) []event.Decision {
		return []event.Decision{{Target: event.AddrPrefix(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})), Action: event.Ban, Start: time.Now(), Duration: time.Hour}}
	}
	next := func(within time.Duration) int {
		t.Helper()
		select {
		case n := <-batches:
			return n
		case <-time.After(within):
			t.Fatalf("no batch applied within %v", within)
			return 0
		}
	}

	a.submit(ban(1))
	if n := next(a.kernelGap / 2); n != 1 { // at once: no batch before it
		t.Fatalf("first batch of %d, want 1", n)
	}
	start := time.Now()
	for i := 2; i <= 4; i++ {
		a.submit(ban(i))
	}
	select {
	case n := <-batches:
		t.Fatalf("a batch of %d within 200ms of the first, want none before the gap", n)
	case <-time.After(200 * time.Millisecond):
	}
	if n := next(10 * time.Second); n != 3 {
		t.Fatalf("second batch of %d, want the 3 submitted during the gap", n)
	}
	if took := time.Since(start); took < a.kernelGap/3 {
		t.Errorf("the second batch came %v after the first; the gap is %v", took, a.kernelGap)
	}

	a.submit(ban(5)) // waits for the gap: stopping applies it
	cancel()
	<-done
	if n := next(time.Second); n != 1 {
		t.Fatalf("batch of %d applied at stop, want 1", n)
	}
	if got := a.applied.Load(); got != 5 {
		t.Fatalf("%d applied, want 5", got)
	}
}
