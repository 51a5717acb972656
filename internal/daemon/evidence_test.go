package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/evidence"
	"github.com/rampart-dev/rampart/internal/store"
)

// TestEvidencerReadsQuarantine: a quarantined message is read once, its
// indicators saved and counted, the reporters told; a message read
// before a restart is not read again.
func TestEvidencerReadsQuarantine(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	raw, err := os.ReadFile("../evidence/testdata/corpus/redirectors.eml")
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.Quarantine(ctx, store.Quarantined{QueueID: "4B2C61A3F2", Received: time.Now(), Client: netip.MustParseAddr("198.51.100.7"),
		Helo: "bulk.example", MailFrom: "x@bulk.example", RcptTo: []string{"v@victim.example"}, Size: int64(len(raw)), Raw: raw})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	e := newEvidencer(cfg, st, time.Hour, slog.New(slog.DiscardHandler))
	var told []int64
	e.found = func(_ context.Context, m store.Quarantined, r *evidence.Result, _ []store.Indicator) {
		told = append(told, m.ID)
		if len(r.URLs) == 0 {
			t.Errorf("message %d told without its links", m.ID)
		}
	}
	e.readNew(ctx)
	e.readNew(ctx)
	if !slices.Equal(told, []int64{id}) || e.messages.Load() != 1 {
		t.Fatalf("told %v, read %d; want the message once", told, e.messages.Load())
	}
	inds, err := st.Indicators(ctx, store.IndicatorFilter{Kinds: []string{"url"}, Message: id})
	if err != nil || len(inds) != 10 {
		t.Fatalf("url indicators = %d, %v; want 10", len(inds), err)
	}
	// A new evidencer (a restart) finds nothing new.
	e2 := newEvidencer(cfg, st, time.Hour, slog.New(slog.DiscardHandler))
	e2.found = func(context.Context, store.Quarantined, *evidence.Result, []store.Indicator) {
		t.Error("read again after a restart")
	}
	e2.readNew(ctx)
	// Off: nil, and nil-safe.
	cfg.Evidence.Enabled = false
	var off *evidencer = newEvidencer(cfg, st, 0, nil)
	off.prune(ctx, time.Now())
	if off.status() != nil {
		t.Error("status of an evidencer that is off")
	}
}
