package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// TestLockedByAnotherWriter plays a second process holding the write lock:
// two Stores on one file (SQLite locks the file the same way between two
// connections of one process as between two processes).
func TestLockedByAnotherWriter(t *testing.T) {
	ctx := context.Background()
	holder, path := openTemp(t)
	const short = 300 * time.Millisecond
	impatient, err := Open(ctx, path, WithBusyTimeout(short))
	if err != nil {
		t.Fatal(err)
	}
	defer impatient.Close()
	patient, err := Open(ctx, path) // default busy timeout
	if err != nil {
		t.Fatal(err)
	}
	defer patient.Close()

	// The "other process" takes the write lock and keeps it.
	tx, err := holder.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO meta (key, value) VALUES ('held', 'yes')`); err != nil {
		t.Fatal(err)
	}
	committed := false
	defer func() {
		if !committed {
			tx.Rollback()
		}
	}()

	// A write waits for the busy timeout, then fails with ErrLocked.
	start := time.Now()
	_, err = impatient.RecordDecision(ctx, ban("192.0.2.1/32", t0, time.Hour))
	waited := time.Since(start)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("write under a held lock = %v, want ErrLocked", err)
	}
	if waited < short/2 {
		t.Errorf("write failed after %v: it must wait for the busy timeout (%v)", waited, short)
	}
	t.Logf("failed after %v: %v", waited, err)

	// Reads are not blocked in WAL mode and see only committed data.
	if _, ok, err := impatient.Meta(ctx, "held"); err != nil || ok {
		t.Errorf("read under a held lock = %v, %v; want not found, no error", ok, err)
	}
	if _, err := impatient.ActiveDecisions(ctx, t0); err != nil {
		t.Errorf("ActiveDecisions under a held lock: %v", err)
	}
	// Opening an up-to-date database does not need the write lock.
	third, err := Open(ctx, path, WithBusyTimeout(short))
	if err != nil {
		t.Errorf("Open under a held lock: %v", err)
	} else {
		third.Close()
	}

	// A caller's context ends the wait before the busy timeout does.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	start = time.Now()
	err = patient.SetMeta(cctx, "k", "v")
	cancel()
	if err == nil {
		t.Fatal("write with an expiring context succeeded under a held lock")
	}
	if waited := time.Since(start); waited >= DefaultBusyTimeout {
		t.Errorf("cancelled write waited %v, the full busy timeout", waited)
	}
	t.Logf("cancelled: %v", err)

	// A lock released within the busy timeout is simply waited for.
	release := make(chan error, 1)
	timer := time.AfterFunc(200*time.Millisecond, func() { release <- tx.Commit() })
	defer timer.Stop()
	if err := patient.SetMeta(ctx, "after", "lock"); err != nil {
		t.Fatalf("write waiting for a released lock: %v", err)
	}
	if err := <-release; err != nil {
		t.Fatal(err)
	}
	committed = true
	for _, k := range []string{"held", "after"} {
		if _, ok, err := impatient.Meta(ctx, k); err != nil || !ok {
			t.Errorf("Meta(%s) = %v, %v", k, ok, err)
		}
	}
}

// TestReadersWhileWriting checks that reads proceed during batch writes and
// that each batch is seen whole or not at all.
func TestReadersWhileWriting(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	const batches, size = 20, 500
	all := manyDecisions(batches*size, t0)

	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 16)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range batches {
			if _, err := s.RecordDecisions(ctx, all[i*size:(i+1)*size]); err != nil {
				errs <- err
				return
			}
		}
	}()
	reads := make([]int, 4)
	for r := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				ds, err := s.ActiveDecisions(ctx, t0.Add(time.Minute))
				if err != nil {
					errs <- err
					return
				}
				if len(ds)%size != 0 || len(ds) < last {
					errs <- fmt.Errorf("reader %d saw %d active decisions after %d: a torn or lost batch", r, len(ds), last)
					return
				}
				last = len(ds)
				if _, err := s.History(ctx, HistoryFilter{Limit: 10}); err != nil {
					errs <- err
					return
				}
				if _, err := s.History(ctx, HistoryFilter{Target: all[0].Target}); err != nil {
					errs <- err
					return
				}
				reads[r]++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("reads per reader during the writes: %v", reads)
	if ds, _ := s.ActiveDecisions(ctx, t0.Add(time.Minute)); len(ds) != batches*size {
		t.Errorf("%d active, want %d", len(ds), batches*size)
	}
}

// TestConcurrentWriters checks that writers in one process queue on the
// single writer connection instead of failing with SQLITE_BUSY.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, WithBusyTimeout(0)) // contention would show at once
	const writers, each = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				a := netip.AddrFrom4([4]byte{192, 0, byte(w), byte(i)})
				var err error
				switch i % 3 {
				case 0:
					_, err = s.RecordDecision(ctx, event.Decision{Target: event.AddrPrefix(a), Action: event.Ban, Start: t0, Duration: time.Hour})
				case 1:
					err = s.AddKnownGood(ctx, a, "u", t0)
				case 2:
					err = s.SavePosition(ctx, fmt.Sprintf("src%d", w), fmt.Sprint(i))
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if hs, _ := s.History(ctx, HistoryFilter{}); len(hs) != writers*17 {
		t.Errorf("%d history entries, want %d", len(hs), writers*17)
	}
}
