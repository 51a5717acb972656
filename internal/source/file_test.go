package source

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/logline"
	"github.com/rampart-dev/rampart/internal/logtest"
)

// modes runs a file test with inotify and with polling only.
var modes = []struct {
	name     string
	pollOnly bool
}{
	{"inotify", false},
	{"poll", true},
}

func newFile(path string, pollOnly bool) *File {
	f := &File{Path: path, PollOnly: pollOnly, RotateLinger: 20 * time.Millisecond}
	if pollOnly {
		f.PollInterval = 5 * time.Millisecond
	} else {
		f.PollInterval = time.Second // a safety net only: inotify must do the work
	}
	return f
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// logWriter appends numbered lines to a log file, the way a daemon does,
// while a rotator replaces the file under it. mu makes each rotation
// atomic with respect to writes.
type logWriter struct {
	mu   sync.Mutex
	path string
	f    *os.File
	last int // the number of the last line written
}

func (w *logWriter) open(t testing.TB) {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	w.f = f
}

func (w *logWriter) write(i int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := fmt.Fprintf(w.f, "line %06d %s\n", i, strings.Repeat("x", i%50))
	w.last = i
	return err
}

func lineNumber(msg string) int {
	f := strings.Fields(msg)
	if len(f) < 2 || f[0] != "line" {
		return -1
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return n
}

// rotation styles, each done with w.mu held so that no write falls between
// moving the old file away and the writer using the new one.
var rotations = []struct {
	name   string
	rotate func(t testing.TB, w *logWriter, n int)
	// done reports whether the follower has noticed rotation n (from 1).
	done func(s Stats, n int) bool
}{
	{
		name: "rename",
		rotate: func(t testing.TB, w *logWriter, n int) {
			if err := os.Rename(w.path, fmt.Sprintf("%s.%d", w.path, n)); err != nil {
				t.Error(err)
			}
			w.f.Close()
			w.open(t)
		},
		done: func(s Stats, n int) bool { return s.Rotations >= uint64(n) },
	},
	{
		name: "delete",
		rotate: func(t testing.TB, w *logWriter, n int) {
			if err := os.Remove(w.path); err != nil {
				t.Error(err)
			}
			w.f.Close()
			w.open(t)
		},
		done: func(s Stats, n int) bool { return s.Rotations >= uint64(n) },
	},
	{
		name: "copytruncate",
		rotate: func(t testing.TB, w *logWriter, n int) {
			src, err := os.Open(w.path)
			if err != nil {
				t.Error(err)
				return
			}
			defer src.Close()
			dst, err := os.Create(fmt.Sprintf("%s.%d", w.path, n))
			if err != nil {
				t.Error(err)
				return
			}
			defer dst.Close()
			if _, err := io.Copy(dst, src); err != nil {
				t.Error(err)
			}
			if err := w.f.Truncate(0); err != nil {
				t.Error(err)
			}
		},
		done: func(s Stats, n int) bool { return s.Truncations >= uint64(n) },
	},
}

// TestFileRotation proves each rotation style loses and repeats nothing
// while a writer appends without pause: the writer runs on through every
// rotation, stopping only before the next one until the follower has
// noticed the last (rotations are hours apart in life; two before the
// follower looks would hide a whole file from any follower).
func TestFileRotation(t *testing.T) {
	const (
		total    = 4000
		rotateAt = 800 // a rotation every rotateAt lines
	)
	for _, rot := range rotations {
		for _, mode := range modes {
			t.Run(rot.name+"/"+mode.name, func(t *testing.T) {
				dir := t.TempDir()
				w := &logWriter{path: filepath.Join(dir, "app.log")}
				w.open(t)
				defer func() { w.f.Close() }()
				col := newCollector()
				f := newFile(w.path, mode.pollOnly)
				start(t, f, col.emit)
				// The follower starts at the end: wait until it sees a first
				// line before writing the numbered ones.
				waitUntilFollowing(t, w.path, col)

				rotate := make(chan struct{}, total/rotateAt+1)
				var rotated atomic.Int64
				var wg sync.WaitGroup
				wg.Go(func() { // the rotator
					n := 0
					for range rotate {
						n++
						w.mu.Lock()
						if rot.name == "copytruncate" {
							// logrotate's own window: what the follower has not read
							// before the truncation is lost to it. Close the window.
							if _, err := col.await("lines before truncation", func(ls []logline.Line) bool {
								return len(ls) > 0 && lineNumber(ls[len(ls)-1].Message) == w.last
							}); err != nil {
								t.Error(err)
							}
						}
						rot.rotate(t, w, n)
						w.mu.Unlock()
						rotated.Add(1)
					}
				})
				for i := range total {
					switch n := i / rotateAt; {
					case i == 0:
					case i%rotateAt == 0:
						if n > 1 {
							waitFor(t, fmt.Sprintf("rotation %d noticed", n-1), func() bool { return rot.done(f.Stats(), n-1) })
						}
						rotate <- struct{}{}
					case i%rotateAt == rotateAt/2 && n > 0:
						// Half the lines race the rotation, half the follower noticing it.
						waitFor(t, fmt.Sprintf("rotation %d done", n), func() bool { return rotated.Load() >= int64(n) })
					}
					if err := w.write(i); err != nil {
						t.Fatal(err)
					}
				}
				close(rotate)
				wg.Wait()
				ls := col.waitLines(t, "the last line", func(ls []logline.Line) bool {
					return len(ls) > 0 && lineNumber(ls[len(ls)-1].Message) == total-1
				})
				got := make([]int, 0, total)
				for _, l := range ls {
					if n := lineNumber(l.Message); n >= 0 { // not a probe
						got = append(got, n)
					}
				}
				checkSequence(t, got, total)
				waitFor(t, "the last rotation noticed", func() bool { return rot.done(f.Stats(), total/rotateAt-1) })
				if s := f.Stats(); s.Rotations+s.Truncations != total/rotateAt-1 {
					t.Errorf("stats %+v: want %d rotations", s, total/rotateAt-1)
				}
			})
		}
	}
}

// waitUntilFollowing writes probe lines until the follower emits one: it
// starts at the end of the file, so earlier writes could fall before it.
func waitUntilFollowing(t testing.TB, path string, col *collector) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for i := 0; ; i++ {
		appendFile(t, path, fmt.Sprintf("probe %d\n", i))
		ls, changed := col.snapshot()
		if len(ls) > 0 {
			return
		}
		select {
		case <-changed:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("follower never started")
		}
	}
}

// checkSequence checks that got is 0, 1, …, total-1.
func checkSequence(t testing.TB, got []int, total int) {
	t.Helper()
	if len(got) == total {
		ok := true
		for i, n := range got {
			if n != i {
				ok = false
				break
			}
		}
		if ok {
			return
		}
	}
	seen := make(map[int]int)
	for _, n := range got {
		seen[n]++
	}
	var missing, repeated []int
	for i := range total {
		switch seen[i] {
		case 0:
			missing = append(missing, i)
		case 1:
		default:
			repeated = append(repeated, i)
		}
	}
	out := 0
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			out++
		}
	}
	t.Errorf("got %d lines, want %d: missing %v, repeated %v, %d out of order", len(got), total, head(missing), head(repeated), out)
}

func head(s []int) []int {
	if len(s) > 20 {
		return s[:20]
	}
	return s
}

// TestFilePartialLines: the last line is held back until its newline
// comes, and emitted unfinished only when the file goes away under it.
func TestFilePartialLines(t *testing.T) {
	tests := []struct {
		name  string
		steps func(t *testing.T, path string, col *collector)
		want  []string
	}{
		{
			name: "completed later",
			steps: func(t *testing.T, path string, col *collector) {
				appendFile(t, path, "a1\npart")
				col.waitCount(t, 1)
				appendFile(t, path, "ial\n")
				col.waitCount(t, 2)
			},
			want: []string{"a1", "partial"},
		},
		{
			name: "rotated away unfinished",
			steps: func(t *testing.T, path string, col *collector) {
				appendFile(t, path, "x1\nunfinished")
				col.waitCount(t, 1)
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
				appendFile(t, path, "y1\n")
				col.waitCount(t, 3)
			},
			want: []string{"x1", "y1", "unfinished"}, // the old file lingers for late writes first
		},
		{
			name: "truncated unfinished",
			steps: func(t *testing.T, path string, col *collector) {
				appendFile(t, path, "x1\nunfin")
				col.waitCount(t, 1)
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
				appendFile(t, path, "y1\n")
				col.waitCount(t, 3)
			},
			want: []string{"x1", "unfin", "y1"},
		},
		{
			name: "blank and CRLF lines",
			steps: func(t *testing.T, path string, col *collector) {
				appendFile(t, path, "\n\r\nwin\r\n\nz\n")
				col.waitCount(t, 2)
			},
			want: []string{"win", "z"},
		},
	}
	for _, tt := range tests {
		for _, mode := range modes {
			t.Run(tt.name+"/"+mode.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "app.log")
				appendFile(t, path, "")
				col := newCollector()
				f := newFile(path, mode.pollOnly)
				f.Start = &Position{} // names no file: read from the start
				stop := start(t, f, col.emit)
				tt.steps(t, path, col)
				stop()
				if got := col.messages(); !slices.Equal(got, tt.want) {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func TestFilePositionExcludesPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, path, "")
	col := newCollector()
	f := newFile(path, false)
	start(t, f, col.emit)
	waitFor(t, "file opened", func() bool { return f.Position().Inode != 0 })
	appendFile(t, path, "one\ntw")
	col.waitCount(t, 1)
	if got := f.Position().Offset; got != 4 {
		t.Errorf("offset with a partial line held back = %d, want 4", got)
	}
	appendFile(t, path, "o\n")
	col.waitCount(t, 2)
	if got := f.Position().Offset; got != 8 {
		t.Errorf("offset = %d, want 8", got)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	p := f.Position()
	if p.Dev != uint64(st.Dev) || p.Inode != st.Ino || p.HeadLen != 8 || p.HeadHash != headHash([]byte("one\ntwo\n")) {
		t.Errorf("position %v does not name the file (dev %d inode %d)", p, st.Dev, st.Ino)
	}
}

func TestFileStartsAtEnd(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.log")
			appendFile(t, path, "old1\nold2\nhalf")
			col := newCollector()
			f := newFile(path, mode.pollOnly)
			start(t, f, col.emit)
			waitFor(t, "file opened", func() bool { return f.Position().Inode != 0 })
			appendFile(t, path, "line\nnew1\n")
			col.waitCount(t, 2)
			if got, want := col.messages(), []string{"halfline", "new1"}; !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// TestFileResume restarts a follower from the Position an earlier one
// reported, after the file changed in between.
func TestFileResume(t *testing.T) {
	tests := []struct {
		name string
		// change alters the file while no follower runs.
		change func(t *testing.T, path string)
		want   []string
	}{
		{
			name:   "appended",
			change: func(t *testing.T, path string) { appendFile(t, path, "l3\nl4\n") },
			want:   []string{"l3", "l4"},
		},
		{
			name: "rotated by rename",
			change: func(t *testing.T, path string) {
				appendFile(t, path, "lost\n") // in the old file: a follower that was down cannot know
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
				appendFile(t, path, "n1\nn2\n")
			},
			want: []string{"n1", "n2"},
		},
		{
			name: "rewritten in place, longer",
			change: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte("r1 other text\nr2 more text\nr3\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"r1 other text", "r2 more text", "r3"},
		},
		{
			name: "truncated below the offset",
			change: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte("z\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"z"},
		},
		{
			name:   "unchanged",
			change: func(t *testing.T, path string) {},
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.log")
			appendFile(t, path, "")
			col := newCollector()
			f1 := newFile(path, false)
			stop := start(t, f1, col.emit)
			waitFor(t, "file opened", func() bool { return f1.Position().Inode != 0 })
			appendFile(t, path, "l1\nl2\n")
			col.waitCount(t, 2)
			stop()
			saved := f1.Position()

			tt.change(t, path)
			col2 := newCollector()
			f2 := newFile(path, false)
			f2.Start = &saved
			stop = start(t, f2, col2.emit)
			appendFile(t, path, "end\n")
			col2.waitLines(t, "end", func(ls []logline.Line) bool {
				return len(ls) > 0 && ls[len(ls)-1].Message == "end"
			})
			stop()
			if got, want := col2.messages(), append(slices.Clone(tt.want), "end"); !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// TestFileMissing waits for a file, and its directory, to appear, and says
// so once in the log however long that takes.
func TestFileMissing(t *testing.T) {
	for _, mode := range modes {
		for _, missingDir := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/missing_dir=%v", mode.name, missingDir), func(t *testing.T) {
				dir := t.TempDir()
				logDir := dir
				if missingDir {
					logDir = filepath.Join(dir, "later")
				}
				path := filepath.Join(logDir, "app.log")
				var logs logtest.Buffer
				col := newCollector()
				f := newFile(path, mode.pollOnly)
				f.PollInterval = 5 * time.Millisecond
				f.Logger = testLogger(&logs)
				start(t, f, col.emit)
				waitFor(t, "missing file reported", func() bool { return strings.Contains(logs.String(), "missing, waiting") })
				// Not synchronisation: time for a good many more looks, which
				// must not report the absence again.
				<-time.After(20 * f.PollInterval)
				if err := os.MkdirAll(logDir, 0o755); err != nil {
					t.Fatal(err)
				}
				appendFile(t, path, "first\nsecond\n")
				col.waitCount(t, 2)
				if got, want := col.messages(), []string{"first", "second"}; !slices.Equal(got, want) {
					t.Errorf("got %q, want %q", got, want)
				}
				if n := strings.Count(logs.String(), "missing, waiting"); n != 1 {
					t.Errorf("missing file reported %d times, want once:\n%s", n, logs.String())
				}
				if ls, _ := col.snapshot(); ls[0].Origin != path {
					t.Errorf("origin %q, want %q", ls[0].Origin, path)
				}
			})
		}
	}
}

func TestFileLongLines(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.log")
			appendFile(t, path, "")
			col := newCollector()
			f := newFile(path, mode.pollOnly)
			f.Start = &Position{}
			start(t, f, col.emit)
			// A whole long line, then one arriving in pieces.
			appendFile(t, path, strings.Repeat("a", logline.MaxLen+10)+"\nok1\n"+strings.Repeat("b", logline.MaxLen)+"\n")
			col.waitCount(t, 2)
			appendFile(t, path, strings.Repeat("c", logline.MaxLen+100))
			waitFor(t, "long partial line counted", func() bool { return f.Stats().TooLong == 2 })
			appendFile(t, path, strings.Repeat("c", 70000)+"rest\nok2\n")
			col.waitCount(t, 3)
			got := col.messages()
			if len(got) != 3 || got[0] != "ok1" || len(got[1]) != logline.MaxLen || got[2] != "ok2" {
				t.Errorf("got %d lines %.40q", len(got), got)
			}
			if s := f.Stats(); s.TooLong != 2 || s.Lines != 3 {
				t.Errorf("stats %+v, want TooLong 2, Lines 3", s)
			}
		})
	}
}

func TestFileSkipsAndCounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, path, "")
	col := newCollector()
	f := newFile(path, false)
	f.Start = &Position{}
	f.Parser = &logline.Parser{Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }}
	start(t, f, col.emit)
	appendFile(t, path, "bin\x00ary\n2030-01-01T00:00:00Z host sshd[1]: future\n\nok\n")
	col.waitCount(t, 1)
	want := Stats{Lines: 1, Binary: 1, Future: 1, Empty: 1}
	waitFor(t, "counts", func() bool { return f.Stats() == want })
}

// TestFileDeletedLetGo: a file deleted with nothing in its place is closed
// after RotateLinger (its disk space must be freed), its unfinished line
// emitted; a file created later is read from its start.
func TestFileDeletedLetGo(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.log")
			appendFile(t, path, "")
			col := newCollector()
			f := newFile(path, mode.pollOnly)
			start(t, f, col.emit)
			waitFor(t, "file opened", func() bool { return f.Position().Inode != 0 })
			appendFile(t, path, "a\nunfinished")
			col.waitCount(t, 1)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "deleted file closed", func() bool { return !holdsOpen(t, path) })
			appendFile(t, path, "b\n")
			col.waitCount(t, 3)
			if got, want := col.messages(), []string{"a", "unfinished", "b"}; !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// holdsOpen reports whether this process has path open, deleted or not.
func holdsOpen(t *testing.T, path string) bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.TrimSuffix(target, " (deleted)") == path {
			return true
		}
	}
	return false
}

// TestFileReadClock: the lines of one read share one reading of the
// parser's clock, as their Read and as the "now" their year-less stamps
// are dated by; the next read takes a new reading.
func TestFileReadClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, path, "")
	var mu sync.Mutex
	var readings []time.Time
	// Each reading is a year later: a stamp of Dec 31 falls in the year
	// before the reading's.
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		readings = append(readings, time.Date(2030+len(readings), 1, 1, 0, 0, 0, 0, time.UTC))
		return readings[len(readings)-1]
	}
	col := newCollector()
	f := newFile(path, true)
	f.Start = &Position{}
	f.Parser = &logline.Parser{Location: time.UTC, Now: clock}
	start(t, f, col.emit)
	appendFile(t, path, "Dec 31 23:59:59 host sshd[1]: one\nDec 31 23:59:59 host sshd[1]: two\nDec 31 23:59:59 host sshd[1]: three\n")
	col.waitCount(t, 3)
	appendFile(t, path, "Dec 31 23:59:59 host sshd[1]: four\n")
	col.waitCount(t, 4)
	ls, _ := col.snapshot()
	mu.Lock()
	n := len(readings)
	mu.Unlock()
	if n != 2 {
		t.Fatalf("%d clock readings for two reads, want 2", n)
	}
	for i, l := range ls {
		want := readings[0]
		if i == 3 {
			want = readings[1]
		}
		if !l.Read.Equal(want) {
			t.Errorf("line %d (%s): Read %v, want %v", i, l.Message, l.Read, want)
		}
		if y := l.Time.Year(); y != want.Year()-1 {
			t.Errorf("line %d (%s): dated to %d, want %d", i, l.Message, y, want.Year()-1)
		}
	}
}
