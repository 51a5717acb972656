package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rampart-dev/rampart/internal/logline"
)

// headSize is how many leading bytes of a file identify it in a Position.
const headSize = 1024

// Position is where a File has got to in the file at its path, in a form
// that can be saved and given back as File.Start after a restart.
type Position struct {
	Dev    uint64 // device of the file
	Inode  uint64 // inode of the file
	Offset int64  // just after the last record emitted or skipped

	// HeadLen leading bytes of the file (at most 1 KiB, fewer while the
	// file is shorter) hash to HeadHash: the first 8 bytes of their SHA-256,
	// big-endian. A file at the same device and inode with other leading
	// bytes is a different file.
	HeadLen  int
	HeadHash uint64
}

// File follows the log file at Path as it grows, across rotation by rename,
// by copy and truncate, and by delete and recreate.
//
// A record is a line. The last line is held back until its newline arrives,
// unless the file is rotated away or truncated with it unfinished, when it
// is emitted as it is. Lines longer than logline.MaxLen are skipped and
// counted. A missing file is waited for; it is reported once through
// Logger and read from its start when it appears.
//
// Changes are noticed through inotify on the file's directory, and by
// polling every PollInterval, which also covers anything inotify misses.
type File struct {
	Path   string
	Origin string          // Line.Origin; Path when empty
	Parser *logline.Parser // nil: a zero Parser
	Logger *slog.Logger    // nil: silent

	// Start is where to resume. It is used when it names the file found at
	// Path (same device, inode and leading bytes, and no shorter than
	// Start.Offset); any other file is read from its start. When Start is
	// nil, reading starts at the end of the file (at its last full line),
	// or at the start of a file that only appears later.
	Start *Position

	PollInterval time.Duration // default 1s
	PollOnly     bool          // do not use inotify

	// RotateLinger is how long a file rotated away is still read for
	// records written to it late, by a daemon that has not reopened its log
	// yet; its unfinished last line is emitted when the time is up. A file
	// deleted with nothing in its place is let go once it has not grown for
	// as long, so that its disk space is freed. The default is 5s.
	RotateLinger time.Duration

	mu  sync.Mutex
	pos Position
	c   counters
}

// Position returns the position after the last line emitted (or skipped as
// unusable) by Run. It excludes a partial last line being held back, so a
// Run started from it reads that line whole. It is safe to call while Run
// is going. Before Run has opened a file it returns Start, or the zero
// Position.
func (f *File) Position() Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pos == (Position{}) && f.Start != nil {
		return *f.Start
	}
	return f.pos
}

// Stats returns the counts so far; it is safe to call while Run is going.
func (f *File) Stats() Stats { return f.c.stats() }

// Problem says why the file is not being read now: "missing" while there is
// no file at Path, "unreadable: …" while it cannot be opened, "read error:
// …" after a failed read. It is "" while the file is read. It is safe to
// call while Run is going.
func (f *File) Problem() string { return f.c.Problem() }

// Run follows the file until ctx is cancelled and returns nil then. A
// file that is missing or unreadable is waited for, not an error. Run must
// not be called twice at the same time.
func (f *File) Run(ctx context.Context, emit func(logline.Line)) error {
	fl := &follower{
		File:   f,
		path:   filepath.Clean(f.Path),
		origin: f.Origin,
		log:    logger(f.Logger).With("path", f.Path),
		emit:   emit,
		linger: f.RotateLinger,
	}
	fl.clock, fl.parser = newReadClock(parser(f.Parser))
	if fl.origin == "" {
		fl.origin = f.Path
	}
	if fl.linger <= 0 {
		fl.linger = 5 * time.Second
	}
	interval := f.PollInterval
	if interval <= 0 {
		interval = time.Second
	}
	defer fl.close()
	if !f.PollOnly {
		fl.watch()
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		fl.step(ctx)
		if !fl.wait(ctx, ticker.C) {
			return nil
		}
	}
}

// follower is the state of one File.Run.
type follower struct {
	*File
	path, origin string
	clock        *readClock      // read at each read that returns data
	parser       *logline.Parser // dates by clock's readings
	log          *slog.Logger
	emit         func(logline.Line)
	linger       time.Duration

	cur        *tailFile // the file at path, nil while there is none
	unlinkedAt time.Time // when cur was last seen growing after it was deleted with nothing in its place
	old        *tailFile // the file rotated away, read for late writes
	oldUntil   time.Time // when to stop reading old
	opened     bool      // a file has been opened before
	missing    bool      // the file was missing when first looked for
	reported   bool      // the file's absence or unreadability was logged
	readErred  bool      // a read error was logged

	w        *fsnotify.Watcher // nil when polling only
	watching bool              // the directory is being watched
}

// tailFile is one open file being read.
type tailFile struct {
	f        *os.File
	dev, ino uint64
	off      int64  // after the last record handled: the Position offset
	readOff  int64  // how far the file has been read
	buf      []byte // the unfinished last line, with room to read into
	skipping bool   // discarding the rest of an over-long line
	head     []byte // the file's leading bytes as last seen, at most headSize
	headSum  uint64 // headHash(head)
}

func (fl *follower) watch() {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		fl.log.Info("inotify unavailable, polling", "err", err)
		return
	}
	fl.w = w
	fl.addWatch()
}

// addWatch watches the file's directory unless it is already watched. The
// directory may not exist yet, or may have been removed and made again;
// polling covers the time until it is watched.
func (fl *follower) addWatch() {
	if fl.w == nil {
		return
	}
	dir := filepath.Dir(fl.path)
	if fl.watching {
		for _, p := range fl.w.WatchList() {
			if p == dir {
				return
			}
		}
	}
	fl.watching = fl.w.Add(dir) == nil
}

// wait blocks until something may have changed (an inotify event for the
// path, a tick) or a rotated file is to be let go. It returns false when
// ctx is cancelled.
func (fl *follower) wait(ctx context.Context, tick <-chan time.Time) bool {
	var events <-chan fsnotify.Event
	var errs <-chan error
	if fl.w != nil {
		events, errs = fl.w.Events, fl.w.Errors
	}
	var until time.Time // when a file being let go is to be closed
	if fl.old != nil {
		until = fl.oldUntil
	}
	if !fl.unlinkedAt.IsZero() && (until.IsZero() || fl.unlinkedAt.Add(fl.linger).Before(until)) {
		until = fl.unlinkedAt.Add(fl.linger)
	}
	var lingerEnd <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		lingerEnd = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick:
			fl.addWatch()
			return true
		case <-lingerEnd:
			return true
		case ev, ok := <-events:
			if !ok {
				events = nil
			} else if ev.Name == fl.path {
				return true
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflow loses events, not data: the next step reads all
			// there is. Other errors leave polling to do the work.
			fl.log.Debug("inotify", "err", err)
			return true
		}
	}
}

func (fl *follower) close() {
	if fl.w != nil {
		fl.w.Close()
	}
	if fl.old != nil {
		fl.old.f.Close()
	}
	if fl.cur != nil {
		fl.cur.f.Close()
	}
}

// step reads whatever is new: late lines in a rotated file, then the current
// file, then, if the path now names another file, the rest of the current
// one before switching to the new one.
func (fl *follower) step(ctx context.Context) {
	if fl.old != nil {
		fl.read(ctx, fl.old, false)
		if !time.Now().Before(fl.oldUntil) {
			fl.retire(fl.old)
			fl.old = nil
		}
	}
	if fl.cur == nil {
		if fl.cur = fl.open(); fl.cur == nil {
			return
		}
	}
	for range 3 { // bounded: the path could be replaced on every look
		fl.checkTruncated(fl.cur)
		before := fl.cur.readOff
		fl.read(ctx, fl.cur, true)
		if ctx.Err() != nil {
			return
		}
		grew := fl.cur.readOff != before
		st, err := os.Stat(fl.path)
		if err == nil && sameFile(st, fl.cur) {
			fl.unlinkedAt = time.Time{}
			return
		}
		if err != nil {
			// Missing: the file was removed or renamed and nothing took its
			// place yet. Keep reading the old file until something does,
			// unless it was deleted and is no longer written to: then let it
			// go after RotateLinger, so that its disk space is freed.
			if !fl.unlinked(fl.cur) {
				return
			}
			if fl.unlinkedAt.IsZero() || grew {
				fl.unlinkedAt = time.Now()
			} else if time.Since(fl.unlinkedAt) >= fl.linger {
				fl.retire(fl.cur)
				fl.cur, fl.unlinkedAt = nil, time.Time{}
			}
			return
		}
		fl.unlinkedAt = time.Time{}
		// Rotated: whatever was written to the old file before the new
		// one appeared is there now.
		fl.read(ctx, fl.cur, true)
		next := fl.open()
		if next == nil {
			return
		}
		if next.dev == fl.cur.dev && next.ino == fl.cur.ino {
			next.f.Close() // replaced again and back: nothing changed
			fl.setPos(fl.cur, true)
			return
		}
		fl.c.rotations.Add(1)
		if fl.old != nil {
			fl.retire(fl.old)
		}
		fl.old, fl.oldUntil = fl.cur, time.Now().Add(fl.linger)
		fl.cur = next
	}
}

// open opens the file at path and decides where to start reading it. It
// returns nil when there is no readable file.
func (fl *follower) open() *tailFile {
	f, err := os.Open(fl.path)
	if err != nil {
		if !fl.opened && errors.Is(err, fs.ErrNotExist) {
			fl.missing = true
		}
		if errors.Is(err, fs.ErrNotExist) {
			fl.c.setProblem("missing")
		} else {
			fl.c.setProblem("unreadable: " + err.Error())
		}
		if !fl.reported {
			fl.reported = true
			if errors.Is(err, fs.ErrNotExist) {
				fl.log.Warn("log file missing, waiting for it")
			} else {
				fl.log.Warn("log file unreadable, retrying", "err", err)
			}
		}
		return nil
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		fl.c.setProblem("unreadable: " + err.Error())
		return nil
	}
	fl.c.setProblem("")
	t := &tailFile{f: f, buf: make([]byte, 0, logline.MaxLen+64<<10)}
	t.dev, t.ino = fileID(st)
	t.readHead()
	switch {
	case fl.opened:
		// A new file after rotation: all of it is new.
	case fl.Start != nil:
		if fl.resumable(t, st.Size()) {
			t.off, t.readOff = fl.Start.Offset, fl.Start.Offset
		} else {
			fl.log.Info("saved position names another file, reading from the start")
		}
	case !fl.missing:
		t.off, t.readOff, t.skipping = lastLineEnd(f, st.Size())
	}
	if fl.reported {
		fl.log.Info("log file found")
		fl.reported = false
	}
	fl.opened = true
	fl.setPos(t, true)
	return t
}

// resumable reports whether Start names t.
func (fl *follower) resumable(t *tailFile, size int64) bool {
	s := fl.Start
	if s.Dev != t.dev || s.Inode != t.ino || s.Offset > size || s.Offset < 0 || s.HeadLen > len(t.head) || s.HeadLen < 0 {
		return false
	}
	return headHash(t.head[:s.HeadLen]) == s.HeadHash
}

// lastLineEnd returns where a file of the given size ends its last full
// line, to start reading there; it skips an unfinished last line too long
// to keep.
func lastLineEnd(f *os.File, size int64) (off, readOff int64, skipping bool) {
	n := min(size, logline.MaxLen+1)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return size, size, false
	}
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		end := size - n + int64(i) + 1
		return end, end, false
	}
	if size > logline.MaxLen {
		return size, size, true
	}
	return 0, 0, false
}

// checkTruncated starts t over from the start when the file shrank below
// what was read, or its leading bytes changed (copytruncate followed by
// enough writes to hide the shrinking).
func (fl *follower) checkTruncated(t *tailFile) {
	st, err := t.f.Stat()
	if err != nil {
		return
	}
	if st.Size() >= t.readOff && t.readHead() {
		fl.setPos(t, true)
		return
	}
	fl.flush(t)
	fl.c.truncations.Add(1)
	t.off, t.readOff, t.skipping, t.head = 0, 0, false, t.head[:0]
	t.readHead()
	fl.setPos(t, true)
}

// readHead reads the file's leading bytes and reports whether they still
// begin with those seen before.
func (t *tailFile) readHead() bool {
	var b [headSize]byte
	n, err := t.f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return true // cannot tell; the size check still works
	}
	if !bytes.HasPrefix(b[:n], t.head) {
		return false
	}
	if n > len(t.head) || len(t.head) == 0 {
		t.head = append(t.head[:0], b[:n]...)
		t.headSum = headHash(t.head)
	}
	return true
}

// read reads t to its end, emitting every full line.
func (fl *follower) read(ctx context.Context, t *tailFile, current bool) {
	for ctx.Err() == nil {
		n, err := t.f.ReadAt(t.buf[len(t.buf):cap(t.buf)], t.readOff)
		if n > 0 {
			fl.clock.read()
			if fl.readErred {
				fl.readErred = false
				fl.c.setProblem("")
			}
			t.readOff += int64(n)
			fl.lines(t, t.buf[:len(t.buf)+n], current)
		}
		if err != nil || n == 0 {
			if err != nil && !errors.Is(err, io.EOF) && !fl.readErred {
				fl.readErred = true
				fl.c.setProblem("read error: " + err.Error())
				fl.log.Warn("read log file", "err", err)
			}
			return
		}
	}
}

// lines handles the full lines in data, which ends at t.readOff, and keeps
// the unfinished rest in t.buf.
func (fl *follower) lines(t *tailFile, data []byte, current bool) {
	base := t.readOff - int64(len(data))
	start := 0
	for {
		i := bytes.IndexByte(data[start:], '\n')
		if i < 0 {
			break
		}
		rec := data[start : start+i]
		start += i + 1
		if t.skipping {
			t.skipping = false
		} else {
			fl.record(rec)
		}
		t.off = base + int64(start)
		if current {
			fl.setPos(t, false)
		}
	}
	rest := data[start:]
	if !t.skipping && len(rest) > logline.MaxLen {
		fl.c.tooLong.Add(1)
		t.skipping = true
	}
	if t.skipping {
		rest = nil
	}
	t.buf = t.buf[:copy(t.buf[:cap(t.buf)], rest)]
}

// record parses and emits one line.
func (fl *follower) record(rec []byte) {
	if len(rec) > logline.MaxLen {
		fl.c.tooLong.Add(1)
		return
	}
	l, err := fl.parser.Parse(string(rec))
	l.Read = fl.clock.at
	fl.c.deliver(l, err, fl.origin, fl.emit)
}

// flush emits t's unfinished last line, which will not be finished in the
// file as Run knows it.
func (fl *follower) flush(t *tailFile) {
	if len(t.buf) > 0 && !t.skipping {
		fl.record(t.buf)
	}
	t.buf = t.buf[:0]
}

// retire emits the unfinished last line of a file rotated away and closes it.
func (fl *follower) retire(t *tailFile) {
	fl.flush(t)
	t.f.Close()
}

// setPos records t's offset, and with ident its identity, as the Position.
func (fl *follower) setPos(t *tailFile, ident bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.pos.Offset = t.off
	if ident {
		fl.pos.Dev, fl.pos.Inode = t.dev, t.ino
		fl.pos.HeadLen, fl.pos.HeadHash = len(t.head), t.headSum
	}
}

func headHash(b []byte) uint64 {
	sum := sha256.Sum256(b)
	return binary.BigEndian.Uint64(sum[:8])
}

func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino)
	}
	return 0, 0
}

// unlinked reports whether t's file has been deleted.
func (fl *follower) unlinked(t *tailFile) bool {
	fi, err := t.f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 0
}

func sameFile(fi fs.FileInfo, t *tailFile) bool {
	dev, ino := fileID(fi)
	return dev == t.dev && ino == t.ino
}

// String describes a Position for logs.
func (p Position) String() string {
	return fmt.Sprintf("dev=%d inode=%d offset=%d head=%d:%016x", p.Dev, p.Inode, p.Offset, p.HeadLen, p.HeadHash)
}
