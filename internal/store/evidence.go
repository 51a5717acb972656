package store

// What the trap's quarantined messages carried (migration 0006): each
// message's extraction, and the indicators counted across messages.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Indicator is one fact a message carried: a URL, a domain, a sender's or
// a recipient's address, an attachment's hash, the client, its HELO.
type Indicator struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// IndicatorCount is an indicator with how many messages carried it and
// when the first and the last of them arrived.
type IndicatorCount struct {
	Indicator
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Messages  int       `json:"messages"`
}

// SaveExtraction records what quarantined message id carried: the
// extractor's result (JSON) and its indicators, each counted once for the
// message, their first and last sightings moved to received (the
// message's arrival). A message already recorded is left as it is:
// saving twice (a restart between reading and saving) counts nothing
// twice. It returns whether the message was new, and an error wrapping
// ErrNotFound when the message is no longer in quarantine.
func (s *Store) SaveExtraction(ctx context.Context, id int64, received, at time.Time, result []byte, inds []Indicator) (bool, error) {
	fresh := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM quarantine WHERE id = ?`, id).Scan(&exists); err != nil {
			return err
		}
		if exists == 0 {
			return ErrNotFound
		}
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO extracted (message_id, extracted_ns, result) VALUES (?, ?, ?)`,
			id, toNS(at), string(result))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		fresh = true
		rcv := toNS(received)
		for _, ind := range inds {
			var iid int64
			err := tx.QueryRowContext(ctx, `INSERT INTO indicators (kind, value, first_seen_ns, last_seen_ns, messages)
				VALUES (?, ?, ?, ?, 1)
				ON CONFLICT (kind, value) DO UPDATE SET
					first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
					last_seen_ns = max(last_seen_ns, excluded.last_seen_ns),
					messages = messages + 1
				RETURNING id`, ind.Kind, ind.Value, rcv, rcv).Scan(&iid)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO message_indicators (message_id, indicator_id) VALUES (?, ?)`, id, iid); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("save extraction of message %d: %w", id, err)
	}
	return fresh, nil
}

// Unextracted returns up to limit quarantined messages not read yet,
// oldest first, with their raw text.
func (s *Store) Unextracted(ctx context.Context, limit int) ([]Quarantined, error) {
	out, err := queryAll(ctx, s.r, func(row scanner) (Quarantined, error) {
		var raw []byte
		m, err := scanQuarantined(row, &raw)
		m.Raw = raw
		return m, err
	}, `SELECT `+quarantineCols+`, raw FROM quarantine
		WHERE id NOT IN (SELECT message_id FROM extracted) ORDER BY id LIMIT ?`, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("list unextracted messages: %w", err)
	}
	return out, nil
}

// Extraction returns what message id carried, as saved (JSON), and when
// it was read; an error wrapping ErrNotFound when it was not read (or is
// gone).
func (s *Store) Extraction(ctx context.Context, id int64) ([]byte, time.Time, error) {
	var result string
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT result, extracted_ns FROM extracted WHERE message_id = ?`, id).Scan(&result, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, time.Time{}, fmt.Errorf("extraction of message %d: %w", id, ErrNotFound)
	case err != nil:
		return nil, time.Time{}, fmt.Errorf("extraction of message %d: %w", id, classify(err))
	}
	return []byte(result), fromNS(at), nil
}

// IndicatorFilter selects indicators. Zero fields select everything.
type IndicatorFilter struct {
	Kinds   []string
	Since   time.Time // last seen at or after
	Message int64     // carried by this quarantined message
	Limit   int       // 0: all
}

// Indicators returns the indicators f selects, the most widespread first
// (most messages, then most recently seen).
func (s *Store) Indicators(ctx context.Context, f IndicatorFilter) ([]IndicatorCount, error) {
	q := `SELECT kind, value, first_seen_ns, last_seen_ns, messages FROM indicators WHERE last_seen_ns >= ?`
	args := []any{toNS(f.Since)}
	q, args = andIn(q, args, "kind", f.Kinds)
	if f.Message != 0 {
		q += ` AND id IN (SELECT indicator_id FROM message_indicators WHERE message_id = ?)`
		args = append(args, f.Message)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1
	}
	q += ` ORDER BY messages DESC, last_seen_ns DESC, kind, value LIMIT ?`
	out, err := s.indicatorCounts(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list indicators: %w", err)
	}
	return out, nil
}

// indicatorCounts runs q, which selects kind, value, first and last seen
// and messages.
func (s *Store) indicatorCounts(ctx context.Context, q string, args ...any) ([]IndicatorCount, error) {
	return queryAll(ctx, s.r, func(row scanner) (IndicatorCount, error) {
		var c IndicatorCount
		var first, last int64
		err := row.Scan(&c.Kind, &c.Value, &first, &last, &c.Messages)
		c.FirstSeen, c.LastSeen = fromNS(first), fromNS(last)
		return c, err
	}, q, args...)
}

// PruneIndicators removes the indicators last seen before before and
// returns how many.
func (s *Store) PruneIndicators(ctx context.Context, before time.Time) (int, error) {
	n, err := s.deleteRows(ctx, `DELETE FROM indicators WHERE last_seen_ns < ?`, toNS(before))
	if err != nil {
		return 0, fmt.Errorf("prune indicators: %w", err)
	}
	return n, nil
}

// IndicatorsReceived counts, for each indicator of kinds (every kind when
// empty) carried by the quarantined messages received in [since, until)
// (zero bounds are open), the messages that carried it, with the first
// and the last of their arrivals; the most widespread first. Unlike
// Indicators' counts, these add up across stores: a report of several
// stores sums them.
func (s *Store) IndicatorsReceived(ctx context.Context, since, until time.Time, kinds []string) ([]IndicatorCount, error) {
	q := `SELECT i.kind, i.value, min(q.received_ns), max(q.received_ns), count(*)
		FROM message_indicators mi JOIN indicators i ON i.id = mi.indicator_id JOIN quarantine q ON q.id = mi.message_id
		WHERE q.received_ns >= ?`
	args := []any{toNS(since)}
	if !until.IsZero() {
		q += ` AND q.received_ns < ?`
		args = append(args, toNS(until))
	}
	q, args = andIn(q, args, "i.kind", kinds)
	q += ` GROUP BY i.id ORDER BY count(*) DESC, i.kind, i.value`
	out, err := s.indicatorCounts(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("count indicators received: %w", err)
	}
	return out, nil
}
