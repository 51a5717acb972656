package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/logline"
)

const replayHelp = `
Run the whole pipeline (filters and engine, no firewall) over historical
logs, using the logs' own time stamps as the clock, and print every decision
the daemon would have taken. Several files are merged by time stamp. FILE "-"
reads standard input. Without --config, the embedded defaults are used
(jails sshd, postfix and dovecot). The allowlist is the daemon's, this
host's own addresses included, so replay bans exactly what the daemon would
on this host. On a terminal, progress is shown on standard error. Memory
stays near what the engine holds (Go's memory limit follows the live heap
with half again as headroom, at least 96 MiB, as in the daemon);
GOMEMLIMIT overrides that.

With --json, one object per decision:
  {"ip": "address or CIDR prefix", "action": "ban", "time": "RFC 3339",
   "duration_s": N, "scenario": "...", "reason": "...", "jail": "...",
   "ports": "22/tcp" (a per-port ban's; absent for a whole-host ban)}
An address that logs in or delivers mail is carved out of prefix bans
for as long as it stays good: "action": "allow", scenario "known-good" or
"relay".
`

func runReplay(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", "[--config FILE] [--json] [--year YYYY] FILE...", replayHelp, stderr)
	cfgPath := fs.String("config", "", "configuration `file` (default: embedded defaults)")
	asJSON := fs.Bool("json", false, "print one JSON object per decision")
	year := fs.Int("year", 0, "`year` for stamps without one (default: current year, rolled back for future stamps)")
	stats := fs.Bool("stats", false, "print lines, events, decisions and the time of each stage to standard error at the end")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("no log file given (use - for standard input)")
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	reg, err := daemon.Filters(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	p, err := daemon.NewReplayPipeline(ctx, cfg, reg, nil)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	var line []byte // one decision's text, reused
	var stamps rfc3339Minutes
	defer w.Flush()
	var prog *progressLine
	if isTerminal(stderr) {
		prog = &progressLine{w: stderr}
		defer prog.clear()
		if isTerminal(stdout) {
			// One screen: decisions go out at once, each after the
			// progress line is erased (it is drawn again after them).
			prog.flush = w.Flush
		}
	}
	enc := json.NewEncoder(w)
	st, err := daemon.Replay(ctx, p, &logline.Parser{Year: *year}, fs.Args(), func(d event.Decision) {
		if prog != nil && prog.flush != nil {
			prog.clear()
			defer prog.flush()
		}
		if *asJSON {
			enc.Encode(replayDecision{
				IP:        daemon.Target(d.Target),
				Action:    d.Action.String(),
				Time:      string(stamps.append(line[:0], d.Start)),
				DurationS: int64(d.Duration / time.Second),
				Scenario:  d.Scenario,
				Reason:    d.Reason,
				Jail:      d.Jail,
				Ports:     event.FormatPorts(d.Ports),
			})
			return
		}
		line = stamps.append(line[:0], d.Start)
		line = append(daemon.AppendDescription(append(line, ' '), d), '\n')
		w.Write(line)
	}, daemon.ReplayOptions{Progress: prog.show, Stages: *stats})
	if err != nil {
		return err
	}
	if *stats {
		w.Flush()
		printReplayStats(stderr, st)
	}
	if !*asJSON {
		fmt.Fprintf(w, "%d lines, %d skipped, %d events, %d decisions\n", st.Lines, st.Skipped, st.Events, st.Decisions)
	}
	return nil
}

type replayDecision struct {
	IP        string `json:"ip"`
	Action    string `json:"action"`
	Time      string `json:"time"`
	DurationS int64  `json:"duration_s"`
	Scenario  string `json:"scenario"`
	Reason    string `json:"reason"`
	Jail      string `json:"jail,omitempty"`
	Ports     string `json:"ports,omitempty"`
}

// loadConfig reads path, or returns the embedded defaults for "".
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// progressLine shows a replay's progress on one line of a terminal,
// rewritten at most five times a second; nil shows nothing.
type progressLine struct {
	w     io.Writer
	flush func() error // when standard output is the same terminal: writes what it holds
	last  time.Time
	shown bool
}

func (p *progressLine) show(st daemon.ReplayStats) {
	if p == nil {
		return
	}
	now := time.Now()
	if p.shown && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	fmt.Fprintf(p.w, "\rreplay: %d lines, %d skipped, %d events, %d decisions\x1b[K", st.Lines, st.Skipped, st.Events, st.Decisions)
	p.last, p.shown = now, true
}

// clear erases the progress line, if one is shown.
func (p *progressLine) clear() {
	if p != nil && p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// printReplayStats writes the counts and the time of each stage, then the
// process's CPU time and peak memory.
func printReplayStats(w io.Writer, st daemon.ReplayStats) {
	fmt.Fprintf(w, "replay: %d lines (%d skipped), %d events, %d decisions\n", st.Lines, st.Skipped, st.Events, st.Decisions)
	sg := st.Stages
	total := sg.Read + sg.Filter + sg.Engine + sg.Output
	for _, s := range []struct {
		name string
		d    time.Duration
	}{{"read and parse", sg.Read}, {"filters", sg.Filter}, {"engine", sg.Engine}, {"output", sg.Output}} {
		share, per := 0.0, 0.0
		if total > 0 {
			share = 100 * float64(s.d) / float64(total)
		}
		if st.Lines > 0 {
			per = float64(s.d.Nanoseconds()) / float64(st.Lines)
		}
		fmt.Fprintf(w, "  %-15s %8.3f s  %5.1f%%  %7.0f ns/line\n", s.name, s.d.Seconds(), share, per)
	}
	if cpu, rss, ok := processUsage(); ok {
		rate := 0.0
		if cpu > 0 {
			rate = float64(st.Lines) / cpu.Seconds()
		}
		fmt.Fprintf(w, "  CPU %.3f s in all (%.0f lines per CPU-second), peak RSS %.1f MiB\n", cpu.Seconds(), rate, float64(rss)/(1<<20))
	}
}
