package filter_test

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/filter/fail2ban"
	"github.com/rampart-dev/rampart/internal/logline"
)

// mixedLog is benchLog (see dispatch_test.go): a mixed Debian syslog
// written by bench/cmd/loggen.
const mixedLog = "testdata/bench/mixed.log"

// readBenchLines parses mixedLog, as 'rampart test' would, before timing.
func readBenchLines(tb testing.TB) []logline.Line {
	f, err := os.Open(mixedLog)
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
	reg, err := filter.Builtin()
	if err != nil {
		b.Fatal(err)
	}
	var ms []*filter.Matcher
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
	routeAll(b, filter.NewRouter(ms...), readBenchLines(b))
}

// routeAll times r over lines and reports lines per second and the share
// matched.
func routeAll(b *testing.B, r *filter.Router, lines []logline.Line) {
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

// BenchmarkImported runs fail2ban's own sshd, postfix and dovecot filters
// (Debian's /etc/fail2ban, read at run time) over the same log, each
// alone, as 'rampart test --filter-file' does. bench/f2b_filters.sh
// compares the same with fail2ban-regex.
func BenchmarkImported(b *testing.B) {
	if _, err := os.Stat(filepath.Join(fail2ban.DefaultDir, "filter.d", "sshd.conf")); err != nil {
		b.Skip("needs Debian's fail2ban (/etc/fail2ban)")
	}
	lines := readBenchLines(b)
	for _, name := range []string{"sshd", "postfix", "dovecot"} {
		b.Run(name, func(b *testing.B) {
			f, err := fail2ban.Load(fail2ban.DefaultDir, name)
			if err != nil {
				b.Fatal(err)
			}
			m, err := f.NewMatcher("")
			if err != nil {
				b.Fatal(err)
			}
			routeAll(b, filter.NewRouter(m), lines)
		})
	}
}
