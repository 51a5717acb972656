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

// readRecords is ReadLines with records cut at limit bytes.
func readRecords(r io.Reader, limit int, fn func(rec []byte, tooLong bool) error) error {
	br := bufio.NewReaderSize(r, max(64<<10, limit+1))
	for {
		rec, err := br.ReadSlice('\n')
		tooLong := false
		if errors.Is(err, bufio.ErrBufferFull) || len(bytes.TrimSuffix(rec, []byte{'\n'})) > limit {
			tooLong = true
			head := rec[:min(len(rec), limit)]
			if ferr := fn(head, true); ferr != nil {
				return ferr
			}
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err == nil {
				continue
			}
		}
		if !tooLong && len(rec) > 0 {
			rec = bytes.TrimSuffix(rec, []byte{'\n'})
			if ferr := fn(rec, false); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}
