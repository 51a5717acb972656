package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// snapshotPart is the largest part of a snapshot written as one row: SQLite
// copies a bound blob into memory of its own and keeps that memory for
// reuse, so a snapshot written whole would hold its size for good.
const snapshotPart = 256 << 10

// SaveSnapshot replaces the saved engine snapshot and saves the sources'
// positions taken with it, in one transaction: the positions never fall
// behind what the snapshot has counted, so no line is counted twice after
// a restart. The snapshot is written in parts of at most snapshotPart bytes.
func (s *Store) SaveSnapshot(ctx context.Context, data []byte, positions map[string]string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM engine_snapshot`); err != nil {
			return err
		}
		st, err := tx.PrepareContext(ctx, `INSERT INTO engine_snapshot (id, saved_ns, data) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for id := 1; id == 1 || len(data) > 0; id++ {
			part := data[:min(len(data), snapshotPart)]
			data = data[len(part):]
			if _, err := st.ExecContext(ctx, id, toNS(at), part); err != nil {
				return err
			}
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
	rows, err := s.r.QueryContext(ctx, `SELECT saved_ns, data FROM engine_snapshot ORDER BY id`)
	if err != nil {
		return nil, time.Time{}, false, fmt.Errorf("read engine snapshot: %w", classify(err))
	}
	defer rows.Close()
	var ns int64
	for rows.Next() {
		var part sql.RawBytes
		if err := rows.Scan(&ns, &part); err != nil {
			return nil, time.Time{}, false, fmt.Errorf("read engine snapshot: %w", classify(err))
		}
		data = append(data, part...)
		ok = true
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("read engine snapshot: %w", classify(err))
	}
	if !ok {
		return nil, time.Time{}, false, nil
	}
	return data, fromNS(ns), true, nil
}
