package action

// The SQL sink writes events to the operator's own database, not to
// Rampart's store: it is an output like a webhook, so it lives with the
// other actions rather than in package store, which owns Rampart's schema.

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// SQL inserts events into a table of a SQLite file or a PostgreSQL
// database, creating the table when it is missing; the events waiting
// together go in one transaction. A database that is down is tried again
// at the next event (the events of a failed batch are counted failed).
type SQL struct {
	db     *sql.DB
	driver string // sqlite, postgres
	table  string // checked by the configuration: [a-z_][a-z0-9_]*

	mu    sync.Mutex
	ready bool // the table exists
}

// OpenSQL opens the database (without connecting yet).
func OpenSQL(driver, dsn, table string) (*SQL, error) {
	name := map[string]string{"sqlite": "sqlite", "postgres": "pgx"}[driver]
	if name == "" {
		return nil, fmt.Errorf("unknown SQL driver %q", driver)
	}
	if driver == "sqlite" {
		dsn = "file:" + dsn + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
	}
	db, err := sql.Open(name, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &SQL{db: db, driver: driver, table: table}, nil
}

// columns are the table's, in the order the events' values are written.
var columns = []string{"time", "type", "ip", "jail", "scenario", "reason", "duration_s", "origin", "host",
	"reporter", "kind", "target", "destination"}

func (s *SQL) create(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		return nil
	}
	id, ts := "id INTEGER PRIMARY KEY", "TEXT"
	if s.driver == "postgres" {
		id, ts = "id BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ"
	}
	ddl := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (%s, time %s NOT NULL, type TEXT NOT NULL, ip TEXT NOT NULL,
		jail TEXT NOT NULL, scenario TEXT NOT NULL, reason TEXT NOT NULL, duration_s BIGINT NOT NULL, origin TEXT NOT NULL,
		host TEXT NOT NULL, reporter TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL, destination TEXT NOT NULL)`,
		s.table, id, ts)
	if _, err := s.db.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("create table %s: %w", s.table, err)
	}
	s.ready = true
	return nil
}

func (s *SQL) insert() string {
	ph := make([]string, len(columns))
	for i := range ph {
		ph[i] = "?"
		if s.driver == "postgres" {
			ph[i] = fmt.Sprintf("$%d", i+1)
		}
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", s.table, strings.Join(columns, ", "), strings.Join(ph, ", "))
}

func (s *SQL) Handle(ctx context.Context, ev Event) error { return s.HandleBatch(ctx, []Event{ev}) }

// HandleBatch inserts evs in one transaction.
func (s *SQL) HandleBatch(ctx context.Context, evs []Event) error {
	if err := s.create(ctx); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, s.insert())
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, ev := range evs {
		var t any = ev.Time.UTC()
		if s.driver == "sqlite" {
			t = ev.Time.UTC().Format(time.RFC3339Nano)
		}
		if _, err := stmt.ExecContext(ctx, t, ev.Type, ev.IP, ev.Jail, ev.Scenario, strings.ToValidUTF8(ev.Reason, "?"), ev.DurationS,
			ev.Origin, ev.Host, ev.Reporter, ev.Kind, ev.Target, ev.Destination); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Close closes the database.
func (s *SQL) Close() error { return s.db.Close() }
