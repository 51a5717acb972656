package filter

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-dev/rampart/internal/logline"
)

// TestCaseFiles runs the table of realistic and hostile lines in
// testdata/cases/*.txt. A file is a list of blocks:
//
//	@ FILTER [MODE]          a new matcher (no session context carried over)
//	> LOG LINE               one line, fed to the current matcher
//	= none                   the line yields no event
//	= KIND HOST ["USER"]     the line yields KIND blaming HOST (and USER, a Go string)
//
// Lines starting with '#' and blank lines are comments.
func TestCaseFiles(t *testing.T) {
	reg, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "cases", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no case files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runCaseFile(t, reg, file) })
	}
}

func runCaseFile(t *testing.T, reg *Registry, file string) {
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var (
		m       *Matcher
		p       logline.Parser
		line    string
		lineNo  int
		haveLog bool
		cases   int
	)
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		where := file + ":" + strconv.Itoa(n)
		switch {
		case text == "" || strings.HasPrefix(text, "#"):
		case strings.HasPrefix(text, "@ "):
			fields := strings.Fields(text[2:])
			f, mode, ok := reg.Lookup(fields[0])
			if !ok {
				t.Fatalf("%s: unknown filter %q", where, fields[0])
			}
			if len(fields) > 1 {
				mode = fields[1]
			}
			if m, err = f.NewMatcher(mode); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		case strings.HasPrefix(text, "> "):
			line, lineNo, haveLog = text[2:], n, true
		case strings.HasPrefix(text, "= "):
			if m == nil || !haveLog {
				t.Fatalf("%s: expectation without a filter and a line", where)
			}
			haveLog = false
			cases++
			l, err := p.Parse(line)
			if err != nil {
				t.Errorf("%s:%d: parse: %v", file, lineNo, err)
				continue
			}
			mt, ok := m.Match(&l)
			want := strings.TrimSpace(text[2:])
			if want == "none" {
				if ok {
					t.Errorf("%s:%d: %s matched (%s %s %q), want none\n  %s", file, lineNo, m.Filter().Name, mt.Kind, mt.Host, mt.User, line)
				}
				continue
			}
			kind, rest, _ := strings.Cut(want, " ")
			host, user, _ := strings.Cut(rest, " ")
			if user != "" {
				if user, err = strconv.Unquote(user); err != nil {
					t.Fatalf("%s: user: %v", where, err)
				}
			}
			switch {
			case !ok:
				t.Errorf("%s:%d: %s did not match, want %s\n  %s", file, lineNo, m.Filter().Name, want, line)
			case mt.Kind.String() != kind || mt.Host != host || mt.User != user:
				t.Errorf("%s:%d: %s got %s %s %q, want %s %s %q\n  %s", file, lineNo, m.Filter().Name, mt.Kind, mt.Host, mt.User, kind, host, user, line)
			}
		default:
			t.Fatalf("%s: cannot read %q", where, text)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cases == 0 {
		t.Errorf("%s: no cases", file)
	}
}
