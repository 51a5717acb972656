package filter

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/logline"
)

// benchLog is a mixed Debian syslog (sshd ~40%, postfix ~25%, dovecot ~20%,
// other daemons ~15%) written by bench/cmd/loggen, the benchmarks' log:
//
//	go run ./bench/cmd/loggen -n 2000 -seed 7 -o internal/filter/testdata/bench/mixed.log
const benchLog = "testdata/bench/mixed.log"

// TestDispatchAgrees checks that trying only the patterns indexed under a
// message's first byte, and only when their literals are there, finds what
// trying every pattern finds. Each built-in filter (default mode and
// "aggressive") meets its own corpus, the benchmark log and every 20th
// line of the other corpora, as messages and as whole records.
func TestDispatchAgrees(t *testing.T) {
	reg, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	p := logline.Parser{Year: 2025, Location: time.UTC}
	read := func(file string, every int) []string {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var msgs []string
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, logline.MaxLen)
		for n := 0; sc.Scan(); n++ {
			if n%every != 0 {
				continue
			}
			if l, err := p.Parse(sc.Text()); err == nil {
				msgs = append(msgs, strings.TrimRight(l.Message, " \t"), strings.TrimRight(l.Raw, " \t"))
			}
		}
		return msgs
	}
	files, _ := filepath.Glob("testdata/corpus/*/*.log")
	common := append(read(benchLog, 1), "", "Failed", "{", "[")
	for _, file := range files {
		common = append(common, read(file, 20)...)
	}
	for _, f := range reg.Filters() {
		msgs := slices.Clone(common)
		for _, file := range files {
			if filepath.Base(file) == f.Name+".log" {
				msgs = append(msgs, read(file, 1)...)
			}
		}
		slices.Sort(msgs)
		msgs = slices.Compact(msgs)
		// The default mode and "aggressive", which enables every rule.
		modes := []string{""}
		if len(f.Modes) > 0 {
			modes = append(modes, "aggressive")
		}
		for _, mode := range modes {
			m, err := f.NewMatcher(mode)
			if err != nil {
				t.Fatal(err)
			}
			for _, msg := range msgs {
				want, wantOK := firstMatch(m.disp.all, msg, nil)
				got, gotOK := firstMatch(m.disp.candidates(msg), msg, m.disp.keys)
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

// firstMatch is Matcher.match without decide; a nil keys tries every
// candidate without prefiltering.
func firstMatch(cands []candidate, msg string, keys *keyScan) (found, bool) {
	mk := msgKeys{scan: keys, msg: msg}
	for _, c := range cands {
		if keys != nil && !c.mayMatch(msg, &mk) {
			continue
		}
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

func TestMayMatch(t *testing.T) {
	tests := []struct {
		pat string
		yes []string // messages the pattern matches: mayMatch must hold
		no  []string // messages whose literals are missing
	}{
		{"Failed <WORD> for {invalid |}user <USER> from <HOST> port <NUM>",
			[]string{"Failed password for invalid user x from 1.2.3.4 port 22", "Failed password for user x from 1.2.3.4 port 22"},
			[]string{"Failed password for root from 1.2.3.4 port 22", "Failed password for user x from 1.2.3.4", "failed password"}},
		{"<*>rip=<*>rip=<*>", []string{"a rip=1 rip=2", "rip=rip="}, []string{"rip=1", "ri p=rip="}},
		{"{a|b}x<*>y", []string{"ax1y", "bxy"}, []string{"ax1"}},
		{"{a{b|c}|d}<*>e", []string{"ab1e", "de"}, []string{"ab1"}},
		{"abc", []string{"abc"}, []string{"ab", "xabc"}},
		{"ab<*>ab", []string{"abab", "ab1ab"}, []string{"ab", "aba"}},
		{"<*>ssh1: ruser <*> ssh1: ruser <*>", []string{"x ssh1: ruser a ssh1: ruser b"}, []string{"x ssh1: ruser a"}},
	}
	for _, tt := range tests {
		p, err := compilePattern(tt.pat)
		if err != nil {
			t.Fatal(err)
		}
		c := newCandidate(0, p, nil)
		for _, msg := range tt.yes {
			var cp capture
			if !p.match(msg, &cp) {
				t.Fatalf("%q does not match %q: fix the test", tt.pat, msg)
			}
			if !c.mayMatch(msg, nil) {
				t.Errorf("%q (literals %v): mayMatch(%q) = false", tt.pat, c.lits, msg)
			}
		}
		for _, msg := range tt.no {
			if c.mayMatch(msg, nil) {
				t.Errorf("%q (literals %v): mayMatch(%q) = true", tt.pat, c.lits, msg)
			}
		}
	}
}

func TestLiteralIndex(t *testing.T) {
	for _, tt := range []struct{ s, lit string }{
		{"Failed password for root from 1.2.3.4 port 22", " from "},
		{"a from b from c", " from "},
		{" from ", " from "},
		{" fro", " from "},
		{"", "x"},
		{"x", "x"},
		{"abcabc", "c"},
		{"rip=1, rip=2", "rip="},
		{"ri p=rip", "rip="},
		{"aaaa", "aa"},
		{"x, y, z", ","},
	} {
		l := newLiteral(tt.lit)
		if got, want := l.index(tt.s), strings.Index(tt.s, tt.lit); got != want {
			t.Errorf("index(%q, %q) = %d, want %d", tt.s, tt.lit, got, want)
		}
		if got, want := lastIndex(tt.s, tt.lit, l.anchor), strings.LastIndex(tt.s, tt.lit); got != want {
			t.Errorf("lastIndex(%q, %q) = %d, want %d", tt.s, tt.lit, got, want)
		}
	}
}

func FuzzLiteralIndex(f *testing.F) {
	f.Add("Failed password for root from 1.2.3.4 port 22", " from ")
	f.Add("aaaa", "aa")
	f.Fuzz(func(t *testing.T, s, lit string) {
		if lit == "" {
			return
		}
		l := newLiteral(lit)
		if got, want := l.index(s), strings.Index(s, lit); got != want {
			t.Errorf("index(%q, %q) = %d, want %d (anchor %d)", s, lit, got, want, l.anchor)
		}
		if got, want := lastIndex(s, lit, l.anchor), strings.LastIndex(s, lit); got != want {
			t.Errorf("lastIndex(%q, %q) = %d, want %d (anchor %d)", s, lit, got, want, l.anchor)
		}
	})
}
