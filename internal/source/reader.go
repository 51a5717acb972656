package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/logline"
)

// Reader is a finite source: it reads R to its end, one record a line, for
// stdin and for replaying whole files. Records longer than logline.MaxLen
// are skipped and counted.
type Reader struct {
	R      io.Reader
	Name   string          // Line.Origin: "stdin", or the path replayed
	Parser *logline.Parser // nil: a zero Parser

	c counters
}

// Run reads R until its end or until ctx is cancelled and returns nil in
// both cases; it returns an error only when reading fails. Cancellation is
// seen between records, and while a read blocks only when R has a read
// deadline (a pipe or socket, such as stdin when it is one); otherwise Run
// returns when the blocked read does.
func (r *Reader) Run(ctx context.Context, emit func(logline.Line)) error {
	if d, ok := r.R.(interface{ SetReadDeadline(time.Time) error }); ok {
		// Files that cannot take deadlines say so; reads then block as before.
		if d.SetReadDeadline(time.Time{}) == nil {
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				select {
				case <-ctx.Done():
					_ = d.SetReadDeadline(time.Now())
				case <-done:
				}
			})
			defer func() {
				close(done)
				wg.Wait()
			}()
		}
	}
	p := parser(r.Parser)
	errStop := errors.New("stop")
	err := ReadLines(r.R, func(rec []byte, tooLong bool) error {
		if ctx.Err() != nil {
			return errStop
		}
		if tooLong {
			r.c.tooLong.Add(1)
			return nil
		}
		l, err := p.Parse(string(rec))
		r.c.deliver(l, err, r.Name, emit)
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errStop):
		return nil
	case ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	default:
		return fmt.Errorf("read %s: %w", r.Name, err)
	}
}

// Stats returns the counts so far; it is safe to call while Run is going.
func (r *Reader) Stats() Stats { return r.c.stats() }
