package filter

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/logline"
)

// TestDispatchAgrees checks that trying only the patterns indexed under a
// message's first byte finds what trying every pattern finds, for every
// built-in filter and mode, on the corpus and the benchmark log.
func TestDispatchAgrees(t *testing.T) {
	reg, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/corpus/*/*.log")
	files = append(files, benchLog)
	p := logline.Parser{Year: 2025, Location: time.UTC}
	var msgs []string
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, logline.MaxLen)
		for sc.Scan() {
			if l, err := p.Parse(sc.Text()); err == nil {
				msgs = append(msgs, l.Message, l.Raw)
			}
		}
		f.Close()
	}
	msgs = append(msgs, "", " ", "\t", "Failed", "{", "[")
	for _, f := range reg.Filters() {
		for _, mode := range append([]string{""}, f.Modes...) {
			m, err := f.NewMatcher(mode)
			if err != nil {
				t.Fatal(err)
			}
			for _, msg := range msgs {
				msg = strings.TrimRight(msg, " \t")
				want, wantOK := firstMatch(m.disp.all, msg)
				got, gotOK := firstMatch(m.disp.candidates(msg), msg)
				if got != want || gotOK != wantOK {
					t.Errorf("%s mode %q: %q: dispatch found %v %v, full scan %v %v", f.Name, mode, msg, got, gotOK, want, wantOK)
				}
			}
		}
	}
}

type found struct {
	pat        *pattern
	host, user string
}

func firstMatch(cands []candidate, msg string) (found, bool) {
	for _, c := range cands {
		var cp capture
		if c.pat.match(msg, &cp) {
			return found{c.pat, cp.host, cp.user}, true
		}
	}
	return found{}, false
}

func TestByteSetFirst(t *testing.T) {
	tests := []struct {
		pat string
		in  string // bytes that must be in the set
		out string // bytes that must not
		all bool
	}{
		{"Failed <WORD>", "F", "fIx ", false},
		{"{error: |}Failed <*>", "eF", "Ix", false},
		{"{a|b{c|d}}x", "abx"[:2], "cdx", false},
		{"{a|}x", "ax", "b", false},
		{"{a|}", "a", "b", false},
		{"<*> x", "", "", true},
		{"<HOST> x", "", "", true},
		{"{<NUM>|a}", "", "", true},
	}
	for _, tt := range tests {
		p, err := compilePattern(tt.pat)
		if err != nil {
			t.Fatal(err)
		}
		var s byteSet
		s.addFirst(p.start, 0)
		if tt.all {
			if s != (byteSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}) {
				t.Errorf("%q: want every byte", tt.pat)
			}
			continue
		}
		for i := 0; i < len(tt.in); i++ {
			if !s.has(tt.in[i]) {
				t.Errorf("%q: %q missing", tt.pat, tt.in[i])
			}
		}
		for i := 0; i < len(tt.out); i++ {
			if s.has(tt.out[i]) {
				t.Errorf("%q: %q present", tt.pat, tt.out[i])
			}
		}
	}
}
