package source

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/logline"
)

// Source is the shape every source in this package has. Consumers declare
// their own copy of it; it lives here with Func so that a test double is
// one line.
//
// Run reads records until ctx is cancelled (or, for finite sources, until
// the input ends) and returns nil in both cases; it returns an error only
// when it cannot go on at all. Run calls emit from one goroutine at a time;
// the Line does not refer to memory Run reuses.
type Source interface {
	Run(ctx context.Context, emit func(logline.Line)) error
}

// Func adapts a function to Source.
type Func func(ctx context.Context, emit func(logline.Line)) error

// Run calls f(ctx, emit).
func (f Func) Run(ctx context.Context, emit func(logline.Line)) error { return f(ctx, emit) }

var (
	_ Source = Func(nil)
	_ Source = (*File)(nil)
	_ Source = (*Journal)(nil)
	_ Source = (*Syslog)(nil)
	_ Source = (*Reader)(nil)
)

// Stats counts what a source did with its records. Every source fills the
// first group; the second group is zero for sources it does not apply to.
type Stats struct {
	Lines   uint64 // records emitted
	TooLong uint64 // skipped: longer than the source's limit (logline.MaxLen by default)
	Binary  uint64 // skipped: holding NUL bytes
	Future  uint64 // skipped: stamped more than a day ahead
	Empty   uint64 // skipped: empty records, such as blank lines
	Invalid uint64 // skipped: undecodable (journal JSON that does not parse, broken syslog framing)

	Rotations   uint64 // File: switched to a new file at the path (rename or delete and recreate)
	Truncations uint64 // File: the file shrank or was rewritten in place (copytruncate)
	Restarts    uint64 // Journal: journalctl started again after it exited
	Rejected    uint64 // Syslog: TCP connections closed at once: MaxConns, PerAddr or the descriptor budget reached
	Dropped     uint64 // Syslog: TCP connections closed for misbehaving (bad framing, oversize, idle)
	Silent      uint64 // Syslog: TCP connections closed for sending nothing within SilentTimeout
}

// counters holds a source's Stats as atomics, so that Stats can be read
// while Run is going.
type counters struct {
	lines, tooLong, binary, future, empty, invalid atomic.Uint64
	rotations, truncations, restarts               atomic.Uint64
	dropped, silent                                atomic.Uint64
	problem                                        atomic.Pointer[string]
}

// setProblem records why the source is not reading now; "" clears it.
func (c *counters) setProblem(p string) {
	if old := c.problem.Load(); (old == nil && p == "") || (old != nil && *old == p) {
		return
	}
	c.problem.Store(&p)
}

// Problem returns why the source is not reading now, "" when it is.
func (c *counters) Problem() string {
	if p := c.problem.Load(); p != nil {
		return *p
	}
	return ""
}

func (c *counters) stats() Stats {
	return Stats{
		Lines:       c.lines.Load(),
		TooLong:     c.tooLong.Load(),
		Binary:      c.binary.Load(),
		Future:      c.future.Load(),
		Empty:       c.empty.Load(),
		Invalid:     c.invalid.Load(),
		Rotations:   c.rotations.Load(),
		Truncations: c.truncations.Load(),
		Restarts:    c.restarts.Load(),
		Dropped:     c.dropped.Load(),
		Silent:      c.silent.Load(),
	}
}

// deliver emits l with its origin set, or counts why it was skipped. It
// reports whether l was emitted.
func (c *counters) deliver(l logline.Line, err error, origin string, emit func(logline.Line)) bool {
	if err != nil {
		c.skip(err)
		return false
	}
	l.Origin = origin
	c.lines.Add(1)
	emit(l)
	return true
}

// skip counts a record that could not be used.
func (c *counters) skip(err error) {
	switch {
	case errors.Is(err, logline.ErrTooLong):
		c.tooLong.Add(1)
	case errors.Is(err, logline.ErrBinary):
		c.binary.Add(1)
	case errors.Is(err, logline.ErrFuture):
		c.future.Add(1)
	case errors.Is(err, logline.ErrEmpty):
		c.empty.Add(1)
	default:
		c.invalid.Add(1)
	}
}

// readClock is one reading of the clock for the records of one read: the
// parser newReadClock returns dates year-less stamps by it, and each
// record's Line.Read is it. A flood's read brings some hundreds of
// records; a clock reading for each, twice (the parser's and the
// daemon's), was 3% of the daemon's CPU (bench/RESULTS.md, issue 19).
type readClock struct {
	clock func() time.Time
	at    time.Time // the reading of the last read that returned data
}

// newReadClock returns a clock that reads p's clock (time.Now if p has
// none), and a parser like p that dates by its readings.
func newReadClock(p *logline.Parser) (*readClock, *logline.Parser) {
	c := &readClock{clock: p.Now}
	if c.clock == nil {
		c.clock = time.Now
	}
	return c, &logline.Parser{Location: p.Location, Year: p.Year, Now: func() time.Time { return c.at }}
}

// read takes a reading, for a read that returned data.
func (c *readClock) read() { c.at = c.clock() }

// clockedReader reads r, and c when a read returns data.
type clockedReader struct {
	r io.Reader
	c *readClock
}

func (cr clockedReader) Read(b []byte) (int, error) {
	n, err := cr.r.Read(b)
	if n > 0 {
		cr.c.read()
	}
	return n, err
}

// parser returns p, or a zero Parser when p is nil.
func parser(p *logline.Parser) *logline.Parser {
	if p == nil {
		return &logline.Parser{}
	}
	return p
}

// logger returns l, or one that discards everything when l is nil.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
