package filter

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/logline"
)

// TestLaterAgreesWithNow feeds every built-in filter, in its default mode
// and "aggressive", the same lines twice: to a Matcher that leaves context
// lines for later (Matcher.later) and to one that matches them at once.
// They must find the same events, line for line. The lines are the corpora,
// the case files and the benchmark log: as written (real sessions); with
// their pids drawn from a few (sessions interleaved, pids reused by other
// clients); and repeated with pids from more than the sessions a Matcher
// keeps (sessions forgotten with a line left for later in them).
func TestLaterAgreesWithNow(t *testing.T) {
	reg, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	p := logline.Parser{Year: 2025, Location: time.UTC}
	var lines []logline.Line
	files, _ := filepath.Glob("testdata/corpus/*/*.log")
	cases, _ := filepath.Glob("testdata/cases/*.txt")
	for _, file := range append(append(files, cases...), benchLog) {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, logline.MaxLen)
		for sc.Scan() {
			if l, err := p.Parse(sc.Text()); err == nil {
				lines = append(lines, l)
			}
		}
		f.Close()
	}
	// Context lines of growing length in one session: some fill what a
	// session keeps, the longest are matched at once.
	for i := range 24 {
		for _, raw := range []string{
			"Feb 12 04:09:18 h sshd[4242]: Failed password for bob" + strconv.Itoa(i) + " from 192.0.2.9 port 5 ssh2",
			"Feb 12 04:09:18 h sshd[4242]: Received disconnect from 192.0.2." + strconv.Itoa(i) + " port 5:11: " + strings.Repeat("x", 50*i),
			"Feb 12 04:09:18 h sshd[4242]: Disconnected from invalid user u" + strconv.Itoa(i) + " 192.0.2.9 port 5 [preauth]",
		} {
			l, err := p.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	hosts := []string{"mail", "mx2"}
	drawn := func(pids, times int) []logline.Line {
		var out []logline.Line
		for range times {
			for _, l := range lines {
				if l.PID != 0 || rng.IntN(4) == 0 {
					l.PID = 1 + rng.IntN(pids)
				}
				// A copy, as a reused line buffer would be.
				l.Host = strings.Clone(hosts[rng.IntN(len(hosts))])
				out = append(out, l)
			}
		}
		return out
	}
	streams := map[string][]logline.Line{
		"as written": lines,
		"few pids":   drawn(7, 3),
		"forgotten":  drawn(3*maxSessions, 1+4*maxSessions/len(lines)),
	}
	later := 0
	for _, f := range reg.Filters() {
		modes := []string{""}
		if len(f.Modes) > 0 {
			modes = append(modes, "aggressive")
		}
		for _, mode := range modes {
			for name, stream := range streams {
				lazy, err := f.NewMatcher(mode)
				if err != nil {
					t.Fatal(err)
				}
				now, _ := f.NewMatcher(mode) // the same filter and mode: the same error
				now.eager = true
				for i := range stream {
					l := stream[i]
					got, gotOK := lazy.Match(&l)
					want, wantOK := now.Match(&l)
					if got != want || gotOK != wantOK {
						t.Fatalf("%s mode %q, lines %s, line %d %q: %+v %v, matching at once %+v %v", f.Name, mode, name, i, l.Raw, got, gotOK, want, wantOK)
					}
				}
				for _, s := range lazy.sess.order {
					if len(s.waiting) > 0 {
						later++
					}
					if len(s.waiting) > maxWaiting {
						t.Fatalf("%s: a session keeps %d bytes of lines for later, more than %d", f.Name, len(s.waiting), maxWaiting)
					}
				}
			}
		}
	}
	if later == 0 {
		t.Fatal("no context line was left for later: the test shows nothing")
	}
}

// TestLaterTakesEachLineInOrder: the context lines of one session left for
// later all count, in order, those taken up early to make room included:
// the user named by the first and not by the others is the one a later
// line without a user takes.
func TestLaterTakesEachLineInOrder(t *testing.T) {
	_, match := sshdMatcher(t)
	var got []Match
	for _, raw := range []string{
		"Feb 12 04:09:18 h sshd[26713]: Failed password for bob from 192.0.2.7 port 51353 ssh2",
		"Feb 12 04:09:19 h sshd[26713]: Disconnecting invalid user alice 192.0.2.7 port 51353: Too many authentication failures [preauth]",
		"Feb 12 04:09:19 h sshd[26713]: Received disconnect from 192.0.2.7 port 51353:11: " + strings.Repeat("x", 400),
		"Feb 12 04:09:19 h sshd[26713]: Received disconnect from 192.0.2.7 port 51353:11: " + strings.Repeat("y", 400),
		"Feb 12 04:09:19 h sshd[26713]: Connection closed by 192.0.2.7 port 51353 [preauth]",
		"Feb 12 04:09:20 h sshd[26713]: Disconnecting: Too many authentication failures [preauth]",
	} {
		if mt, ok := match(raw); ok {
			got = append(got, mt)
		}
	}
	if len(got) != 2 || got[1].User != "alice" || got[1].Host != "192.0.2.7" {
		t.Fatalf("events %+v; want the second for alice at 192.0.2.7", got)
	}
}

// TestLaterNotForSummaryOrUserChange: a filter's own context rules that sum
// up a session or count user changes change what a session counts, so
// they are matched at once; plain ones may wait.
func TestLaterNotForSummaryOrUserChange(t *testing.T) {
	m := compiled(t, `
name = "own"
service = "own"
[[rule]]
kind = "context"
summary = true
patterns = ['bye <HOST>']
[[rule]]
kind = "context"
user_change = true
patterns = ['as <USER> from <HOST>']
[[rule]]
kind = "context"
patterns = ['hello <HOST>']
`)
	later := map[string]bool{}
	for _, c := range m.disp.all {
		later[c.pat.src] = c.later
	}
	want := map[string]bool{"bye <HOST>": false, "as <USER> from <HOST>": false, "hello <HOST>": true}
	if len(later) != len(want) {
		t.Fatalf("candidates %v", later)
	}
	for src, w := range want {
		if later[src] != w {
			t.Errorf("%q may wait: %v, want %v", src, later[src], w)
		}
	}
}

// TestLaterForgottenWithItsSession: a context line left for later in a
// session that is forgotten goes with it; the session that reuses its
// memory does not take its client.
func TestLaterForgottenWithItsSession(t *testing.T) {
	m, match := sshdMatcher(t)
	match("Feb 12 04:09:18 h sshd[1]: Failed password for bob from 192.0.2.7 port 51353 ssh2")
	match("Feb 12 04:09:19 h sshd[1]: Connection closed by 192.0.2.7 port 51353 [preauth]")
	if s := m.sess.get(sessionKey{host: "h", prog: "sshd", pid: 1}, false); s == nil || len(s.waiting) == 0 {
		t.Fatal("the context line was not left for later")
	}
	for pid := 2; pid <= maxSessions; pid++ { // fills the table
		match(fmt.Sprintf("Feb 12 04:09:20 h sshd[%d]: Failed password for bob from 198.51.100.1 port 2 ssh2", pid))
	}
	// A new session, in the memory of the oldest (pid 1), whose first line
	// names no client: it waits for one.
	if mt, ok := match("Feb 12 04:09:21 h sshd[99999]: Disconnecting: Too many authentication failures [preauth]"); ok {
		t.Fatalf("a line naming no client counted as %+v", mt)
	}
}

// sshdMatcher returns a Matcher of the built-in sshd filter in its default
// mode, and a function that parses a syslog line and matches it.
func sshdMatcher(t *testing.T) (*Matcher, func(raw string) (Match, bool)) {
	t.Helper()
	reg, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	f, _, ok := reg.Lookup("sshd")
	if !ok {
		t.Fatal("no built-in sshd filter")
	}
	m, err := f.NewMatcher("")
	if err != nil {
		t.Fatal(err)
	}
	return m, matching(t, m)
}

// compiled returns the matcher, in its default mode, of the filter def
// defines.
func compiled(t *testing.T, def string) *Matcher {
	t.Helper()
	f, _, err := Parse("own.toml", []byte(def))
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.NewMatcher("")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// matching returns a function that parses a raw line (stamps of 2025,
// UTC) and matches it with m.
func matching(t *testing.T, m *Matcher) func(raw string) (Match, bool) {
	p := logline.Parser{Year: 2025, Location: time.UTC}
	return func(raw string) (Match, bool) {
		t.Helper()
		l, err := p.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return m.Match(&l)
	}
}

// TestRepeatedLineCounts: a line rsyslog wrote for N repeats of a failure
// counts N failures.
func TestRepeatedLineCounts(t *testing.T) {
	_, match := sshdMatcher(t)
	mt, ok := match("Feb 12 04:09:18 h sshd[7]: message repeated 3 times: [ Failed password for root from 192.0.2.9 port 51353 ssh2]")
	if !ok || mt.Count != 3 || mt.Host != "192.0.2.9" {
		t.Errorf("match %v, count %d, host %q; want 3 from 192.0.2.9", ok, mt.Count, mt.Host)
	}
	mt, ok = match("Feb 12 04:09:19 h sshd[8]: Failed password for root from 192.0.2.9 port 51354 ssh2")
	if !ok || mt.Count != 1 {
		t.Errorf("a plain line: match %v, count %d; want 1", ok, mt.Count)
	}
}
