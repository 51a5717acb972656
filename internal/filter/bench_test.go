package filter

import (
	"bufio"
	"os"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/logline"
)

// benchLog is a mixed Debian syslog (sshd ~40%, postfix ~25%, dovecot ~20%,
// other daemons ~15%) written by bench/cmd/loggen:
//
//	go run ./bench/cmd/loggen -n 2000 -seed 7 -o internal/filter/testdata/bench/mixed.log
const benchLog = "testdata/bench/mixed.log"

// readBenchLines parses benchLog, as 'rampart test' would, before timing.
func readBenchLines(tb testing.TB) []logline.Line {
	f, err := os.Open(benchLog)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	now := time.Date(2025, 3, 20, 0, 0, 0, 0, time.UTC)
	p := logline.Parser{Location: time.UTC, Now: func() time.Time { return now }}
	var lines []logline.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l, err := p.Parse(sc.Text())
		if err != nil {
			tb.Fatal(err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return lines
}

// BenchmarkFilterMixed routes the mixed log through the sshd, postfix and
// dovecot filters in their default modes, as 'rampart test --filter
// sshd,postfix,dovecot' does, and reports lines per second. Parsing is not
// timed (see logline's BenchmarkParse).
func BenchmarkFilterMixed(b *testing.B) {
	reg, err := Builtin()
	if err != nil {
		b.Fatal(err)
	}
	var ms []*Matcher
	for _, name := range []string{"sshd", "postfix", "dovecot"} {
		f, mode, ok := reg.Lookup(name)
		if !ok {
			b.Logf("no filter %q yet: left out", name)
			continue
		}
		m, err := f.NewMatcher(mode)
		if err != nil {
			b.Fatal(err)
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		b.Skip("none of sshd, postfix, dovecot is built in")
	}
	lines := readBenchLines(b)
	r := NewRouter(ms...)
	b.ReportAllocs()
	n, matched := 0, 0
	for b.Loop() {
		for i := range lines {
			if _, _, ok := r.Match(&lines[i]); ok {
				matched++
			}
		}
		n += len(lines)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(matched)/float64(n), "matched/line")
}
