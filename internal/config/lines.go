package config

import (
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
	var table, indexed []string
	arrays := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(e.Key())
			name := strings.Join(table, ".")
			line := lineOf(&p, data, e.Key())
			lines[name] = line
			indexed = nil
			if e.Kind == unstable.ArrayTable {
				indexed = append(append([]string(nil), table...), strconv.Itoa(arrays[name]))
				arrays[name]++
				lines[strings.Join(indexed, ".")] = line
			}
		case unstable.KeyValue:
			key := keyParts(e.Key())
			line := lineOf(&p, data, e.Key())
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

// lineOf returns the line of the first part of a key.
func lineOf(p *unstable.Parser, data []byte, it unstable.Iterator) int {
	if !it.Next() {
		return 0
	}
	n := it.Node()
	if sh := p.Shape(n.Raw); sh.Start.Line > 0 && n.Raw.Length > 0 {
		return sh.Start.Line
	}
	return 0
}
