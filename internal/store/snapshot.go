package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SaveSnapshot replaces the saved engine snapshot and saves the sources'
// positions taken with it, in one transaction: the positions never fall
// behind what the snapshot has counted, so no line is counted twice after
// a restart.
func (s *Store) SaveSnapshot(ctx context.Context, data []byte, positions map[string]string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO engine_snapshot (id, saved_ns, data) VALUES (1, ?, ?)
			ON CONFLICT (id) DO UPDATE SET saved_ns = excluded.saved_ns, data = excluded.data`, toNS(at), data); err != nil {
			return err
		}
		return savePositions(ctx, tx, positions)
	})
	if err != nil {
		return fmt.Errorf("save engine snapshot: %w", err)
	}
	return nil
}

// Snapshot returns the saved engine snapshot and when it was saved; ok is
// false when there is none.
func (s *Store) Snapshot(ctx context.Context) (data []byte, saved time.Time, ok bool, err error) {
	var ns int64
	err = s.r.QueryRowContext(ctx, `SELECT saved_ns, data FROM engine_snapshot WHERE id = 1`).Scan(&ns, &data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, time.Time{}, false, nil
	case err != nil:
		return nil, time.Time{}, false, fmt.Errorf("read engine snapshot: %w", classify(err))
	}
	return data, fromNS(ns), true, nil
}
