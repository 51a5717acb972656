// Package store keeps Rampart's state in SQLite: decisions and ban history,
// log source positions, known-good clients and small meta values. It is the
// only package that speaks SQL.
//
// # Connections
//
// SQLite allows one writer at a time per database file; a second writer waits
// on the file lock (busy_timeout), and a transaction that began as a read and
// then writes can fail with SQLITE_BUSY at once, without waiting, when another
// connection wrote in between. So a Store opens exactly one writer connection (a database/sql pool
// limited to one open connection): every write in the process queues there, in
// Go, honouring the caller's context, and never contends with itself. Its
// transactions start with BEGIN IMMEDIATE, so the write lock is taken up
// front and the busy timeout applies to the whole wait.
//
// Reads go to a separate pool of read-only connections (query_only) that
// never create the file (mode=rw). The database runs in WAL mode, where
// readers see the last committed snapshot and neither block the writer nor
// wait for it: the dashboard can list history while a batch of 100,000
// decisions is being written.
//
// An in-memory database (path ":memory:") exists only inside its connection,
// so there the single writer connection serves reads too.
//
// # Locking and other processes
//
// When another process holds the write lock (a second daemon, an sqlite3 shell
// with an open transaction), a write waits up to the busy timeout (default
// 5s, see WithBusyTimeout) and then fails with an error wrapping ErrLocked;
// the caller keeps its data and may retry later (the daemon's periodic flush
// does). Reads are not blocked by a writer in WAL mode.
//
// # Durability
//
// synchronous=FULL: a committed transaction survives power loss, because a ban
// must be persisted before it is reported as applied. That costs an fsync per
// commit (about a millisecond), so batch writes (RecordDecisions,
// SavePositions) are the way to write many: one sync per batch. The writer
// keeps up to 8 MiB of pages in cache and its statement journals in memory
// so that a large batch is not written to disk twice.
//
// # Decisions
//
// Every decision is appended to the history, in the order made, with the
// batch that carries it. The active table, one row per target and ports in
// force, is derived from the history in bulk (see mergeActive): a flood's
// decisions come in no order of target, and keeping the table current with
// every batch cost more than writing the history rows. Ban-time
// escalation needs no table of its own: the daemon gives the engine the
// history's recent bans at start-up. PruneHistory bounds the history's size.
//
// # Representation
//
// Times are stored as unix nanoseconds (UTC), returned in UTC; the zero
// time.Time is stored as 0 and read back as the zero time. Addresses and
// prefixes are stored as netip's canonical text with IPv4-mapped IPv6
// unmapped, so ::ffff:192.0.2.1 and 192.0.2.1 are the same row.
//
// # Schema
//
// The schema lives in migrations/NNNN_name.sql, embedded in the binary and
// applied in order, one transaction each, with PRAGMA user_version holding the
// number of the last applied migration. A database whose version is newer
// than this binary knows fails to open with ErrSchemaTooNew.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors callers branch on. They are wrapped: test with errors.Is.
var (
	// ErrCorrupt means the file is not an SQLite database or fails its
	// integrity check. The daemon should say so, MoveAside the file and start
	// with a fresh one.
	ErrCorrupt = errors.New("database is corrupt")
	// ErrSchemaTooNew means the database was written by a newer Rampart. Do not
	// move it aside: upgrade Rampart or restore a backup.
	ErrSchemaTooNew = errors.New("database schema is newer than this version of rampart")
	// ErrLocked means another process held the database's write lock for longer
	// than the busy timeout. Nothing was written; retrying later is safe.
	ErrLocked = errors.New("database is locked by another process")
	// ErrNotActive is returned by Revoke when the target has no decision in force.
	ErrNotActive = errors.New("no active decision")
	// ErrFull means the disk (or the database's page limit) is full. Nothing
	// was written; retrying once there is room is safe.
	ErrFull = errors.New("database or disk is full")
)

// Memory is the path of an in-memory database, gone when the Store is closed.
const Memory = ":memory:"

// DefaultBusyTimeout is how long a write waits for another process's lock.
const DefaultBusyTimeout = 5 * time.Second

// Store is an open Rampart database. Its methods are safe for concurrent use.
type Store struct {
	path   string
	locate func(netip.Addr) Place // WithLocator; nil: places unknown
	w      *sql.DB                // the single writer connection
	r      *sql.DB                // read-only connections; == w for an in-memory database
}

type options struct {
	locate      func(netip.Addr) Place
	busyTimeout time.Duration
	readers     int
	quickCheck  bool
}

// Option changes how Open opens a database.
type Option func(*options)

// WithBusyTimeout sets how long an operation waits for a lock held by another
// process before it fails with ErrLocked. Zero or less means fail at once.
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) { o.busyTimeout = max(d, 0) }
}

// WithLocator makes the store record, with each decision, where its
// target's address is (country, autonomous system), as f says when the
// decision is recorded. f must be safe for concurrent use and quick: it
// runs before the write transaction, once per decision.
func WithLocator(f func(netip.Addr) Place) Option {
	return func(o *options) { o.locate = f }
}

// WithReaders sets the number of read-only connections (default 4, minimum 1).
func WithReaders(n int) Option {
	return func(o *options) { o.readers = max(n, 1) }
}

// WithoutQuickCheck skips PRAGMA quick_check on open. The check reads the
// whole file; skip it only where opening must be instant and corruption will
// still surface, as ErrCorrupt, on first use of a damaged page.
func WithoutQuickCheck() Option {
	return func(o *options) { o.quickCheck = false }
}

// Open opens or creates the database at path and brings its schema up to
// date. Path Memory (":memory:") opens a private in-memory database.
//
// Open returns an error wrapping ErrCorrupt when the file is not a database
// or fails PRAGMA quick_check, ErrSchemaTooNew when it was written by a newer
// Rampart, and ErrLocked when another process kept it locked for longer than
// the busy timeout.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{busyTimeout: DefaultBusyTimeout, readers: 4, quickCheck: true}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := open(ctx, path, o)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return s, nil
}

func open(ctx context.Context, path string, o options) (*Store, error) {
	mem := path == Memory
	if path == "" {
		return nil, errors.New("empty path")
	}
	// The writer's page cache is 8 MiB, held outside Go's heap: 32 MiB
	// cost the daemon 40 MiB of resident memory under a flood of 73,000
	// decisions and wrote them no faster (bench/RESULTS.md, issue 19).
	// The log is copied into the database once it holds 4,000 pages (16
	// MiB on disk), not SQLite's 1,000: the active table takes rows in no
	// order, so a flood's transactions dirty the same pages again and
	// again, and each copy writes them once (BenchmarkRecordDecisions,
	// batches of 1,000: 38-41 -> 33-34 ms of CPU a batch, measured when
	// every batch wrote the active table).
	params := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", o.busyTimeout.Milliseconds()),
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(FULL)",
		"_pragma=cache_size(-8192)",
		"_pragma=temp_store(MEMORY)",
		"_pragma=wal_autocheckpoint(4000)",
		"_txlock=immediate",
	}
	if !mem {
		params = append(params, "_pragma=journal_mode(WAL)")
	}
	w, err := sql.Open("sqlite", dsn(path, params))
	if err != nil {
		return nil, err
	}
	// One connection, kept open forever: the single writer, and for an
	// in-memory database the database itself.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{path: path, w: w, r: w, locate: o.locate}
	if err := s.init(ctx, o); err != nil {
		w.Close()
		return nil, err
	}
	if mem {
		return s, nil
	}
	// Readers open the file as it is (mode=rw) and never create it: a
	// reader connection opened after the file was deleted would otherwise
	// make a new, empty database at the path and read from that.
	r, err := sql.Open("sqlite", dsn(path, []string{
		"mode=rw",
		fmt.Sprintf("_pragma=busy_timeout(%d)", o.busyTimeout.Milliseconds()),
		"_pragma=foreign_keys(1)",
		"_pragma=query_only(1)",
	}))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(o.readers)
	r.SetMaxIdleConns(o.readers)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, classify(err)
	}
	s.r = r
	return s, nil
}

// init checks the file and migrates the schema over the writer connection.
func (s *Store) init(ctx context.Context, o options) error {
	if err := s.w.PingContext(ctx); err != nil {
		return classify(err)
	}
	if o.quickCheck {
		if err := quickCheck(ctx, s.w); err != nil {
			return err
		}
	}
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		return err
	}
	return migrate(ctx, s.w, ms)
}

func quickCheck(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return fmt.Errorf("quick_check: %w", classify(err))
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("quick_check: %w", classify(err))
		}
		// One row may hold many problems, one per line.
		for _, p := range strings.Split(line, "\n") {
			if p = strings.TrimSpace(p); p != "ok" && p != "" && !strings.HasPrefix(p, "***") {
				problems = append(problems, p)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("quick_check: %w", classify(err))
	}
	if len(problems) > 0 {
		if len(problems) > 3 {
			problems = append(problems[:3], fmt.Sprintf("and %d more", len(problems)-3))
		}
		return fmt.Errorf("%w: quick_check: %s", ErrCorrupt, strings.Join(problems, "; "))
	}
	return nil
}

// dsn builds a modernc.org/sqlite URI for path. Characters that SQLite's URI
// parser or the driver's query splitting would take for syntax are escaped.
func dsn(path string, params []string) string {
	if path == Memory {
		return Memory + "?" + strings.Join(params, "&")
	}
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + esc + "?" + strings.Join(params, "&")
}

// Close closes the database. Closing the last connection checkpoints the WAL
// into the main file and removes the -wal and -shm files.
func (s *Store) Close() error {
	var errR error
	if s.r != s.w {
		errR = s.r.Close()
	}
	if err := errors.Join(errR, s.w.Close()); err != nil {
		return fmt.Errorf("close database %s: %w", s.path, err)
	}
	return nil
}

// Path returns the path the Store was opened with.
func (s *Store) Path() string { return s.path }

// classify wraps SQLite errors that callers branch on with this package's
// sentinels, keeping the original error in the chain.
func classify(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return fmt.Errorf("%w: %w", ErrLocked, err)
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// MoveAside renames the database at path, and its -wal and -shm files when
// present, to the same names with a UTC timestamp suffix
// (rampart.db → rampart.db.20060102T150405Z), so that a fresh database can be
// created in its place. It never overwrites a file: when the name is taken it
// adds -1, -2, …. It returns the database's new path. The database must not
// be open.
func MoveAside(path string) (string, error) {
	if path == "" || path == Memory {
		return "", fmt.Errorf("move aside %q: not a database file", path)
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	newPath := path + "." + stamp
	for i := 1; exists(newPath) || exists(newPath+"-wal") || exists(newPath+"-shm"); i++ {
		newPath = fmt.Sprintf("%s.%s-%d", path, stamp, i)
	}
	if err := os.Rename(path, newPath); err != nil {
		return "", fmt.Errorf("move aside %s: %w", path, err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		err := os.Rename(path+suffix, newPath+suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return newPath, fmt.Errorf("move aside %s: %w", path+suffix, err)
		}
	}
	return newPath, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Time and address encoding.

var (
	maxNS = time.Unix(0, math.MaxInt64)
	minNS = time.Unix(0, math.MinInt64)
)

// toNS encodes t as unix nanoseconds: the zero time as 0, times outside
// int64 nanoseconds (years 1678–2262) clamped to the range.
func toNS(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.After(maxNS):
		return math.MaxInt64
	case t.Before(minNS):
		return math.MinInt64
	}
	return t.UnixNano()
}

func fromNS(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// endNS encodes a decision's end: NULL when it lasts until revoked.
func endNS(start time.Time, d time.Duration) sql.NullInt64 {
	if d <= 0 {
		return sql.NullInt64{}
	}
	s := toNS(start)
	if s > math.MaxInt64-int64(d) {
		return sql.NullInt64{Int64: math.MaxInt64, Valid: true}
	}
	return sql.NullInt64{Int64: s + int64(d), Valid: true}
}

// normPrefix returns p masked, with an IPv4-mapped IPv6 prefix of /96 or
// longer turned into the IPv4 prefix it covers.
func normPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid target prefix %q", p.String())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	if p.Addr().Zone() != "" {
		p = netip.PrefixFrom(p.Addr().WithZone(""), p.Bits())
	}
	return p.Masked(), nil
}

func normAddr(a netip.Addr) (netip.Addr, error) {
	if !a.IsValid() {
		return netip.Addr{}, errors.New("invalid address")
	}
	return a.Unmap().WithZone(""), nil
}
