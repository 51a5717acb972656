package filter_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/filter/fail2ban"
	"github.com/rampart-dev/rampart/internal/logline"
)

var update = flag.Bool("update", false, "rewrite golden files and docs/filters-conformance.md")

// expectation is one annotated corpus line (see testdata/corpus/README.md).
type expectation struct {
	Line  int             `json:"line"`
	Match bool            `json:"match"`
	IP    *string         `json:"ip"`
	Modes []string        `json:"modes"`
	User  json.RawMessage `json:"user"`
}

// checkMode is the mode a line is checked in: aggressive when listed or when
// no modes are given, else the first listed.
// A filter without modes is checked in "".
func (e expectation) checkMode(modes []string) string {
	if len(modes) == 0 {
		return ""
	}
	if e.Modes == nil || slices.Contains(e.Modes, "aggressive") {
		return "aggressive"
	}
	return e.Modes[0]
}

type conformance struct {
	suite, filter string
	imported      bool // a fail2ban filter read from its installed file
	// For imported filters: fail2ban's own verdicts on the same lines
	// (testdata/f2b_oracle.py), the must-match lines it found with the
	// exact address, and the lines where Rampart and fail2ban differ.
	oracle             bool
	oracleExact        int
	oracleFalse        int
	differences        int
	got                map[string]map[int]filter.Match // by mode: line → match
	modes              []string
	must, found, exact int // lines that must match; matched; matched with the right address
	mustNot, falsePos  int
	failures           []string
}

func (c conformance) recall() float64 {
	if c.must == 0 {
		return 1
	}
	return float64(c.exact) / float64(c.must)
}

// fpAllowed is the number of false positives tolerated: none, or 1% where a
// filter has over 100 lines that must not match.
func (c conformance) fpAllowed() int {
	if c.mustNot > 100 {
		return c.mustNot / 100
	}
	return 0
}

func TestConformance(t *testing.T) {
	reg, err := filter.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	zurich, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Skipf("no zone data for Europe/Zurich: %v", err)
	}
	var results []conformance
	for _, f := range reg.Filters() {
		for _, suite := range []string{"fail2ban", "crowdsec"} {
			logPath := filepath.Join("testdata", "corpus", suite, f.Name+".log")
			if _, err := os.Stat(logPath); err != nil {
				continue
			}
			c := runCorpus(t, f, suite, logPath, zurich)
			results = append(results, c)
			if c.recall() < minRecall || c.falsePos > c.fpAllowed() {
				t.Errorf("%s/%s: recall %.1f%% (%d/%d), false positives %d of %d\n  %s",
					suite, f.Name, 100*c.recall(), c.exact, c.must, c.falsePos, c.mustNot, strings.Join(c.failures, "\n  "))
			}
		}
	}
	imported := importedConformance(t, zurich)
	checkGolden(t, filepath.Join("..", "..", "docs", "filters-conformance.md"), conformanceTable(reg, results, imported))
}

// minRecall is the share of must-match lines a filter must find with the
// exact address, built-in and imported alike.
const minRecall = 0.98

// importedConformance runs every filter of the installed fail2ban
// (Debian's package, /etc/fail2ban) over its corpus log. Every filter
// fail2ban ships must load; those with a corpus log must reach minRecall
// with no false positive.
func importedConformance(t *testing.T, loc *time.Location) []conformance {
	t.Helper()
	dir := fail2ban.DefaultDir
	names, err := fail2ban.Names(dir)
	if err != nil || len(names) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("fail2ban's filters are not installed in %s (%v): scripts/test installs Debian's fail2ban", dir, err)
		}
		t.Logf("skipping the imported filters: no fail2ban filters in %s (%v)", dir, err)
		return nil
	}
	var out []conformance
	for _, name := range names {
		f, err := fail2ban.Load(dir, name)
		if err != nil {
			t.Errorf("fail2ban filter %s does not load: %v", name, err)
			continue
		}
		for _, m := range f.Modes {
			if _, err := f.NewMatcher(m); err != nil {
				t.Errorf("fail2ban filter %s mode %s: %v", name, m, err)
			}
		}
		logPath := filepath.Join("testdata", "corpus", "fail2ban", name+".log")
		if _, err := os.Stat(logPath); err != nil {
			continue
		}
		c := runCorpus(t, f, "fail2ban", logPath, loc)
		c.imported = true
		out = append(out, c)
	}
	compareOracle(t, dir, out)
	for _, c := range out {
		switch {
		case c.oracle && c.differences > 0:
			t.Errorf("imported %s: %d lines differ from fail2ban's own verdict\n  %s", c.filter, c.differences, strings.Join(c.failures, "\n  "))
		case c.falsePos > c.oracleFalse:
			t.Errorf("imported %s: %d false positives\n  %s", c.filter, c.falsePos, strings.Join(c.failures, "\n  "))
		case c.recall() < minRecall && (!c.oracle || c.exact < c.oracleExact):
			t.Errorf("imported %s: recall %.1f%% (%d/%d)\n  %s", c.filter, 100*c.recall(), c.exact, c.must, strings.Join(c.failures, "\n  "))
		}
	}
	return out
}

// oracleReply is one answer of testdata/f2b_oracle.py.
type oracleReply struct {
	Filter  string            `json:"filter"`
	Mode    string            `json:"mode"`
	Matches map[string]string `json:"matches"`
	Error   string            `json:"error"`
}

// compareOracle runs fail2ban's own code (Python, Debian's package) over
// the same corpus logs in the same modes, and counts per filter the lines
// where its verdict (match or not, and the address) differs from
// Rampart's. Without fail2ban's Python modules it skips, except in CI.
func compareOracle(t *testing.T, dir string, cs []conformance) {
	t.Helper()
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import fail2ban.server.filter").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("fail2ban's Python modules are needed to compare with fail2ban: %v", err)
		}
		t.Logf("not comparing with fail2ban's own code: %v", err)
		return
	}
	var req bytes.Buffer
	for _, c := range cs {
		for mode := range c.got {
			m := mode
			if m == "aggressive" && !slices.Contains(c.modes, "aggressive") {
				m = ""
			}
			fmt.Fprintf(&req, "{\"filter\": %q, \"mode\": %q, \"log\": %q}\n", c.filter, m, filepath.Join("testdata", "corpus", "fail2ban", c.filter+".log"))
		}
	}
	cmd := exec.Command(python, filepath.Join("testdata", "f2b_oracle.py"), dir)
	cmd.Stdin = &req
	cmd.Env = append(os.Environ(), "TZ=Europe/Zurich")
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("f2b_oracle.py: %v", err)
	}
	replies := map[string]oracleReply{}
	for _, l := range strings.Split(strings.TrimSpace(string(outb)), "\n") {
		var r oracleReply
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("f2b_oracle.py: %v: %s", err, l)
		}
		replies[r.Filter+"\x00"+r.Mode] = r
	}
	for i := range cs {
		c := &cs[i]
		c.oracle = true
		c.failures = nil
		exps := readExpectations(t, filepath.Join("testdata", "corpus", "fail2ban", c.filter+".expect.jsonl"))
		for mode, got := range c.got {
			m := mode
			if m == "aggressive" && !slices.Contains(c.modes, "aggressive") {
				m = ""
			}
			r, ok := replies[c.filter+"\x00"+m]
			if !ok || r.Error != "" {
				t.Errorf("fail2ban could not run %s mode %q: %s", c.filter, m, r.Error)
				continue
			}
			lines := map[int]bool{}
			for n := range got {
				lines[n] = true
			}
			for k := range r.Matches {
				var n int
				fmt.Sscan(k, &n)
				lines[n] = true
			}
			for n := range lines {
				mt, ours := got[n]
				addr, theirs := r.Matches[fmt.Sprint(n)]
				switch {
				case ours && theirs && sameHost(addr, mt):
				case ours && theirs:
					c.differences++
					c.failures = append(c.failures, fmt.Sprintf("line %d [%s]: address %q, fail2ban %q", n, mode, mt.Host, addr))
				case ours:
					c.differences++
					c.failures = append(c.failures, fmt.Sprintf("line %d [%s]: matched (%s), fail2ban did not", n, mode, mt.Host))
				default:
					c.differences++
					c.failures = append(c.failures, fmt.Sprintf("line %d [%s]: fail2ban matched (%s), not Rampart", n, mode, addr))
				}
			}
			for _, e := range exps {
				if e.checkMode(c.modes) != mode {
					continue
				}
				addr, theirs := r.Matches[fmt.Sprint(e.Line)]
				switch {
				case e.Match && theirs && (e.IP == nil || sameHost(*e.IP, filter.Match{Host: addr, Addr: parseAddr(addr)})):
					c.oracleExact++
				case !e.Match && theirs:
					c.oracleFalse++
				}
			}
		}
		slices.Sort(c.failures)
	}
}

func parseAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}

func runCorpus(t *testing.T, f *filter.Filter, suite, logPath string, loc *time.Location) conformance {
	t.Helper()
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	exps := readExpectations(t, strings.TrimSuffix(logPath, ".log")+".expect.jsonl")
	// Run the whole file once per mode: context carries across lines.
	results := map[string]map[int]filter.Match{}
	for _, e := range exps {
		mode := e.checkMode(f.Modes)
		if _, done := results[mode]; done {
			continue
		}
		m, err := f.NewMatcher(mode)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		p := logline.Parser{Location: loc}
		got := map[int]filter.Match{}
		for i, rl := range lines {
			l, err := p.Parse(rl)
			if err != nil {
				continue
			}
			if mt, ok := m.Match(&l); ok && mt.Kind.Failure() {
				got[i+1] = mt
			}
		}
		results[mode] = got
	}
	c := conformance{suite: suite, filter: f.Name, got: results, modes: f.Modes}
	for _, e := range exps {
		mode := e.checkMode(f.Modes)
		mt, matched := results[mode][e.Line]
		text := lines[e.Line-1]
		if len(text) > 140 {
			text = text[:140] + "..."
		}
		if !e.Match {
			c.mustNot++
			if matched {
				c.falsePos++
				c.failures = append(c.failures, fmt.Sprintf("line %d [%s] must not match: %s", e.Line, mode, text))
			}
			continue
		}
		c.must++
		if !matched {
			c.failures = append(c.failures, fmt.Sprintf("line %d [%s] missed: %s", e.Line, mode, text))
			continue
		}
		c.found++
		if e.IP == nil || sameHost(*e.IP, mt) {
			c.exact++
		} else {
			c.failures = append(c.failures, fmt.Sprintf("line %d [%s] address %q, want %q: %s", e.Line, mode, mt.Host, *e.IP, text))
		}
	}
	return c
}

func sameHost(want string, mt filter.Match) bool {
	if a, err := netip.ParseAddr(want); err == nil {
		return mt.Addr.IsValid() && a.Unmap() == mt.Addr
	}
	return want == mt.Host
}

func readExpectations(t *testing.T, path string) []expectation {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var exps []expectation
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e expectation
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		exps = append(exps, e)
	}
	return exps
}

func conformanceTable(reg *filter.Registry, results, imported []conformance) []byte {
	var b bytes.Buffer
	b.WriteString(`# Filter conformance

Generated by ` + "`go test ./internal/filter -run TestConformance -update`" + `; do not edit.

Every built-in filter is run over the annotated sample logs in
` + "`internal/filter/testdata/corpus/`" + ` (derived from fail2ban's and CrowdSec's test
files; see its README), each line in the mode its annotation names. A match
counts only with the exact address the annotation gives. The test fails below
98% recall or on any match of a line annotated as not matching (1% allowed
where a filter has over 100 such lines).

| suite | filter | must match | matched | exact address | recall | must not match | false positives |
|---|---|---:|---:|---:|---:|---:|---:|
`)
	row := func(c conformance) {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %.1f%% | %d | %d |\n",
			c.suite, c.filter, c.must, c.found, c.exact, 100*c.recall(), c.mustNot, c.falsePos)
	}
	for _, c := range results {
		row(c)
	}
	b.WriteString("\n## Built-in filters\n\n| filter | service | modes | programs | kinds |\n|---|---|---|---|---|\n")
	for _, f := range reg.Filters() {
		var kinds []string
		for _, k := range f.Kinds() {
			kinds = append(kinds, k.String())
		}
		progs := strings.Join(f.Programs, ", ")
		if progs == "" {
			progs = "(any: own log file)"
		}
		modes := strings.Join(f.Modes, ", ")
		if modes == "" {
			modes = "-"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", f.Name, f.Service, modes, progs, strings.Join(kinds, ", "))
	}
	var aliases []string
	for _, a := range reg.Aliases() {
		aliases = append(aliases, fmt.Sprintf("`%s` = `%s --mode %s`", a.Name, a.Filter, a.Mode))
	}
	if len(aliases) > 0 {
		b.WriteString("\nAliases: " + strings.Join(aliases, ", ") + ".\n")
	}
	if len(imported) > 0 {
		b.WriteString(`
## fail2ban's own filters, imported

Every filter of Debian's fail2ban package (` + "`/etc/fail2ban/filter.d`" + `, read at run
time by ` + "`internal/filter/fail2ban`" + `; the repository holds no copy) loads, in every
mode it has, and each one with a corpus log is run over it the same way. The
same lines are also run through fail2ban's own code
(` + "`internal/filter/testdata/f2b_oracle.py`" + `, Debian's fail2ban 1.0.2): "fail2ban's
own" is its recall and false positives, and the last column counts the lines
where its verdict (a match or not, and the address) differs from Rampart's.
The test fails on any such line, on a false positive fail2ban does not make
too, and below 98% recall where fail2ban itself reaches more. The corpus comes
from a newer fail2ban than Debian's: the lines its filters have learnt since
(Apache's AH10244, vsftpd's ISO stamps...) are missed by both, and its logs of
filters this version does not ship (cowrie, dante, openvpn, ...) have no row.

| filter | must match | matched | exact address | recall | fail2ban's own | must not match | false positives | fail2ban's own | lines differing from fail2ban |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
`)
		for _, c := range imported {
			own, ownFP, diff := "-", "-", "-"
			if c.oracle {
				own, ownFP, diff = fmt.Sprintf("%.1f%%", 100*float64(c.oracleExact)/float64(max(c.must, 1))), fmt.Sprint(c.oracleFalse), fmt.Sprint(c.differences)
				if c.must == 0 {
					own = "100.0%"
				}
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %.1f%% | %s | %d | %d | %s | %s |\n",
				c.filter, c.must, c.found, c.exact, 100*c.recall(), own, c.mustNot, c.falsePos, ownFP, diff)
		}
	}
	return b.Bytes()
}

// checkGolden compares got with the file at path, or rewrites it with -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s is out of date; run: go test ./internal/filter -run %s -update", path, t.Name())
	}
}
