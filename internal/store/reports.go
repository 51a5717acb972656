package store

// The abuse reports' queue and the abuse contacts cache (migration 0008).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Report states.
const (
	ReportReview   = "review"   // held until approved
	ReportPending  = "pending"  // to send at Next
	ReportSending  = "sending"  // being sent (left so by a crash: sent again at start)
	ReportSent     = "sent"     // done
	ReportFailed   = "failed"   // given up
	ReportRejected = "rejected" // refused in review
	ReportDryRun   = "dry-run"  // recorded, never sent
)

// Report is one report in the queue.
type Report struct {
	ID          int64     `json:"id"`
	Reporter    string    `json:"reporter"`
	Kind        string    `json:"kind"`
	Target      string    `json:"target"`
	State       string    `json:"state"`
	Subject     []byte    `json:"-"` // JSON, the reporter's
	Destination string    `json:"destination,omitempty"`
	Created     time.Time `json:"created"`
	Next        time.Time `json:"next,omitzero"`
	Sent        time.Time `json:"sent,omitzero"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	Receipt     string    `json:"receipt,omitempty"`
}

const reportCols = `id, reporter, kind, target, state, subject, destination, created_ns, next_ns, sent_ns, attempts, last_error, receipt`

func scanReport(sc scanner) (Report, error) {
	var r Report
	var subject string
	var created, next, sent int64
	err := sc.Scan(&r.ID, &r.Reporter, &r.Kind, &r.Target, &r.State, &subject, &r.Destination, &created, &next, &sent,
		&r.Attempts, &r.LastError, &r.Receipt)
	r.Subject, r.Created, r.Next, r.Sent = []byte(subject), fromNS(created), fromNS(next), fromNS(sent)
	return r, err
}

// EnqueueReport adds r unless its reporter has a report of the same
// target created within dedup before r.Created (in any state: one sent,
// one waiting, one refused in review); it returns the new report's ID, or
// 0 when it was a duplicate. The check and the insert are one
// transaction, so the same target is queued once whatever the races.
func (s *Store) EnqueueReport(ctx context.Context, r Report, dedup time.Duration) (int64, error) {
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM reports WHERE reporter = ? AND target = ? AND created_ns > ?`,
			r.Reporter, r.Target, toNS(r.Created.Add(-dedup))).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO reports (reporter, kind, target, state, subject, destination, created_ns, next_ns)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, r.Reporter, r.Kind, r.Target, r.State, string(r.Subject), r.Destination,
			toNS(r.Created), toNS(r.Next))
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("queue %s report of %q: %w", r.Reporter, r.Target, err)
	}
	return id, nil
}

// DueReports returns up to limit pending reports due at now, the earliest
// first.
func (s *Store) DueReports(ctx context.Context, now time.Time, limit int) ([]Report, error) {
	return s.queryReports(ctx, `SELECT `+reportCols+` FROM reports WHERE state = ? AND next_ns <= ? ORDER BY next_ns, id LIMIT ?`,
		ReportPending, toNS(now), max(limit, 1))
}

// NextReportDue returns when the earliest pending report is due; ok is
// false when none is pending.
func (s *Store) NextReportDue(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT min(next_ns) FROM reports WHERE state = ?`, ReportPending).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("next report due: %w", classify(err))
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return fromNS(next.Int64), true, nil
}

// UpdateReport saves a report's state, destination, next attempt,
// attempts, error and receipt, and the time it was sent.
func (s *Store) UpdateReport(ctx context.Context, r Report) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE reports SET state = ?, destination = ?, next_ns = ?, sent_ns = ?, attempts = ?,
			last_error = ?, receipt = ? WHERE id = ?`, r.State, r.Destination, toNS(r.Next), toNS(r.Sent), r.Attempts,
			r.LastError, r.Receipt, r.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("update report %d: %w", r.ID, err)
	}
	return nil
}

// ResumeReports puts the reports a crash left "sending" back to pending,
// due at now, and returns how many.
func (s *Store) ResumeReports(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE reports SET state = ?, next_ns = ? WHERE state = ?`, ReportPending, toNS(now), ReportSending)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("resume reports: %w", err)
	}
	return int(n), nil
}

// SentReports counts the reports a reporter sent to destination at or
// after since, and returns the earliest of them (zero when none).
func (s *Store) SentReports(ctx context.Context, reporter, destination string, since time.Time) (int, time.Time, error) {
	var n int
	var first sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT count(*), min(sent_ns) FROM reports
		WHERE reporter = ? AND destination = ? AND state = ? AND sent_ns >= ?`,
		reporter, destination, ReportSent, toNS(since)).Scan(&n, &first)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count sent reports: %w", classify(err))
	}
	if !first.Valid {
		return n, time.Time{}, nil
	}
	return n, fromNS(first.Int64), nil
}

// ReportFilter selects reports; zero fields select everything.
type ReportFilter struct {
	States   []string
	Reporter string
	Limit    int // 0: all
}

// Reports returns the reports f selects, newest first.
func (s *Store) Reports(ctx context.Context, f ReportFilter) ([]Report, error) {
	q := `SELECT ` + reportCols + ` FROM reports WHERE 1`
	var args []any
	q, args = andIn(q, args, "state", f.States)
	if f.Reporter != "" {
		q += ` AND reporter = ?`
		args = append(args, f.Reporter)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1
	}
	q += ` ORDER BY id DESC LIMIT ?`
	return s.queryReports(ctx, q, append(args, limit)...)
}

// Report returns one report; an error wrapping ErrNotFound when there is
// none.
func (s *Store) Report(ctx context.Context, id int64) (Report, error) {
	r, err := scanReport(s.r.QueryRowContext(ctx, `SELECT `+reportCols+` FROM reports WHERE id = ?`, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return r, fmt.Errorf("report %d: %w", id, ErrNotFound)
	case err != nil:
		return r, fmt.Errorf("report %d: %w", id, classify(err))
	}
	return r, nil
}

// andIn adds to a query's WHERE clause, when vs is not empty, that col
// is one of vs, and vs to its arguments.
func andIn[T any](q string, args []any, col string, vs []T) (string, []any) {
	if len(vs) == 0 {
		return q, args
	}
	q += ` AND ` + col + ` IN (?` + strings.Repeat(`, ?`, len(vs)-1) + `)`
	for _, v := range vs {
		args = append(args, v)
	}
	return q, args
}

func (s *Store) queryReports(ctx context.Context, q string, args ...any) ([]Report, error) {
	out, err := queryAll(ctx, s.r, scanReport, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	return out, nil
}

// ReviewReports approves (to pending, due at now) or rejects the reports
// held for review among ids (all of them when ids is empty), and returns
// the IDs it changed. A report not held for review is left as it is.
func (s *Store) ReviewReports(ctx context.Context, ids []int64, approve bool, now time.Time) ([]int64, error) {
	state := ReportRejected
	if approve {
		state = ReportPending
	}
	var changed []int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		q := `UPDATE reports SET state = ?, next_ns = ? WHERE state = ?`
		args := []any{state, toNS(now), ReportReview}
		q, args = andIn(q, args, "id", ids)
		rows, err := tx.QueryContext(ctx, q+` RETURNING id`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			changed = append(changed, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("review reports: %w", err)
	}
	return changed, nil
}

// ReportCounts returns how many reports each reporter has in each state.
func (s *Store) ReportCounts(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT reporter, state, count(*) FROM reports GROUP BY reporter, state`)
	if err != nil {
		return nil, fmt.Errorf("count reports: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var rep, state string
		var n int
		if err := rows.Scan(&rep, &state, &n); err != nil {
			return nil, fmt.Errorf("count reports: %w", classify(err))
		}
		if out[rep] == nil {
			out[rep] = map[string]int{}
		}
		out[rep][state] = n
	}
	return out, rows.Err()
}

// PruneReports removes the reports created before before that are done
// with (sent, failed, rejected, dry-run) and returns how many.
func (s *Store) PruneReports(ctx context.Context, before time.Time) (int, error) {
	n, err := s.deleteRows(ctx, `DELETE FROM reports WHERE created_ns < ? AND state IN (?, ?, ?, ?)`,
		toNS(before), ReportSent, ReportFailed, ReportRejected, ReportDryRun)
	if err == nil {
		_, err = s.deleteRows(ctx, `DELETE FROM abuse_contacts WHERE fetched_ns < ?`, toNS(before))
	}
	if err != nil {
		return 0, fmt.Errorf("prune reports: %w", err)
	}
	return n, nil
}

// AbuseContact returns the contact cached for key and when it was
// fetched; ok is false when none is cached.
func (s *Store) AbuseContact(ctx context.Context, key string) (contact string, fetched time.Time, ok bool, err error) {
	var ns int64
	err = s.r.QueryRowContext(ctx, `SELECT contact, fetched_ns FROM abuse_contacts WHERE key = ?`, key).Scan(&contact, &ns)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", time.Time{}, false, nil
	case err != nil:
		return "", time.Time{}, false, fmt.Errorf("abuse contact %q: %w", key, classify(err))
	}
	return contact, fromNS(ns), true, nil
}

// SaveAbuseContact caches contact ("" : none named) for key.
func (s *Store) SaveAbuseContact(ctx context.Context, key, contact string, fetched time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO abuse_contacts (key, contact, fetched_ns) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET contact = excluded.contact, fetched_ns = excluded.fetched_ns`, key, contact, toNS(fetched))
		return err
	})
	if err != nil {
		return fmt.Errorf("save abuse contact %q: %w", key, err)
	}
	return nil
}

// ReportTally is how many reports of one target a reporter queued that
// are in one state now.
type ReportTally struct {
	Reporter string
	Kind     string
	Target   string
	State    string
	Count    int
}

// ReportTallies counts the reports created in [since, until) (zero bounds
// are open) by reporter, kind, target and state now, ordered so.
func (s *Store) ReportTallies(ctx context.Context, since, until time.Time) ([]ReportTally, error) {
	q := `SELECT reporter, kind, target, state, count(*) FROM reports WHERE created_ns >= ?`
	args := []any{toNS(since)}
	if !until.IsZero() {
		q += ` AND created_ns < ?`
		args = append(args, toNS(until))
	}
	out, err := queryAll(ctx, s.r, func(row scanner) (ReportTally, error) {
		var t ReportTally
		err := row.Scan(&t.Reporter, &t.Kind, &t.Target, &t.State, &t.Count)
		return t, err
	}, q+` GROUP BY reporter, kind, target, state ORDER BY reporter, kind, target, state`, args...)
	if err != nil {
		return nil, fmt.Errorf("tally reports: %w", err)
	}
	return out, nil
}
