package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rampart-dev/rampart/internal/logline"
)

// journalFields are the fields asked of journalctl: what logline reads,
// which keeps entries short (each field asked for costs journalctl a few
// per cent more under a flood). __CURSOR and __REALTIME_TIMESTAMP come
// always. Units are chosen by journalctl's matches (-u), not read.
const journalFields = "MESSAGE,SYSLOG_IDENTIFIER,_COMM,_PID,SYSLOG_PID,_HOSTNAME"

// Journal reads the systemd journal through `journalctl --follow
// --output=export`, run as a child process (no cgo). It keeps the cursor of
// the last record read, to be saved and given back as AfterCursor. When
// journalctl exits while Run is going, it is started again after a
// back-off, from that cursor.
type Journal struct {
	Command     string   // journalctl's path; "journalctl" when empty
	Units       []string // -u UNIT filters: a record must match one of them
	Identifiers []string // -t IDENTIFIER filters: and one of these
	// Matches are journalctl's match expressions (FIELD=VALUE, "+"
	// between alternatives), after the options; and they must hold too.
	// The caller checks them (config does): a term must not start with "-".
	Matches []string
	Args    []string // more arguments, such as "--directory=/var/log/journal" or "--file=F"

	// AfterCursor resumes after the record with this cursor. Empty starts
	// at the end of the journal.
	AfterCursor string

	Parser *logline.Parser // nil: a zero Parser
	Logger *slog.Logger    // nil: silent

	MinBackoff time.Duration // first wait before a restart; default 1s
	MaxBackoff time.Duration // longest wait; default 1m

	mu     sync.Mutex
	cursor string
	c      counters
}

// Cursor returns the cursor of the last record read (emitted or skipped),
// or AfterCursor before the first. It is safe to call while Run is going.
func (j *Journal) Cursor() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cursor == "" {
		return j.AfterCursor
	}
	return j.cursor
}

// Stats returns the counts so far; it is safe to call while Run is going.
func (j *Journal) Stats() Stats { return j.c.stats() }

// Problem says why the journal is not being read now ("journalctl exited:
// …" while Run waits to start it again), "" while it is. It is safe to call
// while Run is going.
func (j *Journal) Problem() string { return j.c.Problem() }

// Run reads the journal until ctx is cancelled, then stops journalctl and
// returns nil. It returns an error only when journalctl cannot be found.
func (j *Journal) Run(ctx context.Context, emit func(logline.Line)) error {
	cmdPath := j.Command
	if cmdPath == "" {
		cmdPath = "journalctl"
	}
	cmdPath, err := exec.LookPath(cmdPath)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	minB, maxB := j.MinBackoff, j.MaxBackoff
	if minB <= 0 {
		minB = time.Second
	}
	if maxB < minB {
		maxB = max(minB, time.Minute)
	}
	r := &journalRun{
		Journal: j,
		path:    cmdPath,
		log:     logger(j.Logger),
		emit:    emit,
		since:   time.Now(),
		cursor:  j.AfterCursor,
	}
	r.clock, r.parser = newReadClock(parser(j.Parser))
	backoff := minB
	for {
		start := time.Now()
		n, err := r.once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		j.c.restarts.Add(1)
		if n > 0 || time.Since(start) > maxB {
			backoff = minB // it worked for a while: this is a new failure
		}
		r.log.Warn("journalctl exited, restarting", "err", err, "stderr", r.stderr.String(), "backoff_s", backoff.Seconds())
		j.c.setProblem(fmt.Sprintf("journalctl exited (%v), restarting", err))
		if n == 0 && r.cursor != "" && r.cursor == j.AfterCursor && strings.Contains(r.stderr.String(), "cursor") {
			// The saved cursor is one this run never read: it can be
			// corrupt, and would fail every time. Go on from when Run
			// started rather than not at all.
			r.log.Error("journalctl rejects the saved cursor, reading from when Run started", "cursor", r.cursor)
			r.cursor = ""
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxB)
	}
}

// journalRun is the state of one Journal.Run.
type journalRun struct {
	*Journal
	path   string
	clock  *readClock      // read at each read of journalctl's output that returns data
	parser *logline.Parser // dates by clock's readings
	log    *slog.Logger
	emit   func(logline.Line)
	since  time.Time // when Run started: where to begin if there is no cursor at a restart
	cursor string    // the cursor to resume after
	ran    bool      // journalctl has been started before
	stderr tailWriter
}

// args returns journalctl's arguments for resuming now.
func (r *journalRun) args() []string {
	a := []string{"--follow", "--output=export", "--no-pager", "--output-fields=" + journalFields}
	// With --follow, journalctl shows ten entries unless told how many
	// (--lines): after a cursor, the first ten, and the rest only once
	// the journal is written to again.
	switch {
	case r.cursor != "":
		a = append(a, "--lines=all", "--after-cursor="+r.cursor)
	case r.ran:
		// Nothing read yet: everything since Run started is new.
		a = append(a, "--lines=all", "--since=@"+strconv.FormatInt(r.since.Unix(), 10))
	default:
		a = append(a, "--lines=0")
	}
	for _, u := range r.Units {
		a = append(a, "--unit="+u)
	}
	for _, t := range r.Identifiers {
		a = append(a, "--identifier="+t)
	}
	a = append(a, r.Args...)
	return append(a, r.Matches...)
}

// once runs journalctl until it exits or ctx is cancelled, and returns how
// many records it read and why it ended.
func (r *journalRun) once(ctx context.Context) (int, error) {
	cmd := exec.CommandContext(ctx, r.path, r.args()...)
	r.ran = true
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	// If the daemon dies without stopping it, so does journalctl.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r.stderr.Reset()
	cmd.Stderr = &r.stderr
	stdout, w, err := blockingPipe()
	if err != nil {
		return 0, fmt.Errorf("start journalctl: %w", err)
	}
	defer stdout.Close()
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		return 0, fmt.Errorf("start journalctl: %w", err)
	}
	n, rerr := r.read(clockedReader{stdout, r.clock})
	werr := cmd.Wait()
	if err := errors.Join(rerr, werr); err != nil {
		return n, fmt.Errorf("journalctl: %w", err)
	}
	return n, errors.New("journalctl: exited")
}

// read emits the entries journalctl writes to out until it ends, and
// returns how many it read and the error reading stopped with (nil at the
// end of the stream).
func (r *journalRun) read(out io.Reader) (int, error) {
	x := newExportReader(out)
	for n := 0; ; n++ {
		e, tooLong, err := x.next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if n == 0 {
			r.c.setProblem("")
		}
		r.entry(e, tooLong)
	}
}

// entry emits one entry (counts it, if too long) and notes its cursor.
func (r *journalRun) entry(e logline.JournalEntry, tooLong bool) {
	if tooLong {
		r.c.tooLong.Add(1)
	} else {
		l, err := r.parser.JournalLine(e)
		l.Read = r.clock.at
		r.c.deliver(l, err, "journald", r.emit)
	}
	if e.Cursor != "" {
		r.cursor = e.Cursor
		r.mu.Lock()
		r.Journal.cursor = e.Cursor
		r.mu.Unlock()
	}
}

// tailWriter keeps the last bytes written to it: journalctl's complaints,
// for the log, without letting a chatty child grow memory.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 2048

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if len(p) > tailMax {
		p = p[len(p)-tailMax:]
	}
	if over := len(w.buf) + len(p) - tailMax; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(bytes.TrimSpace(w.buf))
}

func (w *tailWriter) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = w.buf[:0]
}

// blockingPipe returns a pipe whose read end blocks in read(2) rather
// than waiting in Go's network poller: journalctl writes an entry at a
// time, and parking and waking the reader for each cost a third of the
// source's CPU under a flood. The end is closed when journalctl exits.
func blockingPipe() (r, w *os.File, err error) {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "journalctl stdout"), os.NewFile(uintptr(fds[1]), "journalctl stdout"), nil
}
