package store

import (
	"context"
	"database/sql"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Place is where an address is, as the geo databases say.
type Place struct {
	Country string // ISO 3166-1 alpha-2; "" unknown
	ASN     uint32 // 0 unknown
	Org     string // the AS organisation
}

// Hourly aggregates (migration 0004): failures and bans counted per hour,
// jail and dimension. They outlive the history, stay bounded (a cap of
// keys per hour and dimension, then one row per day for old hours, then
// deletion), and add up across hosts, so reports of several stores merge
// by summing.

// Dimensions of the hourly aggregates.
const (
	DimTotal    = "total"    // key ""
	DimCountry  = "country"  // ISO code; "" unknown
	DimASN      = "asn"      // the number in decimal, "0" unknown; Label is the organisation
	DimPrefix   = "prefix"   // the /24 or /64 an address is in, or a banned prefix
	DimUser     = "user"     // user names and recipients tried (failures only)
	DimService  = "service"  // sshd, postfix, … (failures only)
	DimKind     = "kind"     // auth-failure, unknown-user, … (failures only)
	DimScenario = "scenario" // what fired (bans only)
)

// OtherKey is the key the smallest keys of a dimension are folded into
// when an hour holds more than the cap.
const OtherKey = "*"

// HourlyRow is one aggregate: what happened in the hour starting at Hour
// (or, for old rows, the day starting at Hour) in one jail, for one key of
// one dimension.
type HourlyRow struct {
	Hour     time.Time
	Jail     string
	Dim      string
	Key      string
	Label    string // a name for Key (an AS's organisation)
	Failures int64
	Bans     int64
}

// AddHourly adds rows to the aggregates in one transaction: counts of a
// row already there are summed; a non-empty label replaces the old one.
// Hour is truncated to the hour.
func (s *Store) AddHourly(ctx context.Context, rows []HourlyRow) error {
	if len(rows) == 0 {
		return nil
	}
	if err := s.addHourly(ctx, slices.Values(rows)); err != nil {
		return fmt.Errorf("add %d hourly aggregates: %w", len(rows), err)
	}
	return nil
}

// AddHourlySeq is AddHourly for rows made as they are read (nil: none).
// Rows in the table's key order (hour, jail, dimension, key) are written
// fastest.
func (s *Store) AddHourlySeq(ctx context.Context, rows iter.Seq[HourlyRow]) error {
	if rows == nil {
		return nil
	}
	if err := s.addHourly(ctx, rows); err != nil {
		return fmt.Errorf("add hourly aggregates: %w", err)
	}
	return nil
}

func (s *Store) addHourly(ctx context.Context, rows iter.Seq[HourlyRow]) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		w := newRowWriter(ctx, tx, hourlyChunk, 7, upsertHourlySQL)
		defer w.close()
		for r := range rows {
			if err := w.add(toNS(r.Hour.Truncate(time.Hour)), r.Jail, r.Dim, r.Key, r.Label, r.Failures, r.Bans); err != nil {
				return err
			}
		}
		return w.flush()
	})
}

// hourlyChunk is how many rows one upsert writes: one row to a statement
// cost 12 allocations and 528 bytes a row, and a flush of 200,000 rows
// 1.14 CPU-s against 0.90 with 64 (BenchmarkAddHourly).
const hourlyChunk = 64

// upsertHourlySQL returns an upsert of n hourly rows: counts of a row
// already there are summed; a non-empty label replaces the old one.
func upsertHourlySQL(n int) string {
	return valuesSQL(`INSERT INTO hourly (hour_ns, jail, dim, key, label, failures, bans) VALUES `, `(?, ?, ?, ?, ?, ?, ?)`, n,
		` ON CONFLICT (hour_ns, jail, dim, key) DO UPDATE SET
		failures = failures + excluded.failures,
		bans = bans + excluded.bans,
		label = CASE WHEN excluded.label != '' THEN excluded.label ELSE label END`)
}

// HourlyFilter selects aggregates. Zero fields select everything.
type HourlyFilter struct {
	Since time.Time // rows whose hour starts at or after Since
	Until time.Time // rows whose hour starts before Until
	Jail  string
	Dim   string
}

// Hourly returns the aggregates f selects, by hour, jail, dimension, key.
func (s *Store) Hourly(ctx context.Context, f HourlyFilter) ([]HourlyRow, error) {
	var where []string
	var args []any
	if !f.Since.IsZero() {
		where, args = append(where, "hour_ns >= ?"), append(args, toNS(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "hour_ns < ?"), append(args, toNS(f.Until))
	}
	if f.Jail != "" {
		where, args = append(where, "jail = ?"), append(args, f.Jail)
	}
	if f.Dim != "" {
		where, args = append(where, "dim = ?"), append(args, f.Dim)
	}
	q := `SELECT hour_ns, jail, dim, key, label, failures, bans FROM hourly`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY hour_ns, jail, dim, key"
	out, err := queryAll(ctx, s.r, func(row scanner) (HourlyRow, error) {
		var r HourlyRow
		var h int64
		err := row.Scan(&h, &r.Jail, &r.Dim, &r.Key, &r.Label, &r.Failures, &r.Bans)
		r.Hour = fromNS(h)
		return r, err
	}, q, args...)
	if err != nil {
		return nil, fmt.Errorf("hourly aggregates: %w", err)
	}
	return out, nil
}

// Compaction is what CompactHourly did.
type Compaction struct {
	Deleted int64 // rows older than the retention
	Folded  int64 // hourly rows folded into days, and keys folded into OtherKey
	Rows    int64 // rows left
}

// CompactHourly bounds the aggregates: it deletes rows older than
// dropBefore, folds the hours before dailyBefore into one row per UTC day,
// and folds all but the maxKeys-1 biggest keys (by failures and bans) of
// each hour, jail and dimension into OtherKey. maxKeys below 2 leaves keys
// alone.
func (s *Store) CompactHourly(ctx context.Context, dropBefore, dailyBefore time.Time, maxKeys int) (Compaction, error) {
	var c Compaction
	const day = int64(24 * time.Hour)
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM hourly WHERE hour_ns < ?`, toNS(dropBefore))
		if err != nil {
			return err
		}
		c.Deleted, _ = res.RowsAffected()
		db := toNS(dailyBefore)
		if _, err := tx.ExecContext(ctx, `INSERT INTO hourly (hour_ns, jail, dim, key, label, failures, bans)
			SELECT hour_ns - hour_ns % ?, jail, dim, key, max(label), sum(failures), sum(bans)
			FROM hourly WHERE hour_ns < ? AND hour_ns % ? != 0
			GROUP BY hour_ns - hour_ns % ?, jail, dim, key
			ON CONFLICT (hour_ns, jail, dim, key) DO UPDATE SET
				failures = failures + excluded.failures,
				bans = bans + excluded.bans,
				label = CASE WHEN excluded.label != '' THEN excluded.label ELSE label END`,
			day, db, day, day); err != nil {
			return err
		}
		res, err = tx.ExecContext(ctx, `DELETE FROM hourly WHERE hour_ns < ? AND hour_ns % ? != 0`, db, day)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		c.Folded += n
		if maxKeys >= 2 {
			n, err := foldKeys(ctx, tx, maxKeys)
			if err != nil {
				return err
			}
			c.Folded += n
		}
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM hourly`).Scan(&c.Rows)
	})
	if err != nil {
		return c, fmt.Errorf("compact hourly aggregates: %w", err)
	}
	return c, nil
}

// foldKeys folds, in every (hour, jail, dim) holding more than maxKeys
// keys, all but the maxKeys-1 biggest into OtherKey.
func foldKeys(ctx context.Context, tx *sql.Tx, maxKeys int) (int64, error) {
	const ranked = `WITH ranked AS (
		SELECT hour_ns, jail, dim, key, failures, bans, row_number() OVER (
			PARTITION BY hour_ns, jail, dim ORDER BY failures + bans DESC, key) AS rn
		FROM hourly WHERE dim != 'total' AND key != '*')`
	if _, err := tx.ExecContext(ctx, ranked+`
		INSERT INTO hourly (hour_ns, jail, dim, key, label, failures, bans)
		SELECT hour_ns, jail, dim, '*', '', sum(failures), sum(bans) FROM ranked
		WHERE rn >= ? GROUP BY hour_ns, jail, dim
		ON CONFLICT (hour_ns, jail, dim, key) DO UPDATE SET
			failures = failures + excluded.failures, bans = bans + excluded.bans`, maxKeys); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, ranked+`
		DELETE FROM hourly WHERE (hour_ns, jail, dim, key) IN (
			SELECT hour_ns, jail, dim, key FROM ranked WHERE rn >= ?)`, maxKeys)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Tables reports which of the named tables exist in the database: a
// report of a store copied from another host shows the sections its
// schema has.
func (s *Store) Tables(ctx context.Context) (map[string]bool, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", classify(err))
	}
	defer rows.Close()
	m := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list tables: %w", classify(err))
		}
		m[n] = true
	}
	return m, classify(rows.Err())
}

// Capture is one quarantined message as reports show it: never its body.
type Capture struct {
	ID       int64
	Received time.Time
	Client   netip.Addr
	Account  string
	MailFrom string
	Rcpts    int
	Size     int64
	Place    Place // as stored when it arrived; zero: unknown
}

// Captures returns the messages the trap quarantined in [since, until)
// (zero bounds are open), oldest first, without their bodies.
func (s *Store) Captures(ctx context.Context, since, until time.Time) ([]Capture, error) {
	q := `SELECT id, received_ns, client, account, mail_from, rcpt_to, size, country, asn, as_org FROM quarantine WHERE received_ns >= ?`
	args := []any{toNS(since)}
	if !until.IsZero() {
		q += ` AND received_ns < ?`
		args = append(args, toNS(until))
	}
	out, err := queryAll(ctx, s.r, func(row scanner) (Capture, error) {
		var (
			c       Capture
			at, asn int64
			client  string
			rcpt    string
		)
		err := row.Scan(&c.ID, &at, &client, &c.Account, &c.MailFrom, &rcpt, &c.Size, &c.Place.Country, &asn, &c.Place.Org)
		c.Received = fromNS(at)
		c.Place.ASN = uint32(asn)
		c.Client, _ = netip.ParseAddr(client) // invalid stays invalid: shown as unknown
		if rcpt != "" {
			c.Rcpts = strings.Count(rcpt, "\n") + 1
		}
		return c, err
	}, q+` ORDER BY received_ns, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list captures: %w", err)
	}
	return out, nil
}

// QuarantineHeads returns the first n bytes of the raw text of each of
// the messages ids (their headers, for a listing) by id, without reading
// the rest; ids not in the quarantine are absent.
func (s *Store) QuarantineHeads(ctx context.Context, ids []int64, n int) (map[int64][]byte, error) {
	heads := make(map[int64][]byte, len(ids))
	const chunk = 500
	for lo := 0; lo < len(ids); lo += chunk {
		hi := min(lo+chunk, len(ids))
		args := []any{n}
		for _, id := range ids[lo:hi] {
			args = append(args, id)
		}
		_, err := queryAll(ctx, s.r, func(row scanner) (struct{}, error) {
			var id int64
			var head []byte
			err := row.Scan(&id, &head)
			heads[id] = head
			return struct{}{}, err
		}, `SELECT id, substr(raw, 1, ?) FROM quarantine WHERE id IN (?`+strings.Repeat(", ?", hi-lo-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("quarantined messages' heads: %w", err)
		}
	}
	return heads, nil
}
