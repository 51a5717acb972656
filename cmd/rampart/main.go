// Command rampart defends a server against brute force, enumeration and
// probing. This file wires subcommands; each lives in its own file.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rampart-dev/rampart/internal/config"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

// commands lists the subcommands in the order help shows them.
func commands() []command {
	return []command{
		{"run", "run the daemon: follow logs, detect, ban in the firewall", runRun},
		{"status", "show the running daemon's jails, counters and bans", runStatus},
		{"ban", "ban an address or prefix now", runBan},
		{"unban", "lift a ban", runUnban},
		{"reload", "reload the running daemon's configuration, all or nothing", runReload},
		{"report", "summarise attacks: countries, networks, user names, bans over time", runReport},
		{"trap", "the mail trap: accounts, quarantined mail (list, show, export)", runTrap},
		{"evidence", "what trapped mail carried: links, domains, senders, recipients, attachments", runEvidence},
		{"fleet", "the fleet: node and feed keys (keygen, pubkey, feed-keygen)", runFleet},
		{"abuse", "abuse reports: list, show, approve or reject those held for review", runAbuse},
		{"replay", "run old logs through filters and engine; print the decisions", runReplay},
		{"test", "run a filter over log files, like fail2ban-regex", runTest},
		{"filters", "list the built-in filters and their modes", runFilters},
		{"check-config", "validate a configuration file", runCheckConfig},
		{"check-postfix", "audit Postfix's acceptance policy: relaying, AUTH, limits, Rampart's hooks", runCheckPostfix},
		{"import-fail2ban", "write a rampart.toml from a fail2ban configuration", runImportFail2ban},
		{"version", "print the version", runVersion},
	}
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError ends the command with a given status after its output.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// errFlagHelp is returned after -h printed help: exit status 0.
var errFlagHelp = flag.ErrHelp

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return 0
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		var ue *usageError
		var ee *exitError
		switch {
		case err == nil, errors.Is(err, errFlagHelp):
			return 0
		case errors.As(err, &ee):
			fmt.Fprintf(stderr, "rampart %s: %v\n", c.name, err)
			return ee.code
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "rampart %s: %v\n", c.name, err)
			fmt.Fprintf(stderr, "hint: see 'rampart %s --help'\n", c.name)
			return 2
		default:
			fmt.Fprintf(stderr, "rampart %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "rampart: unknown command %q\n", args[0])
	if s := suggest(args[0]); s != "" {
		fmt.Fprintf(stderr, "hint: did you mean 'rampart %s'?\n", s)
	} else {
		fmt.Fprintln(stderr, "hint: see 'rampart --help'")
	}
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Rampart defends a server against brute force, enumeration and probing.

Usage:
  rampart <command> [flags] [arguments]

Commands:
`)
	width := 0
	for _, c := range commands() {
		width = max(width, len(c.name))
	}
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'rampart <command> --help' for a command's flags.
`)
}

// suggest returns the command closest to a mistyped one, if any is close.
func suggest(s string) string {
	var names []string
	for _, c := range commands() {
		if strings.HasPrefix(c.name, s) {
			return c.name
		}
		names = append(names, c.name)
	}
	return config.Closest(s, names)
}

// newFlags returns a FlagSet whose -h prints synopsis, description and flags.
func newFlags(name, synopsis, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("rampart "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rampart %s %s\n\n%s\n", name, synopsis, strings.TrimSpace(description))
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseWords parses a command's words and flags in any order ("show 3
// --json", "--json show 3") and returns the words.
func parseWords(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

// parseID reads a positive ID given on the command line; what names it in
// the error ("message", "report").
func parseID(s, what string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, usagef("%q is not a %s ID", s, what)
	}
	return n, nil
}

// newTable starts a table for people on w under header, its columns
// separated by tabs; Flush writes it.
func newTable(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

// parseFlags parses args, flags and other arguments in any order, as
// people type them ("replay auth.log --json"); "--" ends the flags. The
// other arguments are then fs.Args(), in their order. Flag errors are
// usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var other []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return errFlagHelp
			}
			return &usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			other = append(other, rest...)
			break
		}
		other, args = append(other, rest[0]), rest[1:]
	}
	// Parse again, to leave the other arguments in fs.Args().
	return fs.Parse(append([]string{"--"}, other...))
}

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "", "Print the version and build information.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "rampart", version())
	return nil
}

// version comes from the build information: the module version for
// `go install`, else the VCS revision.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "devel-" + rev + dirty
	}
	if v == "" {
		v = "(devel)"
	}
	return v + " " + bi.GoVersion
}
