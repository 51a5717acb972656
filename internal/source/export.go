package source

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/rampart-dev/rampart/internal/logline"
)

// exportReader reads journalctl's export format (--output=export, systemd's
// Journal Export Format). An entry is a run of fields ended by an empty
// line; a field is "NAME=value\n", or, for a value that is not printable
// text on one line, "NAME\n", the value's size as a 64-bit little-endian
// number, the value's bytes and "\n". Values are taken as they are: there
// is nothing to unescape, and journalctl writes them with a third of the
// CPU its JSON takes (bench/RESULTS.md, issue 19).
//
// Only the fields a logline.JournalEntry holds are kept, and memory is
// bounded: a value longer than logline.MaxLen is skipped unread (and, if
// it is one of those fields, marks its entry too long), and an entry
// keeps at most exportMaxFields fields (journalctl repeats a field that
// has several values).
type exportReader struct {
	br     *bufio.Reader
	buf    []byte       // the entry's names and values, back to back
	fields []exportSpan // where each of them is in buf
	open   bool         // a line of an entry has been read
	name   []byte       // a binary field's name
	value  []byte       // a binary field's value
}

// exportSpan is one field of an entry: buf[name:value-1] is its name,
// buf[value:end] its value.
type exportSpan struct{ name, value, end int }

// exportMaxFields bounds the fields an entry keeps.
const exportMaxFields = 64

// errExportFormat is a stream that does not follow the format.
var errExportFormat = errors.New("journal export format")

func newExportReader(r io.Reader) *exportReader {
	// A line holds a name (at most 64 bytes for journald), '=', a value
	// of up to logline.MaxLen bytes and its newline.
	return &exportReader{br: bufio.NewReaderSize(r, logline.MaxLen+128)}
}

// next reads the next entry. tooLong reports one with a kept field's
// value longer than logline.MaxLen, or more than exportMaxFields fields to
// keep: the values kept are still returned (its cursor among them), not
// the others. At the end
// of the stream it returns io.EOF, or io.ErrUnexpectedEOF when the stream
// ends inside an entry, which is then not returned.
func (x *exportReader) next() (e logline.JournalEntry, tooLong bool, err error) {
	x.buf, x.fields, x.open = x.buf[:0], x.fields[:0], false
	for {
		line, err := x.br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			// A text value too long to keep: skip it to its newline.
			x.open = true
			eq := bytes.IndexByte(line, '=')
			tooLong = eq < 0 || logline.IsJournalField(string(line[:eq])) || tooLong
			if err := x.skipLine(); err != nil {
				return e, false, x.eof(err)
			}
			continue
		case err != nil:
			return e, false, x.eof(err)
		}
		line = line[:len(line)-1]
		if len(line) == 0 {
			if !x.open {
				continue // not inside an entry
			}
			return x.entry(), tooLong, nil
		}
		x.open = true
		if eq := bytes.IndexByte(line, '='); eq >= 0 {
			tooLong = !x.keep(line[:eq], line[eq+1:]) || tooLong
			continue
		}
		// The binary form: the name, then the size and the value. A line
		// that is no field name is not the format: reading a size after it
		// would lose the stream's place.
		if !logline.JournalFieldName(string(line)) {
			return e, false, fmt.Errorf("%w: line %.64q", errExportFormat, line)
		}
		x.name = append(x.name[:0], line...) // line is overwritten by the next read
		name := x.name
		var size [8]byte
		if _, err := io.ReadFull(x.br, size[:]); err != nil {
			return e, false, x.eof(err)
		}
		n := binary.LittleEndian.Uint64(size[:])
		if n > logline.MaxLen {
			if n > 1<<62 {
				return e, false, fmt.Errorf("%w: field %q of %d bytes", errExportFormat, name, n)
			}
			if _, err := x.br.Discard(int(n)); err != nil {
				return e, false, x.eof(err)
			}
			tooLong = logline.IsJournalField(string(name)) || tooLong
		} else {
			x.value = slices.Grow(x.value[:0], int(n))[:n]
			if _, err := io.ReadFull(x.br, x.value); err != nil {
				return e, false, x.eof(err)
			}
			tooLong = !x.keep(name, x.value) || tooLong
		}
		if c, err := x.br.ReadByte(); err != nil {
			return e, false, x.eof(err)
		} else if c != '\n' {
			return e, false, fmt.Errorf("%w: field %q not ended by a newline", errExportFormat, name)
		}
	}
}

// keep appends a field to the entry if it is one a JournalEntry holds, or
// says false when the entry has as many as it keeps.
func (x *exportReader) keep(name, value []byte) bool {
	if !logline.IsJournalField(string(name)) {
		return true
	}
	if len(x.fields) == exportMaxFields {
		return false
	}
	start := len(x.buf)
	x.buf = append(x.buf, name...)
	x.buf = append(x.buf, '=')
	v := len(x.buf)
	x.buf = append(x.buf, value...)
	x.fields = append(x.fields, exportSpan{name: start, value: v, end: len(x.buf)})
	return true
}

// entry returns the entry the fields read make, its strings sharing one
// allocation.
func (x *exportReader) entry() logline.JournalEntry {
	s := string(x.buf)
	var e logline.JournalEntry
	for _, f := range x.fields {
		e.Set(s[f.name:f.value-1], s[f.value:f.end])
	}
	return e
}

// skipLine reads past the next newline.
func (x *exportReader) skipLine() error {
	for {
		_, err := x.br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// eof turns the end of the stream inside an entry into
// io.ErrUnexpectedEOF.
func (x *exportReader) eof(err error) error {
	if err == io.EOF && x.open {
		return io.ErrUnexpectedEOF
	}
	return err
}
