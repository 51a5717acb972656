package config

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2/unstable"
)

// TestKeyLinesAgreeWithParser: the counted lines are those the TOML
// parser's own Shape gives (which counts from the start for each key), for
// the embedded defaults and for a document with inline tables, arrays of
// tables, multi-line strings and comments between keys.
func TestKeyLinesAgreeWithParser(t *testing.T) {
	doc := `# comment
log_level = "info"

[jail.sshd]
maxretry = 3   # inline comment
banner = """
several
lines
"""
ports = [22,
  2222]

[[action]]
name = "a"
[[action]]
name = "b"
inline = { x = 1, y = 2 }
`
	for name, data := range map[string][]byte{"default.toml": defaultTOML, "doc": []byte(doc)} {
		got := keyLines(data)
		want := shapeLines(t, data)
		if len(got) != len(want) {
			t.Errorf("%s: %d keys, parser numbers %d", name, len(got), len(want))
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s on line %d, parser says %d", name, k, got[k], w)
			}
		}
	}
	if got := keyLines([]byte(doc)); got["action.1.name"] != 16 || got["jail.sshd.ports"] != 10 {
		t.Errorf("action.1.name on %d (want 16), jail.sshd.ports on %d (want 10)", got["action.1.name"], got["jail.sshd.ports"])
	}
}

// shapeLines numbers the first part of every key as keyLines did before it
// counted lines itself: with the parser's Shape.
func shapeLines(t *testing.T, data []byte) map[string]int {
	t.Helper()
	out := map[string]int{}
	p := unstable.Parser{}
	p.Reset(data)
	var table []string
	arrays := map[string]int{}
	first := func(it unstable.Iterator) (int, []string) {
		line := 0
		var parts []string
		for it.Next() {
			n := it.Node()
			if parts == nil {
				line = p.Shape(n.Raw).Start.Line
			}
			parts = append(parts, string(n.Data))
		}
		return line, parts
	}
	var indexed string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			line, parts := first(e.Key())
			table = parts
			name := strings.Join(parts, ".")
			out[name] = line
			indexed = ""
			if e.Kind == unstable.ArrayTable {
				indexed = name + "." + string(rune('0'+arrays[name]))
				arrays[name]++
				out[indexed] = line
			}
		case unstable.KeyValue:
			line, parts := first(e.Key())
			out[strings.Join(append(append([]string(nil), table...), parts...), ".")] = line
			if indexed != "" {
				out[indexed+"."+strings.Join(parts, ".")] = line
			}
		}
	}
	if err := p.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}
