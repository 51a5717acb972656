package config

import (
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyLines maps every dotted key of a TOML document ("jail.sshd.maxretry")
// to the line where it is written, so errors found after decoding can point
// at it. Parse errors are left to the decoder, which reports them itself.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	p := unstable.Parser{KeepComments: false}
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(e.Key())
			lines[strings.Join(table, ".")] = lineOf(&p, data, e.Key())
		case unstable.KeyValue:
			k := append(append([]string(nil), table...), keyParts(e.Key())...)
			lines[strings.Join(k, ".")] = lineOf(&p, data, e.Key())
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
