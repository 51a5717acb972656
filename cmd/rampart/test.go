package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/filter/fail2ban"
	"github.com/rampart-dev/rampart/internal/logline"
	"github.com/rampart-dev/rampart/internal/source"
)

const testHelp = `
Run filters over log files and report what they match, like fail2ban-regex.
FILE "-" reads standard input. Several filters, separated by commas, are
routed by program name as the daemon routes them.

With --json, one object per matched line (failures only, unless --successes):
  {"line": N, "ip": "...", "user": "...", "time": "RFC 3339", "kind": "..."}
and with --show-missed also one per missed line, in line order:
  {"line": N, "missed": true, "time": "RFC 3339", "text": "the whole line"}
("file" is added when several files are read). Without --json, a summary:
lines read and skipped, matches per kind, lines per second, and with
--show-missed the count of missed lines and the first 1,000 of them.

Exit status: 0 on success, 1 when a file cannot be read, 2 for a usage error
such as an unknown filter (see 'rampart filters').
`

func runTest(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("test", "--filter NAME[,NAME...] | --filter-file FILE [--mode MODE] [--json] FILE...", testHelp, stderr)
	names := fs.String("filter", "", "filter `name`s, comma-separated, or \"all\"")
	filterFile := fs.String("filter-file", "", "test the filter in `file` (.toml: Rampart's patterns; .conf: fail2ban's format)")
	f2bDir := fs.String("fail2ban-dir", fail2ban.DefaultDir, "fail2ban configuration `dir`ectory: names no other filter has are read from its filter.d (\"\" for none)")
	ownDir := fs.String("filters-dir", fail2ban.DefaultOwnDir, "`dir`ectory of the server's own filters (*.toml, *.conf)")
	mode := fs.String("mode", "", "filter `mode`, e.g. aggressive (default: each filter's default)")
	asJSON := fs.Bool("json", false, "print one JSON object per matched line")
	successes := fs.Bool("successes", false, "also print successful logins (kind auth-success)")
	showMissed := fs.Bool("show-missed", false, "print lines that look like failures but matched no rule")
	year := fs.Int("year", 0, "`year` for stamps without one (default: current year, rolled back for future stamps)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to `file` (for 'go tool pprof')")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *names == "" && *filterFile == "" {
		return usagef("--filter or --filter-file is required")
	}
	if *names != "" && *filterFile != "" {
		return usagef("--filter and --filter-file exclude each other")
	}
	if fs.NArg() == 0 {
		return usagef("no log file given (use - for standard input)")
	}
	reg, err := filter.Builtin()
	if err != nil {
		return err
	}
	if err := fail2ban.Extend(reg, *ownDir, *f2bDir); err != nil {
		return err
	}
	if *filterFile != "" {
		own, err := filter.Builtin()
		if err != nil {
			return err
		}
		if err := fail2ban.AddFile(own, *filterFile); err != nil {
			return &usageError{err.Error()}
		}
		for _, f := range own.Filters() {
			if f.Origin != "" {
				*names = f.Name
			}
		}
		reg = own
	}
	var ms []*filter.Matcher
	list := strings.Split(*names, ",")
	if *names == "all" {
		list = nil
		for _, f := range reg.Filters() {
			list = append(list, f.Name)
		}
	}
	for _, name := range list {
		f, aliasMode, err := reg.Find(name)
		if err != nil {
			if strings.HasPrefix(err.Error(), "unknown filter") {
				return unknownFilter(reg, name)
			}
			return &usageError{err.Error()}
		}
		m := *mode
		if m == "" {
			m = aliasMode
		}
		if len(f.Modes) == 0 {
			m = "" // filters without modes accept and ignore --mode
		}
		matcher, err := f.NewMatcher(m)
		if err != nil {
			return &usageError{err.Error()}
		}
		ms = append(ms, matcher)
	}
	// The files are read as they are now: one clock reading dates every
	// year-less stamp, instead of one per line.
	runStart := time.Now()
	t := &tester{
		router: filter.NewRouter(ms...),
		parser: logline.Parser{Year: *year, Now: func() time.Time { return runStart }},
		json:   *asJSON,
		succ:   *successes,
		missed: *showMissed,
		multi:  fs.NArg() > 1,
		out:    bufio.NewWriterSize(stdout, 64<<10),
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	for _, path := range fs.Args() {
		if err := t.file(path); err != nil {
			t.out.Flush()
			return err
		}
	}
	if !t.json {
		t.summary(ms, time.Since(start))
	}
	return t.out.Flush()
}

func unknownFilter(reg *filter.Registry, name string) error {
	msg := fmt.Sprintf("unknown filter %q", name)
	if best := config.Closest(name, reg.Names()); best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return &usageError{msg + "; 'rampart filters' lists them"}
}

type tester struct {
	router *filter.Router
	parser logline.Parser
	json   bool
	succ   bool
	missed bool
	multi  bool
	out    *bufio.Writer

	lines, matched, events int
	skipped                map[string]int
	kinds                  [256]int // matches per event.Kind (a uint8): no map update per match
	missedLines            []string // the first maxMissed of them
	missedCount            int
}

// testMissed is a line --show-missed reports, in --json output.
type testMissed struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line"`
	Missed bool   `json:"missed"`
	Time   string `json:"time,omitempty"`
	Text   string `json:"text"`
}

type testMatch struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line"`
	IP   string `json:"ip"`
	User string `json:"user,omitempty"`
	Time string `json:"time,omitempty"`
	Kind string `json:"kind,omitempty"`
}

func (t *tester) file(path string) error {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	n := 0
	enc := json.NewEncoder(t.out)
	err := source.ReadLines(r, func(rec []byte, tooLong bool) error {
		n++
		t.lines++
		if tooLong {
			t.skip(logline.ErrTooLong)
			return nil
		}
		// rec is ReadLines' buffer, valid until the next record. Nothing
		// here keeps the line: matches are counted or printed at once and
		// the Matchers copy what they remember. So no copy per line.
		// ParseLazy leaves year-less stamps undated (it fails where Parse
		// does): only the lines printed below need their time.
		l, stamp, err := t.parser.ParseLazy(unsafe.String(unsafe.SliceData(rec), len(rec)))
		if err != nil {
			t.skip(err)
			return nil
		}
		l.Origin = path
		mt, _, ok := t.router.Match(&l)
		if !ok {
			if !t.missed || !looksSuspicious(l.Message) {
				return nil
			}
			t.missedCount++
			if t.json {
				o := testMissed{Line: n, Missed: true, Time: t.time(&l, stamp), Text: l.Raw}
				if t.multi {
					o.File = path
				}
				return enc.Encode(o)
			}
			if len(t.missedLines) < maxMissed {
				t.missedLines = append(t.missedLines, fmt.Sprintf("%d: %s", n, l.Raw))
			}
			return nil
		}
		t.matched++
		t.events += mt.Count
		t.kinds[mt.Kind] += mt.Count
		if !t.json || (!mt.Kind.Failure() && !t.succ) {
			return nil
		}
		o := testMatch{Line: n, IP: mt.Host, User: mt.User, Kind: mt.Kind.String()}
		if mt.Addr.IsValid() {
			o.IP = mt.Addr.String()
		}
		if t.multi {
			o.File = path
		}
		o.Time = t.time(&l, stamp)
		return enc.Encode(o)
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// time dates a line ParseLazy left undated, for printing: RFC 3339, or ""
// when it has no time.
func (t *tester) time(l *logline.Line, stamp logline.Stamp) string {
	if l.Time.IsZero() {
		l.Time = t.parser.Date(stamp)
	}
	if l.Time.IsZero() {
		return ""
	}
	return l.Time.Format(time.RFC3339Nano)
}

func (t *tester) skip(err error) {
	if errors.Is(err, logline.ErrEmpty) {
		return
	}
	if t.skipped == nil {
		t.skipped = map[string]int{}
	}
	t.skipped[err.Error()]++
}

// maxMissed bounds the missed lines kept for printing, so --show-missed over
// a huge log does not hold it all in memory.
const maxMissed = 1000

// suspiciousWords mark lines that --show-missed reports when no rule matched.
var suspiciousWords = []string{"fail", "invalid", "denied", "refused", "illegal", "reject", "not allowed", "unknown user", "error", "mismatch", "bad "}

func looksSuspicious(msg string) bool {
	lower := strings.ToLower(msg)
	for _, w := range suspiciousWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

func (t *tester) summary(ms []*filter.Matcher, elapsed time.Duration) {
	w := t.out
	for _, m := range ms {
		mode := m.Mode()
		if mode == "" {
			mode = "-"
		}
		fmt.Fprintf(w, "Filter:   %s (mode %s, service %s)\n", m.Filter().Name, mode, m.Filter().Service)
	}
	skipped := 0
	for _, n := range t.skipped {
		skipped += n
	}
	fmt.Fprintf(w, "Lines:    %d read, %d matched, %d skipped\n", t.lines, t.matched, skipped)
	reasons := make([]string, 0, len(t.skipped))
	for r := range t.skipped {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		fmt.Fprintf(w, "  skipped: %-40s %d\n", r, t.skipped[r])
	}
	if t.events > 0 {
		fmt.Fprintf(w, "Events:   %d\n", t.events)
		for _, k := range event.Kinds() {
			if n := t.kinds[k]; n > 0 {
				fmt.Fprintf(w, "  %-18s %d\n", k, n)
			}
		}
	}
	secs := elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(t.lines) / secs
	}
	fmt.Fprintf(w, "Time:     %.3fs, %.0f lines/s\n", secs, rate)
	if t.missed {
		fmt.Fprintf(w, "Missed:   %d lines look like failures but matched no rule\n", t.missedCount)
		for _, l := range t.missedLines {
			fmt.Fprintf(w, "  %s\n", l)
		}
		if more := t.missedCount - len(t.missedLines); more > 0 {
			fmt.Fprintf(w, "  ... and %d more (only the first %d are kept)\n", more, maxMissed)
		}
	}
}

const filtersHelp = `
List the filters: the built-in ones and the server's own (--filters-dir,
*.toml and *.conf), with what each reads, its modes (the first is the
default; --mode or a jail's mode picks another), the programs whose lines it
reads ("any" for a filter meant for a file of its own, such as a web
server's log), its aliases (other names for it in one mode) and, for an own
filter, its file. With --fail2ban, also every filter of the fail2ban
configuration in --fail2ban-dir, which jails and 'rampart test' find by name.
`

func runFilters(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("filters", "[--fail2ban]", filtersHelp, stderr)
	ownDir := fs.String("filters-dir", fail2ban.DefaultOwnDir, "`dir`ectory of the server's own filters")
	f2bDir := fs.String("fail2ban-dir", fail2ban.DefaultDir, "fail2ban configuration `dir`ectory")
	withF2B := fs.Bool("fail2ban", false, "also list fail2ban's filters")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	reg, err := filter.Builtin()
	if err != nil {
		return err
	}
	if err := fail2ban.Extend(reg, *ownDir, ""); err != nil {
		return err
	}
	aliases := map[string][]string{}
	for _, a := range reg.Aliases() {
		aliases[a.Filter] = append(aliases[a.Filter], fmt.Sprintf("%s (mode %s)", a.Name, a.Mode))
	}
	w := bufio.NewWriter(stdout)
	for i, f := range reg.Filters() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s\n  %s\n", f.Name, f.Description)
		if len(f.Modes) > 0 {
			modes := append([]string{f.Modes[0] + " (default)"}, f.Modes[1:]...)
			fmt.Fprintf(w, "  modes     %s\n", strings.Join(modes, ", "))
		}
		programs := "any"
		if len(f.Programs) > 0 {
			programs = strings.Join(f.Programs, ", ")
		}
		fmt.Fprintf(w, "  programs  %s\n", programs)
		if as := aliases[f.Name]; len(as) > 0 {
			fmt.Fprintf(w, "  aliases   %s\n", strings.Join(as, ", "))
		}
		if f.Origin != "" {
			fmt.Fprintf(w, "  file      %s\n", f.Origin)
		}
	}
	if *withF2B {
		names, err := fail2ban.Names(*f2bDir)
		if err != nil {
			return fmt.Errorf("fail2ban filters: %w", err)
		}
		fmt.Fprintf(w, "\nfail2ban's filters in %s (used where no filter above has the name):\n", filepath.Join(*f2bDir, "filter.d"))
		for _, n := range names {
			f, err := fail2ban.Load(*f2bDir, n)
			if err != nil {
				fmt.Fprintf(w, "  %-22s does not load: %v\n", n, err)
				continue
			}
			modes := ""
			if len(f.Modes) > 0 {
				modes = " (modes " + f.Modes[0] + " (default)"
				if len(f.Modes) > 1 {
					modes += ", " + strings.Join(f.Modes[1:], ", ")
				}
				modes += ")"
			}
			shadow := ""
			if _, _, ok := reg.Lookup(n); ok {
				shadow = " [a filter above has this name]"
			}
			fmt.Fprintf(w, "  %s%s%s\n", n, modes, shadow)
		}
	}
	return w.Flush()
}
