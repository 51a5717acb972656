// Command score compares decisions (bans) with attacksim's ground truth.
//
//	score -truth truth.jsonl rampart=rampart.jsonl [fail2ban=f2b.jsonl]
//
// Each decisions file holds one JSON object per line in the format of
// `rampart replay --json`: {"ip": "address or CIDR", "time": "RFC 3339",
// "duration_s": N, "scenario": "...", "reason": "..."}; duration_s 0 is a
// ban without end.
//
// An attempt is covered when a ban whose target holds its address was in
// force when it began: start < t < start+duration. The inequality at the
// start is strict on purpose: log stamps have one-second resolution, and a
// ban stamped with the attempt's own second is the ban that attempt (or a
// simultaneous one) triggered; the password had been checked already.
//
// Per scenario it reports attempts, attempts that got through (not
// covered), the same counting only attempts made at least 10 minutes
// after the scenario's first attempt, addresses of legitimate users held
// by any ban at any moment, and the bans whose target holds an address of
// the scenario. With two decisions files it prints them side by side, the
// first compared with the second, and checks the benchmark's targets.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

type tool struct {
	name   string
	scores []Score
	total  int // bans issued
}

func main() {
	truthPath := flag.String("truth", "", "ground truth `file` (truth.jsonl from attacksim)")
	plain := flag.String("plain", "naive", "comma-separated attack `scenarios` that do not rotate (the rest are held to the rotation targets)")
	verbose := flag.Bool("v", false, "break each scenario's bans down by the tool's own scenario or jail")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: score -truth truth.jsonl NAME=DECISIONS.jsonl [NAME=DECISIONS.jsonl]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(os.Stdout, *truthPath, flag.Args(), strings.Split(*plain, ","), *verbose); err != nil {
		fmt.Fprintf(os.Stderr, "score: %v\n", err)
		os.Exit(2)
	}
}

func run(w io.Writer, truthPath string, args []string, plain []string, verbose bool) error {
	if truthPath == "" || len(args) == 0 || len(args) > 2 {
		return errors.New("need -truth and one or two NAME=FILE decisions files")
	}
	truth, err := readFile(truthPath, readTruth)
	if err != nil {
		return err
	}
	var tools []tool
	for _, arg := range args {
		name, path, ok := strings.Cut(arg, "=")
		if !ok || name == "" {
			return fmt.Errorf("%q: want NAME=FILE", arg)
		}
		bans, err := readFile(path, readBans)
		if err != nil {
			return err
		}
		n := 0
		for _, b := range bans {
			if !b.Allow {
				n++
			}
		}
		tools = append(tools, tool{name: name, scores: score(truth, bans), total: n})
	}
	if len(tools) == 1 {
		printOne(w, tools[0])
	} else {
		printTwo(w, tools[0], tools[1])
		printTargets(w, tools[0], tools[1], plain)
	}
	if verbose {
		for _, t := range tools {
			printRules(w, t)
		}
	}
	return nil
}

func readFile[T any](path string, read func(io.Reader) ([]T, error)) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out, err := read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

func pct(n, of int) string {
	if of == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

func printOne(w io.Writer, t tool) {
	fmt.Fprintf(w, "Attacks (%s, %d bans issued in all)\n\n", t.name, t.total)
	fmt.Fprintln(w, "| scenario | attempts | got through | after 10 min: through / attempts | bans |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, s := range t.scores {
		if s.Role == "attacker" {
			fmt.Fprintf(w, "| %s | %d | %d (%s) | %d / %d (%s) | %d |\n", s.Scenario, s.Attempts, s.Through, pct(s.Through, s.Attempts),
				s.AfterThrough, s.After, pct(s.AfterThrough, s.After), s.Bans)
		}
	}
	fmt.Fprintf(w, "\nLegitimate users (%s)\n\n", t.name)
	fmt.Fprintln(w, "| scenario | attempts | blocked | addresses | addresses banned |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, s := range t.scores {
		if s.Role == "legit" {
			fmt.Fprintf(w, "| %s | %d | %d | %d | %d %s |\n", s.Scenario, s.Attempts, s.Blocked(), s.Addresses, s.Banned, list(s.BannedList))
		}
	}
}

func printTwo(w io.Writer, a, b tool) {
	fmt.Fprintf(w, "Attacks: %s against %s\n\n", a.name, b.name)
	fmt.Fprintf(w, "| scenario | attempts | through %[1]s | through %[2]s | ratio | after 10 min: through %[1]s | after 10 min: through %[2]s | bans %[1]s | bans %[2]s |\n", a.name, b.name)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, s := range a.scores {
		if s.Role != "attacker" {
			continue
		}
		o := b.scores[i]
		fmt.Fprintf(w, "| %s | %d | %d (%s) | %d (%s) | %s | %d (%s) | %d (%s) | %d | %d |\n", s.Scenario, s.Attempts,
			s.Through, pct(s.Through, s.Attempts), o.Through, pct(o.Through, o.Attempts), pct(s.Through, o.Through),
			s.AfterThrough, pct(s.AfterThrough, s.After), o.AfterThrough, pct(o.AfterThrough, o.After), s.Bans, o.Bans)
	}
	fmt.Fprintf(w, "\nratio: attempts through %s as a share of those through %s. After 10 min: attempts made 10 minutes or more after the scenario's first, as a share of those attempts.\n", a.name, b.name)
	fmt.Fprintf(w, "\nLegitimate users\n\n")
	fmt.Fprintf(w, "| scenario | attempts | addresses | blocked %[1]s | blocked %[2]s | addresses banned %[1]s | addresses banned %[2]s |\n", a.name, b.name)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for i, s := range a.scores {
		if s.Role != "legit" {
			continue
		}
		o := b.scores[i]
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d %s | %d %s |\n", s.Scenario, s.Attempts, s.Addresses, s.Blocked(), o.Blocked(),
			s.Banned, list(s.BannedList), o.Banned, list(o.BannedList))
	}
	fmt.Fprintf(w, "\nBans issued in all: %s %d, %s %d.\n", a.name, a.total, b.name, b.total)
}

func list(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	if len(xs) > 4 {
		return "(" + strings.Join(xs[:4], ", ") + ", …)"
	}
	return "(" + strings.Join(xs, ", ") + ")"
}

// printTargets checks the benchmark's targets for tool a against tool b:
// on rotating scenarios a lets through at most 10% of what b lets
// through, and at most 2% of the attempts after the first 10 minutes; on
// the plain ones no more than b; no legitimate address banned.
func printTargets(w io.Writer, a, b tool, plain []string) {
	fmt.Fprintf(w, "\nTargets for %s\n\n", a.name)
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	for i, s := range a.scores {
		o := b.scores[i]
		switch {
		case s.Role == "legit":
			fmt.Fprintf(w, "- %s: legitimate addresses banned %d = 0: %s\n", s.Scenario, s.Banned, mark(s.Banned == 0))
		case slices.Contains(plain, s.Scenario):
			fmt.Fprintf(w, "- %s: through %d <= %s's %d: %s\n", s.Scenario, s.Through, b.name, o.Through, mark(s.Through <= o.Through))
		default:
			fmt.Fprintf(w, "- %s: through %d <= 10%% of %s's %d: %s; after 10 min %s <= 2%%: %s\n", s.Scenario,
				s.Through, b.name, o.Through, mark(10*s.Through <= o.Through),
				pct(s.AfterThrough, s.After), mark(50*s.AfterThrough <= s.After))
		}
	}
}

func printRules(w io.Writer, t tool) {
	fmt.Fprintf(w, "\nBans of %s by its own scenario (a ban holding addresses of several scenarios counts for each)\n\n", t.name)
	for _, s := range t.scores {
		keys := slices.Sorted(maps.Keys(s.ByRule))
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.ByRule[k]))
		}
		fmt.Fprintf(w, "- %s: %s\n", s.Scenario, strings.Join(parts, ", "))
	}
}
