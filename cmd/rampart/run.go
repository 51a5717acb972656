package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/firewall"
)

const runHelp = `
Run the daemon: follow the configured logs, detect attacks, ban in the
firewall. Without --config the embedded defaults protect sshd (journald, or
/var/log/auth.log) and, where they run, Postfix and Dovecot
('rampart check-config --print-defaults' shows them).

The firewall is nftables when possible, else ipset+iptables, else a
log-only dry run, which start-up says loudly. Bans live in the kernel with
timeouts: they stay in force, and expire on time, while the daemon is down.

SIGHUP (or 'rampart reload') reloads the configuration without dropping
bans or failures in progress; a configuration that cannot be loaded or
started in full leaves the running one in force. SIGTERM and SIGINT stop
the daemon. --flush removes everything Rampart installed in the
firewall (table, sets, rules), ends the active bans in the store (kept in
the history as ended by the flush, so the next start does not put them
back) and exits; it refuses while a daemon is running.
`

func runRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "[--config FILE] [--dry-run] [--flush]", runHelp, stderr)
	cfgPath := fs.String("config", "", "configuration `file` (default: embedded defaults)")
	dryRun := fs.Bool("dry-run", false, "log decisions instead of changing the firewall")
	flush := fs.Bool("flush", false, "remove Rampart's firewall table, sets and rules, then exit")
	stateDir := fs.String("state-dir", "", "override daemon.state_dir (the SQLite store)")
	socket := fs.String("socket", "", "override daemon.socket (the control socket)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *dryRun && *flush {
		return usagef("--dry-run and --flush cannot be combined")
	}
	load := func() (*config.Config, error) {
		c, err := loadConfig(*cfgPath)
		if err != nil {
			return nil, err
		}
		if *stateDir != "" {
			c.Daemon.StateDir = *stateDir
		}
		if *socket != "" {
			c.Daemon.Socket = *socket
		}
		if *dryRun {
			c.Firewall.Backend = "log"
		}
		userPaths(c, *stateDir == "", *socket == "")
		return c, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *flush {
		res, err := daemon.Flush(ctx, cfg, nil)
		if err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		fmt.Fprintf(stdout, "removed Rampart's firewall state (table inet %s, ipsets %s*); ended %d active bans in the store\n",
			res.Table, res.IPSetPrefix, res.Ended)
		return nil
	}
	log := newLogger(stderr, cfg.Daemon.LogLevel, cfg.Daemon.LogFormat)
	reg, err := daemon.Filters(cfg)
	if err != nil {
		return err
	}
	if cfg.File == "" {
		log.Info("no --config given: using the embedded defaults")
	}
	d, err := daemon.New(ctx, daemon.Options{Config: cfg, Registry: reg, Logger: log, Reload: load, Version: version()})
	if err != nil {
		return err
	}
	defer d.Close()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return d.Run(ctx, hup)
}

// userPaths moves the state directory and the control socket to the user's
// own directories when rampart runs unprivileged and cannot write the
// system ones: a dry run must still work for a newcomer trying it out.
func userPaths(c *config.Config, state, socket bool) {
	if os.Geteuid() == 0 {
		return
	}
	writable := func(dir string) bool {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false
		}
		f, err := os.CreateTemp(dir, ".probe-*")
		if err != nil {
			return false
		}
		f.Close()
		os.Remove(f.Name())
		return true
	}
	home, _ := os.UserHomeDir()
	if state && !writable(c.Daemon.StateDir) {
		base := os.Getenv("XDG_STATE_HOME")
		if base == "" {
			base = filepath.Join(home, ".local", "state")
		}
		c.Daemon.StateDir = filepath.Join(base, "rampart")
		if !writable(c.Daemon.StateDir) {
			c.Daemon.StateDir = filepath.Join(os.TempDir(), fmt.Sprintf("rampart-%d", os.Geteuid()))
		}
	}
	if socket && !writable(filepath.Dir(c.Daemon.Socket)) {
		dir := os.Getenv("XDG_RUNTIME_DIR")
		if dir == "" {
			dir = c.Daemon.StateDir
		}
		if !writable(dir) {
			dir = c.Daemon.StateDir
		}
		c.Daemon.Socket = filepath.Join(dir, "rampart.sock")
	}
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

const checkHelp = `
Check a configuration file: syntax, keys, values and their ranges, filters
and modes, and what 'rampart run' would fail on or quietly do without on
this host: no enabled jail, a Dovecot auth_file that cannot be read or is
empty, an ASN database that cannot be opened, a listen address that is
not this host's. Errors name the file, the line and the key; the exit
status is 1 when there is one. Warnings do not fail the check: a log file
that does not exist yet (run waits for it), a jail whose only source is
journald on a host without it, a syslog listener beyond loopback (syslog
has no authentication).

With --print-defaults, print the embedded defaults instead (a starting
point for /etc/rampart/rampart.toml).
`

func runCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check-config", "[--config FILE] [--print-defaults]", checkHelp, stderr)
	cfgPath := fs.String("config", "", "configuration `file` (default: embedded defaults)")
	printDefaults := fs.Bool("print-defaults", false, "print the embedded default configuration")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *printDefaults {
		_, err := stdout.Write(config.DefaultTOML())
		return err
	}
	if fs.NArg() == 1 && *cfgPath == "" {
		*cfgPath = fs.Arg(0)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	reg, err := daemon.Filters(cfg)
	if err != nil {
		return err
	}
	name := cfg.File
	if name == "" {
		name = "embedded defaults"
	}
	errs, warns := 0, 0
	for _, p := range daemon.Check(cfg, reg) {
		if p.Warning {
			warns++
			fmt.Fprintf(stderr, "warning: %v\n", p.Err)
		} else {
			errs++
			fmt.Fprintf(stderr, "error: %v\n", p.Err)
		}
	}
	if errs > 0 {
		return fmt.Errorf("%s: %s", name, plural(errs, "error"))
	}
	fmt.Fprintf(stdout, "%s: OK (%s", name, plural(len(cfg.EnabledJails()), "enabled jail"))
	if warns > 0 {
		fmt.Fprintf(stdout, ", %s", plural(warns, "warning"))
	}
	fmt.Fprintln(stdout, ")")
	return nil
}

// plural writes "1 error", "2 errors".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// systemConfig is the configuration the systemd unit runs the daemon with.
// The client commands (status, ban, unban, reload) read the control
// socket's path from it when it exists and neither --socket nor --config
// is given. A variable for tests.
var systemConfig = "/etc/rampart/rampart.toml"

// clientFlags adds --socket and --config to a client command; the function
// it returns connects as they say (see controlClient).
func clientFlags(fs *flag.FlagSet) func() (*daemon.Client, error) {
	socket := fs.String("socket", "", "control socket `path` (default: from the configuration)")
	cfgPath := fs.String("config", "", "configuration `file` naming the socket (default: "+systemConfig+" if it exists, else the embedded defaults)")
	return func() (*daemon.Client, error) { return controlClient(*socket, *cfgPath) }
}

// orSystemConfig is path, or systemConfig when path is "" and it exists
// ("" still when it does not: the embedded defaults).
func orSystemConfig(path string) string {
	if path == "" {
		if _, err := os.Stat(systemConfig); err == nil {
			return systemConfig
		}
	}
	return path
}

// controlClient talks to the daemon at socket, or else at the socket the
// configuration names: cfgPath's, else systemConfig's when it exists, else
// the embedded defaults'.
func controlClient(socket, cfgPath string) (*daemon.Client, error) {
	if socket == "" {
		cfg, err := loadConfig(orSystemConfig(cfgPath))
		if err != nil {
			return nil, fmt.Errorf("%w (the control socket's path is read from it; --socket gives it instead)", err)
		}
		socket = cfg.Daemon.Socket
	}
	return daemon.NewClient(socket), nil
}

const statusHelp = `
Show the running daemon's health, jails, sources, counters and active bans.
With JAIL, only that jail, as fail2ban-client status JAIL shows it: the
addresses failing within its findtime, the failures and bans since the
daemon started, the files it reads and the addresses it bans; then its
thresholds, its ports and its bans. With --json, the status narrowed to
the jail.

Without JAIL, the 50 most recent active bans are listed (a flood makes
hundreds of thousands), with how many there are in all; --bans N lists N,
--bans all every one. With JAIL, all of its bans are listed unless --bans
says otherwise. The JSON's "active_total" counts them all.

Each component (the store, the firewall, the configuration, each source,
each policy server) has a health line. The exit status is 0 when all are
ok, 3 when one is degraded or failed (the report is printed all the same),
2 for an unknown jail, 1 when the daemon cannot be reached.
`

// exitDegraded is status's exit code when a component is not ok.
const exitDegraded = 3

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "[JAIL] [--socket PATH] [--json] [--bans N|all]", statusHelp, stderr)
	connect := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON (keys documented in docs/configuration.md)")
	bans := fs.String("bans", "", "active bans to list, the most recent: a number or all (default: 50, all with JAIL)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef("unexpected argument %q", fs.Arg(fs.NArg()-1))
	}
	jail := fs.Arg(0)
	q := daemon.StatusQuery{Jail: jail, Bans: 50}
	switch {
	case *bans == "all" || (*bans == "" && jail != ""):
		q.Bans = -1
	case *bans != "":
		n, err := strconv.Atoi(*bans)
		if err != nil || n < 0 {
			return usagef("--bans %q: want a number or all", *bans)
		}
		q.Bans = n
	}
	c, err := connect()
	if err != nil {
		return err
	}
	st, err := c.StatusFor(context.Background(), q)
	if errors.Is(err, daemon.ErrUnknownJail) {
		return &usageError{err.Error()}
	}
	if err != nil {
		return err
	}
	switch {
	case *asJSON:
		err = writeIndentedJSON(stdout, st)
	case jail != "":
		printJailStatus(stdout, st, time.Now())
	default:
		printStatus(stdout, st, time.Now())
	}
	if err != nil {
		return err
	}
	if bad := daemon.Degraded(st.Health); len(bad) > 0 {
		return &exitError{code: exitDegraded, msg: fmt.Sprintf("%d of %d components not ok", len(bad), len(st.Health))}
	}
	return nil
}

// printStatus writes the status for people, its times in now's location
// (the caller's local time).
func printStatus(w io.Writer, st daemon.Status, now time.Time) {
	fmt.Fprintf(w, "rampart %s, up %s, firewall %s\n", st.Version, now.Sub(st.Started).Round(time.Second), st.Firewall.Backend)
	bad := daemon.Degraded(st.Health)
	if len(bad) == 0 {
		fmt.Fprintf(w, "health: ok (%d components)\n", len(st.Health))
	} else {
		fmt.Fprintf(w, "health: DEGRADED (%d of %d components)\n", len(bad), len(st.Health))
	}
	printHealth(w, st.Health, now.Location())
	if r := st.Reload; r.Reloads > 0 || r.Failures > 0 {
		fmt.Fprintf(w, "configuration loaded %s; %d reloads, %d refused\n", r.Loaded.In(now.Location()).Format(time.DateTime), r.Reloads, r.Failures)
	}
	fmt.Fprintf(w, "events %d, decisions %d; tracking %d of %d keys (%d evicted)\n",
		st.Engine.Events, st.Engine.Decisions, st.Engine.Tracked, st.Engine.TrackedCap, st.Engine.Evicted)
	if n := st.Insight.Dropped; n > 0 {
		fmt.Fprintf(w, "insight: %d counts left out of per-key rows, in their jail's totals only (more keys between two writes than the counter holds)\n", n)
	}
	fw := st.Firewall
	fmt.Fprintf(w, "firewall: %d applied (%d failed), %d good clients carved out of prefix bans, %d kernel repairs (%d entries put back)\n",
		fw.Applied, fw.Failed, fw.CarvedOut, fw.Repairs, fw.Restored)
	fmt.Fprintln(w, "\nJAIL            MAXRETRY  FINDTIME  BANTIME  BANNED  PORTS")
	for _, j := range st.Jails {
		fmt.Fprintf(w, "%-15s %8d  %8s  %7s  %6d  %s\n", j.Name, j.MaxRetry, j.FindTime, j.BanTime, j.Banned, portsOrAll(j.Ports))
	}
	fmt.Fprintln(w, "\nSOURCE                                   LINES  SKIPPED  STALE  JAILS")
	for _, s := range st.Sources {
		fmt.Fprintf(w, "%-38s %7d  %7d  %5d  %v\n", s.Source, s.Lines, s.Skipped, s.Stale, s.Jails)
		if s.Rejected+s.Silent > 0 {
			fmt.Fprintf(w, "  %d connections refused (limits), %d closed silent\n", s.Rejected, s.Silent)
		}
	}
	if p := st.Policy; p != nil {
		fmt.Fprintln(w)
		if f := p.Postfix; f != nil {
			fmt.Fprintf(w, "postfix policy: %d requests, %d rejected, %d blinded, %d delayed, %d connections open, %d failed, %d malformed, %d dropped, %d refused, %d closed silent\n",
				f.Requests, f.Rejected, f.Blinded, f.Delayed, f.Open, f.Failed, f.Malformed, f.Dropped, f.Refused, f.Silent)
		}
		if d := p.Dovecot; d != nil {
			fmt.Fprintf(w, "dovecot policy: %d requests, %d rejected, %d delayed, %d reports, %d bad, %d unauthorized",
				d.Requests, d.Rejected, d.Delayed, d.Reports, d.Bad, d.Unauthorized)
			if c := p.DovecotConns; c != nil {
				fmt.Fprintf(w, ", %d connections open, %d refused", c.Open, c.RejectedFull)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "failed logins read from a log but already reported live: %d\n", p.LogDuplicates)
	}
	if t := st.Trap; t != nil {
		fmt.Fprintf(w, "\ntrap: %d accounts, %d sessions (%d now, %d refused busy), %d logins (%d failed), %d messages quarantined (%d refused at a limit, %d cut off)\n",
			t.Accounts, t.Sessions, t.Active, t.Refused, t.Logins, t.FailedLogins, t.Messages, t.Rejected, t.CutOff)
	}
	printEvidence(w, st)
	if sh := st.Shields; sh != nil {
		printShields(w, sh)
	}
	if ds := st.Descriptors; ds.Limit > 0 {
		fmt.Fprintf(w, "descriptors: limit %d, %d kept for logs and control, peers hold %d of %d\n", ds.Limit, ds.Reserve, ds.Used, ds.Peers)
	}
	printActive(w, st, now)
}

// printActive writes the active bans listed, and how many more there are.
func printActive(w io.Writer, st daemon.Status, now time.Time) {
	fmt.Fprintf(w, "\nACTIVE BANS (%d)\n", st.ActiveTotal)
	printBans(w, st.Active, now)
	if more := st.ActiveTotal - len(st.Active); more > 0 {
		fmt.Fprintf(w, "(%d older not listed: --bans all lists every one)\n", more)
	}
}

// printHealth writes one line per component, times in loc.
func printHealth(w io.Writer, hs []daemon.Health, loc *time.Location) {
	for _, h := range hs {
		line := fmt.Sprintf("  %-8s  %s", h.State, h.Component)
		if h.Detail != "" {
			line += ": " + h.Detail
		}
		if h.State != daemon.HealthOK {
			line += fmt.Sprintf(" (since %s)", h.Since.In(loc).Format(time.DateTime))
		}
		fmt.Fprintln(w, line)
	}
}

// printBans writes one line per ban; a per-port ban's ports follow its
// address.
func printBans(w io.Writer, bans []daemon.Ban, now time.Time) {
	for _, b := range bans {
		left := "permanent"
		if !b.End.IsZero() {
			left = b.End.Sub(now).Round(time.Second).String() + " left"
		}
		ip := b.IP
		if b.Ports != "" {
			ip += " on " + b.Ports
		}
		fmt.Fprintf(w, "%-40s %-8s %-12s %-14s %s\n", ip, b.Jail, b.Scenario, left, b.Reason)
	}
}

func portsOrAll(ports string) string {
	if ports == "" {
		return "all"
	}
	return ports
}

// printJailStatus writes one jail's status as fail2ban-client status JAIL
// does, then what Rampart adds: its thresholds and ports, and its bans.
// st is narrowed to the jail (StatusQuery.Jail); a status with another
// number of jail lines is printed whole.
func printJailStatus(w io.Writer, st daemon.Status, now time.Time) {
	if len(st.Jails) != 1 {
		printStatus(w, st, now)
		return
	}
	j := st.Jails[0]
	var files, ips []string
	for _, s := range st.Sources {
		files = append(files, s.Source)
	}
	seen := map[string]bool{}
	for _, b := range st.Active {
		if !seen[b.IP] {
			seen[b.IP] = true
			ips = append(ips, b.IP)
		}
	}
	fmt.Fprintf(w, "Status for the jail: %s\n", j.Name)
	fmt.Fprintln(w, "|- Filter")
	fmt.Fprintf(w, "|  |- Currently failed:\t%d\n", j.Failing)
	fmt.Fprintf(w, "|  |- Total failed:\t%d\n", j.FailedTotal)
	fmt.Fprintf(w, "|  `- File list:\t%s\n", strings.Join(files, " "))
	fmt.Fprintln(w, "`- Actions")
	banned := len(ips)
	if st.ActiveTotal > len(st.Active) { // --bans cut the list short
		banned = st.ActiveTotal
	}
	fmt.Fprintf(w, "   |- Currently banned:\t%d\n", banned)
	fmt.Fprintf(w, "   |- Total banned:\t%d\n", j.BannedTotal)
	fmt.Fprintf(w, "   `- Banned IP list:\t%s\n", strings.Join(ips, " "))
	fmt.Fprintf(w, "\nmaxretry %d within %s, bantime %s, ports %s\n", j.MaxRetry, j.FindTime, j.BanTime, portsOrAll(j.Ports))
	if bad := daemon.Degraded(st.Health); len(bad) > 0 {
		fmt.Fprintf(w, "health: DEGRADED (%d of %d components)\n", len(bad), len(st.Health))
		printHealth(w, bad, now.Location())
	}
	if st.ActiveTotal > 0 {
		printActive(w, st, now)
	}
}

const reloadHelp = `
Ask the running daemon to reload its configuration file, and wait for the
answer. A reload is all or nothing: when the file has an error, or a new
source cannot start (a syslog address the host does not have), the running
configuration stays in force, the error is printed and the exit status is 1.
The systemd unit's ExecReload runs this, so 'systemctl reload rampart'
fails the same way. SIGHUP does the same without an answer.
`

func runReload(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reload", "[--socket PATH]", reloadHelp, stderr)
	connect := clientFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	c, cerr := connect()
	if cerr != nil {
		// The file names the socket but does not load: ask the daemon at
		// the default socket, which reports the error as the daemon sees it
		// (and shows it in status).
		def, err := loadConfig("")
		if err != nil {
			return cerr
		}
		c = daemon.NewClient(def.Daemon.Socket)
	}
	jails, err := c.Reload(context.Background())
	if err != nil {
		if cerr != nil && errors.Is(err, daemon.ErrUnreachable) {
			return cerr
		}
		return err
	}
	fmt.Fprintf(stdout, "configuration reloaded: jails %s\n", strings.Join(jails, ", "))
	return nil
}

const banHelp = `
Ban an address or CIDR prefix now, in the running daemon. The ban is
persisted and enforced like any other; allowlisted targets are refused.
`

func runBan(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ban", "ADDR|PREFIX [--jail J] [--for DURATION] [--reason TEXT]", banHelp, stderr)
	connect := clientFlags(fs)
	jail := fs.String("jail", "", "attribute the ban to `jail` (its bantime is the default duration)")
	dur := fs.String("for", "", "ban `duration`, e.g. 1h or 7d (default: the jail's bantime)")
	reason := fs.String("reason", "", "why, for the records")
	target, err := parseTarget(fs, args, "rampart ban 192.0.2.7 --for 1h")
	if err != nil {
		return err
	}
	var secs int64
	if *dur != "" {
		d, err := config.ParseDuration(*dur)
		if err != nil {
			return &usageError{err.Error()}
		}
		secs = int64(d / time.Second)
	}
	c, err := connect()
	if err != nil {
		return err
	}
	b, err := c.Ban(context.Background(), daemon.BanRequest{IP: target, Jail: *jail, DurationS: secs, Reason: *reason})
	if err != nil {
		return err
	}
	if b.End.IsZero() {
		fmt.Fprintf(stdout, "banned %s until revoked (a permanent ban)\n", b.IP)
		return nil
	}
	fmt.Fprintf(stdout, "banned %s until %s\n", b.IP, b.End.Format(time.RFC3339))
	return nil
}

const unbanHelp = `
Lift a ban in the running daemon: the address is removed from the firewall
and its recent failures are forgotten.
`

func runUnban(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("unban", "ADDR|PREFIX", unbanHelp, stderr)
	connect := clientFlags(fs)
	target, err := parseTarget(fs, args, "rampart unban 192.0.2.7")
	if err != nil {
		return err
	}
	c, err := connect()
	if err != nil {
		return err
	}
	removed, err := c.Unban(context.Background(), target)
	if err != nil {
		return err
	}
	if removed {
		fmt.Fprintf(stdout, "unbanned %s\n", target)
	} else {
		fmt.Fprintf(stdout, "%s was not banned (removed from the firewall anyway)\n", target)
	}
	return nil
}

// parseTarget parses the flags and the ADDR|PREFIX of ban and unban, which
// may come before the flags or after them; example is the command's.
func parseTarget(fs *flag.FlagSet, args []string, example string) (string, error) {
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	if fs.NArg() > 1 {
		return "", usagef("unexpected argument %q", fs.Arg(fs.NArg()-1))
	}
	target := fs.Arg(0)
	if target == "" {
		return "", usagef("which address? e.g. %s", example)
	}
	if _, err := event.ParseTarget(target); err != nil {
		return "", &usageError{err.Error()}
	}
	return target, nil
}

// printShields shows what each group's shields dropped, one line per
// group (kinds without a limit left out), then the closed-port answers.
func printShields(w io.Writer, sh *daemon.ShieldsStatus) {
	fmt.Fprintln(w, "\nSHIELD      DROPPED (rate, conns, net, syn)")
	var order []string
	by := map[string][]string{}
	scans := uint64(0)
	for _, c := range sh.Counters {
		if c.Kind == firewall.ShieldScan {
			scans = c.Packets
			continue
		}
		if _, ok := by[c.Group]; !ok {
			order = append(order, c.Group)
		}
		by[c.Group] = append(by[c.Group], fmt.Sprintf("%s %d", c.Kind, c.Packets))
	}
	for _, g := range order {
		fmt.Fprintf(w, "%-11s %s\n", g, strings.Join(by[g], ", "))
	}
	fmt.Fprintf(w, "closed-port answers %d; events %d (%d repeated probes not counted)", scans, sh.Events, sh.Duplicates)
	if sh.Lost > 0 {
		fmt.Fprintf(w, ", %d log overflows", sh.Lost)
	}
	if sh.Error != "" {
		fmt.Fprintf(w, "; counters unreadable: %s", sh.Error)
	}
	fmt.Fprintln(w)
}
