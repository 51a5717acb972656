package daemon

import (
	"bytes"
	"context"
	"time"
)

// The engine's counting state survives restarts (see engine.Snapshot): it
// is saved with the sources' positions, in one store transaction, every
// stateEvery and at shutdown, and loaded at start-up before any source
// runs. A save under a flood costs more (the snapshot is bounded, but
// large): the next one then waits stateBackoff times as long as it took,
// so saving never takes more than a small share of the daemon's time.
const (
	stateEvery   = 15 * time.Second
	stateBackoff = 20
)

// stateSaver remembers when the next save is due, and how large the last
// snapshot was: the next one's buffer is sized from it, one allocation
// instead of a doubling series whose garbage under a flood is several
// times the snapshot.
type stateSaver struct {
	next time.Time
	size int
}

// saveState saves the engine's snapshot and the sources' positions now.
// The snapshot is taken before the positions are read: a line counted in
// the snapshot is always behind the saved position (a source moves past a
// line only once it was observed), so it is not read again; a line
// observed in between is not in the snapshot and not read again either,
// which loses its count, never doubles it.
func (d *Daemon) saveState(ctx context.Context, now time.Time) {
	start := time.Now()
	var b bytes.Buffer
	b.Grow(d.state.size + d.state.size/8)
	n, err := d.currentPipe().Engine.Snapshot(&b)
	d.state.size = b.Len()
	if err != nil {
		d.log.Error("engine snapshot failed", "err", err)
		return
	}
	d.mu.Lock()
	sources := d.sources
	d.mu.Unlock()
	err = d.store.SaveSnapshot(ctx, b.Bytes(), positionsOf(sources), now)
	d.storeErr.note(err)
	took := time.Since(start)
	d.state.next = now.Add(max(stateEvery, stateBackoff*took))
	if err != nil {
		d.log.Debug("store: saving the engine's state failed", "err", err)
		return
	}
	d.log.Debug("engine state saved", "entries", n, "bytes", b.Len(), "took_ms", took.Milliseconds())
}

// saveStateIfDue saves the state when its time has come, and the
// positions alone otherwise.
func (d *Daemon) saveStateIfDue(ctx context.Context, now time.Time) {
	if now.Before(d.state.next) {
		d.savePositions(ctx)
		return
	}
	d.saveState(ctx, now)
}

// loadState loads the saved snapshot into the engine of the pipeline that
// is about to start. A snapshot the engine cannot read is reported and
// left alone: the engine starts counting afresh, as it would have before
// snapshots existed.
func (d *Daemon) loadState(ctx context.Context) error {
	data, saved, ok, err := d.store.Snapshot(ctx)
	if err != nil {
		d.storeErr.note(err)
		d.log.Warn("store: cannot read the engine's saved state; counting afresh", "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	n, err := d.pipe.Engine.Load(bytes.NewReader(data))
	if err != nil {
		d.log.Warn("the engine's saved state cannot be used; counting afresh", "err", err, "saved", saved.UTC().Format(time.RFC3339))
		pipe, al, perr := newPipeline(ctx, d.cfg, d.opt.Registry, asnOf(d.geo.Load(), d.cfg), d.pipe.shields, d.log)
		if perr != nil {
			return perr
		}
		d.pipe, d.allow = pipe, al
		return nil
	}
	d.log.Info("engine state restored", "entries", n, "saved", saved.UTC().Format(time.RFC3339))
	return nil
}
