package config

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyLines maps every dotted key of a TOML document ("jail.sshd.maxretry")
// to the line where it is written, so errors found after decoding can point
// at it. Parse errors are left to the decoder, which reports them itself.
// The tables of an array of tables are also numbered from 0: the second
// [[action]]'s url is "action.1.url" (and "action.url" is the last one's).
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	p := unstable.Parser{KeepComments: false}
	p.Reset(data)
	at := lineCounter{data: data}
	var table, indexed []string
	arrays := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(e.Key())
			name := strings.Join(table, ".")
			line := at.lineOf(e.Key())
			lines[name] = line
			indexed = nil
			if e.Kind == unstable.ArrayTable {
				indexed = append(append([]string(nil), table...), strconv.Itoa(arrays[name]))
				arrays[name]++
				lines[strings.Join(indexed, ".")] = line
			}
		case unstable.KeyValue:
			key := keyParts(e.Key())
			line := at.lineOf(e.Key())
			lines[strings.Join(append(append([]string(nil), table...), key...), ".")] = line
			if indexed != nil {
				lines[strings.Join(append(append([]string(nil), indexed...), key...), ".")] = line
			}
		}
	}
	return lines
}

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

// lineCounter numbers the lines of a document read from its start to its
// end: each position asked for is at or after the one before (keys come in
// document order), so the newlines are counted once in all, where the
// parser's Shape counts them from the start for every key.
type lineCounter struct {
	data   []byte
	offset int // counted up to here
	line   int // newlines before offset
}

// lineOf returns the line of the first part of a key, 0 when unknown.
func (c *lineCounter) lineOf(it unstable.Iterator) int {
	if !it.Next() {
		return 0
	}
	r := it.Node().Raw
	off := int(r.Offset)
	if r.Length == 0 || off > len(c.data) {
		return 0
	}
	if off < c.offset { // not in document order: count again
		c.offset, c.line = 0, 0
	}
	c.line += bytes.Count(c.data[c.offset:off], []byte{'\n'})
	c.offset = off
	return c.line + 1
}
