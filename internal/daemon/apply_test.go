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

// TestApplierKernelFirst checks the applier's order: a ban reaches the
// enforcer before the store's transaction, and is recorded even when the
// enforcer refuses it (so a restart re-applies it).
func TestApplierKernelFirst(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Memory)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
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
