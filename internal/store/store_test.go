package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"
)

func openTemp(t testing.TB, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rampart.db")
	s, err := Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// openAtVersion creates a database file with the schema of the first n
// migrations, as an earlier version left it, and returns it and its path.
// The caller fills it and upgrades it (upgraded).
func openAtVersion(t *testing.T, n int) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rampart.db")
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := migrate(context.Background(), db, ms[:n]); err != nil {
		t.Fatal(err)
	}
	return db, path
}

// upgraded closes db, left by openAtVersion, and opens its file as this
// version does, migrating it.
func upgraded(t *testing.T, db *sql.DB, path string) *Store {
	t.Helper()
	db.Close()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func pragma(t testing.TB, s *Store, name string) string {
	t.Helper()
	var v string
	if err := s.w.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func knownVersion(t testing.TB) int {
	t.Helper()
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

func TestOpenFreshAndReopen(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	want := knownVersion(t)
	if v, err := s.SchemaVersion(ctx); err != nil || v != want {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, want)
	}
	for name, want := range map[string]string{
		"journal_mode": "wal",
		"foreign_keys": "1",
		"synchronous":  "2", // FULL
		"busy_timeout": "5000",
	} {
		if got := pragma(t, s, name); got != want {
			t.Errorf("PRAGMA %s = %q, want %q", name, got, want)
		}
	}
	if err := s.SetMeta(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close checkpoints and removes the WAL.
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("-wal after Close: %v", err)
	}

	// Reopening applies nothing and keeps the data.
	for range 2 {
		s2, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if v, err := s2.SchemaVersion(ctx); err != nil || v != want {
			t.Errorf("SchemaVersion after reopen = %d, %v; want %d", v, err, want)
		}
		if v, ok, err := s2.Meta(ctx, "k"); err != nil || !ok || v != "v" {
			t.Errorf("Meta after reopen = %q, %v, %v", v, ok, err)
		}
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenMemory(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Memory)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.r != s.w {
		t.Error("in-memory store should read through its writer connection")
	}
	if err := s.SetMeta(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Meta(ctx, "a"); err != nil || !ok || v != "b" {
		t.Errorf("Meta = %q, %v, %v", v, ok, err)
	}
	if v, _ := s.SchemaVersion(ctx); v != knownVersion(t) {
		t.Errorf("SchemaVersion = %d", v)
	}
}

func TestOpenBadPath(t *testing.T) {
	ctx := context.Background()
	for _, path := range []string{"", filepath.Join(t.TempDir(), "missing", "dir", "x.db")} {
		_, err := Open(ctx, path)
		if err == nil {
			t.Errorf("Open(%q) succeeded", path)
			continue
		}
		if errors.Is(err, ErrCorrupt) {
			t.Errorf("Open(%q) = %v; must not claim corruption", path, err)
		}
	}
}

func TestOpenPathWithURISyntax(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "odd?name#x%20.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetMeta(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not created at the literal path: %v", err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	if _, err := s.w.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
	if errors.Is(err, ErrCorrupt) {
		t.Errorf("a newer schema must not look corrupt: %v", err)
	}
	t.Log(err)
}

func TestMigrationsInOrderAndAtomic(t *testing.T) {
	ctx := context.Background()
	fsys := fstest.MapFS{
		"migrations/0002_b.sql": {Data: []byte("CREATE TABLE b (x REFERENCES a (x)); INSERT INTO b VALUES (1);")},
		"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER PRIMARY KEY); INSERT INTO a VALUES (1);")},
		"migrations/0003_c.sql": {Data: []byte("CREATE TABLE c (x); INSERT INTO nope VALUES (1);")},
	}
	ms, err := loadMigrations(fsys)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Memory)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Start from an empty database on the same connection settings.
	db := s.w
	if _, err := db.Exec("PRAGMA user_version = 0"); err != nil {
		t.Fatal(err)
	}
	err = migrate(ctx, db, ms)
	if err == nil {
		t.Fatal("migrate with a broken 0003 succeeded")
	}
	t.Log(err)
	var v int
	db.QueryRow("PRAGMA user_version").Scan(&v)
	if v != 2 {
		t.Errorf("user_version after failed 0003 = %d, want 2", v)
	}
	var n int
	db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'c'").Scan(&n)
	if n != 0 {
		t.Error("table c from the failed migration survived")
	}
	// Fixing the migration and running again applies only what is missing.
	fsys["migrations/0003_c.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE c (x);")}
	ms, _ = loadMigrations(fsys)
	if err := migrate(ctx, db, ms); err != nil {
		t.Fatal(err)
	}
	db.QueryRow("PRAGMA user_version").Scan(&v)
	if v != 3 {
		t.Errorf("user_version = %d, want 3", v)
	}
	db.QueryRow("SELECT count(*) FROM a").Scan(&n)
	if n != 1 {
		t.Errorf("0001 ran %d times", n)
	}
}

func TestLoadMigrationsRejectsBadSets(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"gap":       {"migrations/0001_a.sql": {}, "migrations/0003_c.sql": {}},
		"duplicate": {"migrations/0001_a.sql": {}, "migrations/0001_b.sql": {}},
		"no number": {"migrations/init.sql": {}},
		"zero":      {"migrations/0000_a.sql": {}},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations succeeded", name)
		}
	}
	if _, err := loadMigrations(migrationFS); err != nil {
		t.Errorf("embedded migrations: %v", err)
	}
}

func TestCorruptGarbage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rampart.db")
	garbage := make([]byte, 8192)
	for i := range garbage {
		garbage[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, path)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open(garbage) = %v, want ErrCorrupt", err)
	}
	t.Log(err)

	// The daemon's recovery: move it aside, start afresh.
	moved, err := MoveAside(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(moved); err != nil || len(b) != len(garbage) {
		t.Errorf("moved file: %d bytes, %v", len(b), err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after MoveAside: %v", err)
	}
	s.Close()
}

func TestCorruptTruncated(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	if _, err := s.RecordDecisions(ctx, manyDecisions(5000, time.Unix(1_700_000_000, 0))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 64<<10 {
		t.Fatalf("database only %d bytes; test needs a multi-page file", fi.Size())
	}
	for _, size := range []int64{fi.Size() / 2, fi.Size()/2 + 1000, 50} {
		t.Run("", func(t *testing.T) {
			cut := filepath.Join(t.TempDir(), "cut.db")
			b, _ := os.ReadFile(path)
			if err := os.WriteFile(cut, b[:size], 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(ctx, cut)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open(truncated to %d of %d bytes) = %v, want ErrCorrupt", size, fi.Size(), err)
			}
			t.Log(err)
		})
	}
}

func TestCorruptQuickCheck(t *testing.T) {
	// A file whose header is fine but whose pages are damaged: only the
	// integrity check can tell.
	ctx := context.Background()
	s, path := openTemp(t)
	if _, err := s.RecordDecisions(ctx, manyDecisions(5000, time.Unix(1_700_000_000, 0))); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	for i := 3 * page; i < len(b)-page; i += 2 * page {
		for j := 0; j < 64; j++ {
			b[i+100+j] ^= 0x5a
		}
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, path)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open(damaged pages) = %v, want ErrCorrupt", err)
	}
	t.Log(err)
}

func TestMoveAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.db")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.WriteFile(path+suffix, []byte("x"+suffix), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	first, err := MoveAside(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", path+suffix, err)
		}
		if b, err := os.ReadFile(first + suffix); err != nil || string(b) != "x"+suffix {
			t.Errorf("%s = %q, %v", first+suffix, b, err)
		}
	}
	// A second move within the same second never overwrites the first.
	if err := os.WriteFile(path, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := MoveAside(path)
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Fatalf("second MoveAside reused %s", first)
	}
	if b, _ := os.ReadFile(first); string(b) != "x" {
		t.Errorf("first moved file overwritten: %q", b)
	}
	if _, err := MoveAside(path); err == nil {
		t.Error("MoveAside of a missing file succeeded")
	}
	if _, err := MoveAside(Memory); err == nil {
		t.Error("MoveAside(:memory:) succeeded")
	}
}

func TestOptionsAndReadOnlyPool(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, WithReaders(1), WithoutQuickCheck(), WithBusyTimeout(time.Second))
	if got := pragma(t, s, "busy_timeout"); got != "1000" {
		t.Errorf("busy_timeout = %s, want 1000", got)
	}
	if _, err := s.r.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('x', 'y')`); err == nil {
		t.Error("the read pool accepted a write")
	}
	if err := s.SetMeta(ctx, "x", "y"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Meta(ctx, "x"); err != nil || !ok || v != "y" {
		t.Errorf("Meta = %q, %v, %v", v, ok, err)
	}
}

// TestReaderNeverCreates deletes the database under an open store: a reader
// connection opened afterwards fails instead of making a new, empty file at
// the path.
func TestReaderNeverCreates(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t, WithReaders(1))
	if err := s.SetMeta(ctx, "x", "y"); err != nil {
		t.Fatal(err)
	}
	s.r.SetMaxIdleConns(0) // every read opens a new connection
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Meta(ctx, "x"); err == nil {
		t.Errorf("read after the file was deleted = %q, %v, want an error", v, ok)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the path after a read: %v, want no file", err)
	}
}
