// Package source reads log records: files followed across rotation,
// journald, syslog over the network, stdin and whole files for replay. Each
// source yields logline.Lines through one small interface.
package source

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"unsafe"

	"github.com/rampart-dev/rampart/internal/logline"
)

// ReadLines calls fn for each newline-terminated record of r, and for a last
// record without a newline. Records longer than logline.MaxLen are not
// passed whole: fn sees their first MaxLen bytes with tooLong set, and the
// rest is discarded, so memory stays bounded whatever the input. The slice
// is only valid during the call. An error from fn stops the reading and is
// returned.
func ReadLines(r io.Reader, fn func(rec []byte, tooLong bool) error) error {
	return readRecords(r, logline.MaxLen, fn)
}

// lineReader reads records one at a time, as ReadLines passes them.
type lineReader struct {
	br    *bufio.Reader
	limit int
}

func newLineReader(r io.Reader, limit int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, max(64<<10, limit+1)), limit: limit}
}

// next returns the next record, as ReadLines would pass it to its fn; the
// slice is valid until the next call. At the end it returns io.EOF.
func (lr *lineReader) next() (rec []byte, tooLong bool, err error) {
	for {
		rec, err = lr.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(bytes.TrimSuffix(rec, []byte{'\n'})) > lr.limit {
			// A copy: skipping the rest reads over the buffer.
			head := bytes.Clone(rec[:min(len(rec), lr.limit)])
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = lr.br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return nil, false, err
			}
			return head, true, nil
		}
		if len(rec) > 0 {
			return bytes.TrimSuffix(rec, []byte{'\n'}), false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// readRecords is ReadLines with records cut at limit bytes.
func readRecords(r io.Reader, limit int, fn func(rec []byte, tooLong bool) error) error {
	lr := newLineReader(r, limit)
	for {
		rec, tooLong, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(rec, tooLong); err != nil {
			return err
		}
	}
}

// Lines reads the records of r as strings, for a caller that pulls them
// (replay merges several files by time). The input is read straight into
// large blocks and each record is a string into its block, so reading
// copies no line and allocates a block, not a string, per few hundred
// lines: under a flood, a good share of what reading costs. A block is
// never written again where a string points into it, so a string stays
// valid and unchanged for good, and a block is freed when no string into
// it is left. A consumer that keeps part of a line for long (a user name
// as a map key) must copy it, as the filters, the engine and the insight
// counter do, or that piece keeps its whole block alive. Records longer
// than logline.MaxLen come back cut to it, with tooLong set, and the rest
// is skipped, as ReadLines does.
type Lines struct {
	r          io.Reader
	block      []byte // block[start:end] is read and not yet returned
	start, end int
	limit      int
	seen       int   // bytes from start known to hold no newline (a record read in pieces)
	skipping   bool  // the rest of a record too long, up to its newline, is to go
	err        error // the read error, returned once the block is drained
}

// linesBlock is the size of a block; a record that outgrows one moves to a
// block twice its size (at most twice logline.MaxLen).
const linesBlock = 64 << 10

// NewLines returns a Lines reading r.
func NewLines(r io.Reader) *Lines { return &Lines{r: r, limit: logline.MaxLen} }

// Next returns the next record, without its newline. At the end it
// returns io.EOF, or the error reading failed with.
func (l *Lines) Next() (rec string, tooLong bool, err error) {
	for {
		buf := l.block[l.start:l.end]
		i := bytes.IndexByte(buf[l.seen:], '\n')
		if i >= 0 {
			i += l.seen
		}
		l.seen = 0
		switch {
		case i >= 0 && l.skipping:
			l.start += i + 1
			l.skipping = false
			continue
		case i >= 0:
			l.start += i + 1
			return l.record(buf[:i])
		case l.skipping:
			l.start = l.end
		case len(buf) > l.limit:
			l.start, l.skipping = l.end, true
			return string(buf[:l.limit]), true, nil
		case l.err != nil:
			if len(buf) > 0 { // a last record without a newline
				l.start = l.end
				return l.record(buf)
			}
			return "", false, l.err
		default:
			l.seen = len(buf) // the next search starts after it
		}
		if l.err != nil {
			return "", false, l.err
		}
		l.fill()
	}
}

// record returns rec, a record of the current block, as a string.
func (l *Lines) record(rec []byte) (string, bool, error) {
	if len(rec) > l.limit {
		return string(rec[:l.limit]), true, nil
	}
	if len(rec) == 0 {
		return "", false, nil
	}
	return unsafe.String(&rec[0], len(rec)), false, nil
}

// fill reads more input after what the block holds; a full block is
// replaced by a new one, which the unfinished record moves to.
func (l *Lines) fill() {
	if l.end == len(l.block) {
		part := l.block[l.start:l.end]
		nb := make([]byte, max(linesBlock, 2*len(part)))
		l.block, l.start, l.end = nb, 0, copy(nb, part)
	}
	for range 100 { // a reader may return nothing and no error; not forever
		n, err := l.r.Read(l.block[l.end:])
		l.end += n
		if err != nil {
			l.err = err
		}
		if n > 0 || err != nil {
			return
		}
	}
	l.err = io.ErrNoProgress
}
