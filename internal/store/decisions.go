package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// HistoryEntry is one row of the decision history.
type HistoryEntry struct {
	ID int64
	// Revocation is false for a recorded decision and true for an entry that
	// lifted the target's decision early (Revoke). A revocation's Decision has
	// Start = when it was revoked, Reason = why, Duration 0, and the Action,
	// Scenario, Jail and Origin of the decision it lifted.
	Revocation bool
	Decision   event.Decision
	// RevokedAt is when a recorded decision was revoked; zero if it was not.
	RevokedAt time.Time
	// Place is where the target was when the decision was recorded (see
	// WithLocator); a revocation has its decision's.
	Place Place
}

// HistoryFilter selects history entries. Zero fields select everything.
type HistoryFilter struct {
	Target netip.Prefix // only this exact target
	Since  time.Time    // only entries starting at or after Since
	Limit  int          // at most this many, newest first; 0 means no limit
	After  int64        // only entries with an ID above After (0: all)
}

// History kinds, as stored in history.kind.
const (
	kindDecision = "decision"
	kindRevoke   = "revoke"
)

// historyChunk is how many decisions one INSERT statement carries: 100 rows
// of 13 parameters stay far below SQLite's limit of 32,766 and amortise the
// per-statement cost of database/sql and the driver.
const historyChunk = 100

// insertHistorySQL returns an INSERT of n decision rows with explicit ids.
func insertHistorySQL(n int) string {
	return valuesSQL(`INSERT INTO history (id, kind, target, action, start_ns, end_ns, scenario, reason, jail, origin, country, asn, as_org, ports) VALUES `,
		`(?, 'decision', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, n, "")
}

// The active table holds each target's and ports' decision in force. A
// flood's decisions come in no order of target, so keeping the table
// current with every batch inserted each one at a random place in it and
// wrote a page to the log for it at the commit: that cost more than the
// history rows themselves. So the active table is brought up to date from
// the history in bulk (mergeActive): by a batch once mergeEvery history
// rows wait, and first by every operation that changes it. Reads take the
// waiting rows into account (inForce). Rows that wait are in the history,
// committed with their batch, so a crash loses nothing.
//
// meta's active_through holds the last history id merged. New history ids
// are above it and above every id in the history (recordDecisions), so no
// row is missed when the newest rows have been pruned.
const (
	activeThroughSQL = `SELECT CAST(value AS INTEGER) AS t FROM meta WHERE key = 'active_through'`
	mergeEvery       = 16_384
)

// mergeActiveSQL makes the decisions of the history rows after id ? the
// active ones of their targets and ports, in id order, so the last decision
// for a target and its ports wins. (The WHERE clause is also what lets
// SQLite parse ON CONFLICT after a SELECT.)
const mergeActiveSQL = `INSERT INTO active (target, ports, history_id, start_ns, end_ns)
	SELECT target, ports, id, start_ns, end_ns FROM history WHERE id > ? AND kind = 'decision' ORDER BY id
	ON CONFLICT (target, ports) DO UPDATE SET
		history_id = excluded.history_id, start_ns = excluded.start_ns, end_ns = excluded.end_ns`

// mergeActive brings the active table up to date with the history.
func mergeActive(ctx context.Context, tx *sql.Tx) error {
	var through, last int64
	if err := tx.QueryRowContext(ctx, `SELECT (`+activeThroughSQL+`), coalesce(max(id), 0) FROM history`).Scan(&through, &last); err != nil {
		return err
	}
	if last <= through {
		return nil
	}
	if _, err := tx.ExecContext(ctx, mergeActiveSQL, through); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = 'active_through'`, strconv.FormatInt(last, 10))
	return err
}

// writeActive runs fn in a write transaction after bringing the active
// table up to date.
func (s *Store) writeActive(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := mergeActive(ctx, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// RecordDecision appends d to the history and makes it the target's active
// decision, replacing whatever was active for d.Target and d.Ports before:
// the latest decision wins, even when it ends sooner (the engine decides
// escalation; a caller that must not shorten a ban checks ActiveDecisions
// first). A target's whole-host decision and its per-port ones (with
// other ports) are active side by side. It returns the history entry's ID.
//
// d.Target is normalised (masked, IPv4-mapped unmapped); d.Action must be a
// known action and d.Start must be set. A Duration of zero or less means
// until revoked.
func (s *Store) RecordDecision(ctx context.Context, d event.Decision) (int64, error) {
	ids, err := s.recordDecisions(ctx, []event.Decision{d}, nil, nil)
	if err != nil {
		return 0, fmt.Errorf("record decision for %s: %w", d.Target, err)
	}
	return ids[0], nil
}

// RecordDecisions records ds in order in one transaction, as RecordDecision
// would one by one: either all are written or, on error, none. It returns the
// history IDs in the order of ds.
func (s *Store) RecordDecisions(ctx context.Context, ds []event.Decision) ([]int64, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	ids, err := s.recordDecisions(ctx, ds, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("record %d decisions: %w", len(ds), err)
	}
	return ids, nil
}

type decisionRow struct {
	target string
	ports  string // event.FormatPorts; "" for a whole-host decision
	action string
	start  int64
	end    sql.NullInt64
	place  Place
}

func validate(d event.Decision) (decisionRow, error) {
	p, err := normPrefix(d.Target)
	if err != nil {
		return decisionRow{}, err
	}
	if _, err := event.ParseAction(d.Action.String()); err != nil {
		return decisionRow{}, fmt.Errorf("target %s: %w", p, err)
	}
	if d.Start.IsZero() {
		return decisionRow{}, fmt.Errorf("target %s: decision has no start time", p)
	}
	r := decisionRow{target: p.String(), action: d.Action.String(), start: toNS(d.Start), end: endNS(d.Start, d.Duration)}
	if p.IsSingleIP() {
		r.ports = event.FormatPorts(event.NormalizePorts(d.Ports))
	}
	return r, nil
}

// RecordBatch records ds as RecordDecisions does, saves positions as
// SavePositions does and the good clients seen as AddKnownGood and AddRelay
// do, in one transaction: the positions of the log lines that led to the
// decisions are saved with them, so a crash right after cannot make those
// lines be read, and counted, again; and a flood of logins costs one commit
// per batch, not one each. Either all is written or, on error, nothing.
// Sightings of invalid addresses are skipped.
func (s *Store) RecordBatch(ctx context.Context, ds []event.Decision, positions map[string]string, seen []Sighting) ([]int64, error) {
	ids, err := s.recordDecisions(ctx, ds, positions, seen)
	if err != nil {
		return nil, fmt.Errorf("record %d decisions, %d positions and %d good clients: %w", len(ds), len(positions), len(seen), err)
	}
	return ids, nil
}

func (s *Store) recordDecisions(ctx context.Context, ds []event.Decision, positions map[string]string, seen []Sighting) ([]int64, error) {
	rows := make([]decisionRow, len(ds))
	for i, d := range ds {
		r, err := validate(d)
		if err != nil {
			return nil, err
		}
		if s.locate != nil {
			r.place = s.locate(d.Target.Addr())
		}
		rows[i] = r
	}
	ids := make([]int64, len(ds))
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := savePositions(ctx, tx, positions); err != nil {
			return err
		}
		if err := saveSightings(ctx, tx, seen); err != nil {
			return err
		}
		if len(ds) == 0 {
			return nil
		}
		// The transaction holds the write lock, so ids from max+1 on are
		// ours: explicit ids give each decision its id without a round
		// trip per row. They are above the merged ones too (mergeActive).
		var first, through int64
		if err := tx.QueryRowContext(ctx, `SELECT max(coalesce((SELECT max(id) FROM history), 0), t) + 1, t FROM (`+activeThroughSQL+`)`).Scan(&first, &through); err != nil {
			return err
		}
		w := newRowWriter(ctx, tx, historyChunk, 13, insertHistorySQL)
		defer w.close()
		for i := range ds {
			d, r := &ds[i], &rows[i]
			ids[i] = first + int64(i)
			if err := w.add(ids[i], r.target, r.action, r.start, r.end, d.Scenario, d.Reason, d.Jail, d.Origin,
				r.place.Country, int64(r.place.ASN), r.place.Org, r.ports); err != nil {
				return err
			}
		}
		if err := w.flush(); err != nil {
			return err
		}
		if first+int64(len(ds))-1-through < mergeEvery {
			return nil
		}
		return mergeActive(ctx, tx)
	})
	return ids, err
}

// write runs fn in a write transaction on the single writer connection and
// commits it, or rolls it back when fn fails. Errors are classified.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return classify(err)
	}
	return classify(tx.Commit())
}

// deleteRows runs one DELETE statement in its own transaction and
// returns how many rows it deleted.
func (s *Store) deleteRows(ctx context.Context, query string, args ...any) (int, error) {
	return deleteIn(ctx, s.write, query, args...)
}

// deleteIn runs one DELETE statement in a transaction of write (Store.write
// or Store.writeActive) and returns how many rows it deleted.
func deleteIn(ctx context.Context, write func(context.Context, func(*sql.Tx) error) error, query string, args ...any) (int, error) {
	var n int64
	err := write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// scanner is a row: *sql.Rows, or *sql.Row for one.
type scanner interface{ Scan(...any) error }

// querier runs queries: a reader pool (Store.r) or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryAll runs query on q and returns its rows as scan reads them, in
// order. Errors are classified.
func queryAll[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, classify(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// Revoke lifts the decisions in force for target at time at (its
// whole-host one and its per-port ones): it removes each active entry,
// marks its history entry revoked and appends a revocation entry with
// reason why. Revoke returns an error wrapping ErrNotActive when the target
// (exactly this prefix) has no decision, or only ones that had already
// expired at at; expired entries are removed all the same.
func (s *Store) Revoke(ctx context.Context, target netip.Prefix, at time.Time, why string) error {
	p, err := normPrefix(target)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	key, atNS := p.String(), toNS(at)
	lifted := 0
	err = s.writeActive(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM active WHERE target = ? RETURNING history_id, end_ns`, key)
		if err != nil {
			return err
		}
		var ids []int64
		found := false
		for rows.Next() {
			var id int64
			var end sql.NullInt64
			if err := rows.Scan(&id, &end); err != nil {
				rows.Close()
				return err
			}
			found = true
			// An entry that had ended is only removed: it was not in force.
			if !end.Valid || end.Int64 > atNS {
				ids = append(ids, id)
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if !found {
			return ErrNotActive
		}
		slices.Sort(ids)
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE history SET revoked_ns = ? WHERE id = ?`, atNS, id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO history (kind, target, action, start_ns, end_ns, scenario, reason, jail, origin, country, asn, as_org, ports)
				SELECT 'revoke', target, action, ?, NULL, scenario, ?, jail, origin, country, asn, as_org, ports FROM history WHERE id = ?`, atNS, why, id); err != nil {
				return err
			}
		}
		lifted = len(ids)
		return nil
	})
	if err == nil && lifted == 0 {
		// The removal of stale entries is committed; the caller still
		// hears that nothing was in force.
		err = ErrNotActive
	}
	if err != nil {
		return fmt.Errorf("revoke %s: %w", p, err)
	}
	return nil
}

// RevokeAll lifts every decision with this action in force at time at, in
// one transaction, as Revoke would one by one: each history entry is marked
// revoked and a revocation entry with reason why is appended beside it, so
// the history keeps what was decided and when it was ended. Active entries
// of the action that had already ended are removed too. It returns how many
// decisions it lifted.
func (s *Store) RevokeAll(ctx context.Context, action event.Action, at time.Time, why string) (int, error) {
	if _, err := event.ParseAction(action.String()); err != nil {
		return 0, fmt.Errorf("revoke all: %w", err)
	}
	atNS, act := toNS(at), action.String()
	var n int64
	err := s.writeActive(ctx, func(tx *sql.Tx) error {
		const inForce = `FROM active a JOIN history h ON h.id = a.history_id
			WHERE h.action = ? AND a.start_ns <= ? AND (a.end_ns IS NULL OR a.end_ns > ?)`
		res, err := tx.ExecContext(ctx, `INSERT INTO history (kind, target, action, start_ns, end_ns, scenario, reason, jail, origin, country, asn, as_org, ports)
			SELECT 'revoke', h.target, h.action, ?, NULL, h.scenario, ?, h.jail, h.origin, h.country, h.asn, h.as_org, h.ports `+inForce+` ORDER BY a.target, a.ports`,
			atNS, why, act, atNS, atNS)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE history SET revoked_ns = ? WHERE id IN (SELECT h.id `+inForce+`)`,
			atNS, act, atNS, atNS); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM active WHERE start_ns <= ?
			AND EXISTS (SELECT 1 FROM history h WHERE h.id = active.history_id AND h.action = ?)`, atNS, act)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("revoke all %s decisions: %w", act, err)
	}
	return int(n), nil
}

const decisionColumns = `h.id, h.kind, h.target, h.action, h.start_ns, h.end_ns, h.scenario, h.reason, h.jail, h.origin, h.revoked_ns, h.country, h.asn, h.as_org, h.ports`

func scanEntry(rows scanner) (HistoryEntry, error) {
	var (
		e                              HistoryEntry
		kind, target, action           string
		start                          int64
		end, revoked                   sql.NullInt64
		scenario, reason, jail, origin string
		ports                          string
	)
	var asn int64
	if err := rows.Scan(&e.ID, &kind, &target, &action, &start, &end, &scenario, &reason, &jail, &origin, &revoked,
		&e.Place.Country, &asn, &e.Place.Org, &ports); err != nil {
		return e, err
	}
	ps, err := event.ParsePorts(ports)
	if err != nil {
		return e, fmt.Errorf("history %d: %w", e.ID, err)
	}
	p, err := netip.ParsePrefix(target)
	if err != nil {
		return e, fmt.Errorf("history %d: bad target: %w", e.ID, err)
	}
	a, err := event.ParseAction(action)
	if err != nil {
		return e, fmt.Errorf("history %d: %w", e.ID, err)
	}
	e.Place.ASN = uint32(asn)
	e.Revocation = kind == kindRevoke
	e.Decision = event.Decision{
		Target:   p,
		Action:   a,
		Start:    fromNS(start),
		Scenario: scenario,
		Reason:   reason,
		Jail:     jail,
		Origin:   origin,
		Ports:    ps,
	}
	if end.Valid {
		e.Decision.Duration = time.Duration(end.Int64 - start)
	}
	if revoked.Valid {
		e.RevokedAt = fromNS(revoked.Int64)
	}
	return e, nil
}

// ActiveDecisions returns the decisions in force at now, one per target
// and ports (a target's whole-host decision and its per-port ones): started
// at or before now and not yet ended (a decision ending exactly at now is
// over). Entries that have expired but not been pruned are left out. The
// order is by target text, then ports.
func (s *Store) ActiveDecisions(ctx context.Context, now time.Time) ([]event.Decision, error) {
	ds, err := s.inForce(ctx, now, nil)
	if err != nil {
		return nil, fmt.Errorf("list active decisions: %w", err)
	}
	return ds, nil
}

// ActiveDecisionsOf is ActiveDecisions for the given targets only (those
// without a decision in force are left out): a status listing the latest
// bans of a flood reads their reasons without reading every ban's.
func (s *Store) ActiveDecisionsOf(ctx context.Context, now time.Time, targets []netip.Prefix) ([]event.Decision, error) {
	const chunk = 500
	var ds []event.Decision
	for lo := 0; lo < len(targets); lo += chunk {
		keys := make([]string, 0, chunk)
		for _, t := range targets[lo:min(lo+chunk, len(targets))] {
			p, err := normPrefix(t)
			if err != nil {
				return nil, fmt.Errorf("list active decisions: %w", err)
			}
			keys = append(keys, p.String())
		}
		part, err := s.inForce(ctx, now, keys)
		if err != nil {
			return nil, fmt.Errorf("list active decisions: %w", err)
		}
		ds = append(ds, part...)
	}
	return ds, nil
}

// inForce returns the decisions in force at now, of the targets keys only
// unless keys is nil, ordered by target text and ports. They are the active
// table's as the history rows it has not taken yet would leave it
// (mergeActive), read from one snapshot, so that a read neither writes nor
// waits for the writer.
func (s *Store) inForce(ctx context.Context, now time.Time, keys []string) ([]event.Decision, error) {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, classify(err)
	}
	defer tx.Rollback()
	n := toNS(now)
	var args []any
	for _, k := range keys {
		args = append(args, k)
	}
	// of is the condition on the column naming the target, if keys limit
	// them: the active table's key, so that its rows are looked up.
	of := func(column string) string {
		if keys == nil {
			return ""
		}
		return " AND " + column + " IN (?" + strings.Repeat(", ?", len(keys)-1) + ")"
	}
	active, err := queryAll(ctx, tx, scanEntry, `SELECT `+decisionColumns+`
		FROM active a JOIN history h ON h.id = a.history_id
		WHERE a.start_ns <= ? AND (a.end_ns IS NULL OR a.end_ns > ?)`+of("a.target")+`
		ORDER BY a.target, a.ports`, append([]any{n, n}, args...)...)
	if err != nil {
		return nil, err
	}
	waiting, err := queryAll(ctx, tx, scanEntry, `SELECT `+decisionColumns+` FROM history h
		WHERE h.id > (`+activeThroughSQL+`) AND h.kind = 'decision'`+of("h.target")+` ORDER BY h.id`, args...)
	if err != nil {
		return nil, err
	}
	ds := make([]event.Decision, len(active), len(active)+len(waiting))
	for i, e := range active {
		ds[i] = e.Decision
	}
	if len(waiting) == 0 {
		return ds, nil
	}
	return overlay(ds, waiting, now), nil
}

// overlay applies the waiting history entries, in id order, to ds, the
// active table's decisions in force in its order (target text, ports): the
// latest decision for a target and ports wins, even one no longer in
// force. It works within ds's capacity, which has room for waiting, so
// that a start-up listing a million bans does not copy them; only the
// waiting decisions are looked up and sorted.
func overlay(ds []event.Decision, waiting []HistoryEntry, now time.Time) []event.Decision {
	latest := make(map[event.DecisionKey]event.Decision, len(waiting))
	for _, e := range waiting {
		latest[e.Decision.Key()] = e.Decision
	}
	kept := ds[:0]
	for _, d := range ds {
		k := d.Key()
		w, ok := latest[k]
		if !ok {
			kept = append(kept, d)
			continue
		}
		delete(latest, k)
		if w.Active(now) { // the same key: the same place in the order
			kept = append(kept, w)
		}
	}
	// The decisions for keys the active table does not have are sorted
	// and merged in, from the end.
	type entry struct {
		target, ports string
		d             event.Decision
	}
	order := func(d event.Decision) entry { return entry{d.Target.String(), d.Key().Ports, d} }
	compare := func(a, b entry) int {
		return cmp.Or(strings.Compare(a.target, b.target), strings.Compare(a.ports, b.ports))
	}
	var fresh []entry
	for _, d := range latest {
		if d.Active(now) {
			fresh = append(fresh, order(d))
		}
	}
	slices.SortFunc(fresh, compare)
	i, j := len(kept)-1, len(fresh)-1
	out := kept[:len(kept)+len(fresh)]
	var cur entry
	for k := len(out) - 1; j >= 0; k-- {
		if i >= 0 && cur.target == "" {
			cur = order(out[i])
		}
		if i >= 0 && compare(fresh[j], cur) < 0 {
			out[k], cur = cur.d, entry{}
			i--
		} else {
			out[k] = fresh[j].d
			j--
		}
	}
	return out
}

// History returns history entries matching f, newest first.
func (s *Store) History(ctx context.Context, f HistoryFilter) ([]HistoryEntry, error) {
	var where []string
	var args []any
	if f.Target.IsValid() {
		p, err := normPrefix(f.Target)
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		where, args = append(where, "h.target = ?"), append(args, p.String())
	}
	if !f.Since.IsZero() {
		where, args = append(where, "h.start_ns >= ?"), append(args, toNS(f.Since))
	}
	if f.After > 0 {
		where, args = append(where, "h.id > ?"), append(args, f.After)
	}
	q := `SELECT ` + decisionColumns + ` FROM history h`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY h.start_ns DESC, h.id DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	es, err := queryAll(ctx, s.r, scanEntry, q, args...)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return es, nil
}

// EachBan calls fn with the target and start of each ban recorded at or
// after since, oldest first, and returns how many. Bans lifted by hand
// (revoked) are left out: a revocation is usually an admitted mistake;
// trap decisions count as bans. It reads a row at a time: a long flood's
// history is not held in memory.
func (s *Store) EachBan(ctx context.Context, since time.Time, fn func(target netip.Prefix, start time.Time)) (int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT target, start_ns FROM history
		WHERE start_ns >= ? AND kind = 'decision' AND action IN (?, ?) AND revoked_ns IS NULL
		ORDER BY start_ns, id`, toNS(since), event.Ban.String(), event.Trap.String())
	if err != nil {
		return 0, fmt.Errorf("bans since %s: %w", since, classify(err))
	}
	defer rows.Close()
	n := 0
	var target []byte
	var start int64
	for rows.Next() {
		if err := rows.Scan(&target, &start); err != nil {
			return n, fmt.Errorf("bans since %s: %w", since, classify(err))
		}
		p, err := netip.ParsePrefix(string(target))
		if err != nil {
			return n, fmt.Errorf("bans since %s: bad target %q: %w", since, target, err)
		}
		fn(p, fromNS(start))
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("bans since %s: %w", since, classify(err))
	}
	return n, nil
}

// PruneExpired removes active entries that ended at or before now and
// returns how many. Their history stays.
func (s *Store) PruneExpired(ctx context.Context, now time.Time) (int, error) {
	n, err := deleteIn(ctx, s.writeActive, `DELETE FROM active WHERE end_ns IS NOT NULL AND end_ns <= ?`, toNS(now))
	if err != nil {
		return 0, fmt.Errorf("prune expired decisions: %w", err)
	}
	return n, nil
}

// PruneHistory deletes history entries that started before before, except
// those still referenced by an active decision, and returns how many. It
// bounds the database's size; the escalation restored at start-up forgets
// what it deletes. It deletes pruneChunk entries a transaction, so that a
// long history's first pruning does not hold the writer for long.
func (s *Store) PruneHistory(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		n, err := deleteIn(ctx, s.writeActive, `DELETE FROM history WHERE id IN (SELECT id FROM history
			WHERE start_ns < ? AND id NOT IN (SELECT history_id FROM active) LIMIT ?)`, toNS(before), pruneChunk)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune history: %w", err)
		}
		if n < pruneChunk {
			return total, nil
		}
	}
}

// pruneChunk is how many history entries PruneHistory deletes in one
// transaction.
var pruneChunk = 10_000
