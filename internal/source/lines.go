// Package source reads log records: files followed across rotation,
// journald, syslog over the network, stdin and whole files for replay. Each
// source yields logline.Lines through one small interface.
package source

import (
	"bufio"
	"bytes"
	"errors"
	"io"

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
