// Command policyload measures Rampart's live policy servers under load on
// loopback: decisions per second and per-request latency for Postfix's
// policy delegation protocol and Dovecot's authentication policy, while
// thousands of tarpitted Postfix sessions are held open, and the daemon's
// memory for those sessions.
//
//	policyload -postfix 127.0.0.1:10023 -dovecot 127.0.0.1:10024 \
//	    -control /tmp/x/rampart.sock -pid PID [-held 10000] [-workers 100] \
//	    [-duration 30s] [-rate 20000] [-o result.json]
//
// In order, it:
//
//  1. seeds the held addresses (-held-addrs of them, each in its own /24,
//     each failing once under its own login, so no spray, prefix or surge
//     scenario fires) with one failed-login report each to the Dovecot
//     server: the engine then counts one recent failure for each, which
//     makes the Postfix policy answer hold them in the tarpit;
//  2. optionally (-baseline) runs the Postfix max-rate phase with no session
//     held, for comparison;
//  3. opens -held connections spread over -ramp (as a tarpitted botnet
//     arrives over time, so their answers do not all come due at once), each
//     sending an RCPT request for a held address and sending it again
//     whenever the answer comes, and waits until the daemon's status shows
//     them parked; the daemon's RSS before and after is the memory they cost;
//  4. with the sessions held, runs each load phase for -duration with
//     -workers connections (reused, as Postfix's smtpd processes reuse
//     theirs): "max" sends the next request as soon as the answer arrives
//     (closed loop), "paced" sends -rate requests per second in all on a
//     fixed schedule (open loop) and also reports latency from the scheduled
//     send time, so a stall cannot hide by delaying the requests behind it;
//  5. closes the held sessions and reports.
//
// Postfix requests carry the full attribute set Postfix 3.7 sends at RCPT,
// from many distinct client addresses, a tenth of them authenticated
// (submission). Dovecot requests are HTTP/1.1 keep-alive POSTs of the JSON
// Dovecot 2.3 sends with its default auth_policy_request_attributes, an
// allow and then a successful report per login, written and parsed by hand
// so the generator's own cost stays small. Dovecot has no held sessions on
// Rampart's side: a tarpit answer is a status > 0 and Dovecot waits itself.
//
// Latency is measured in the generator from just before write(2) of a
// request to the end of its answer, every request kept (sorted for
// percentiles, no sampling). The generator's CPU (getrusage) and the
// daemon's (/proc/PID/stat) are reported per phase: both share the machine.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type options struct {
	postfix, dovecot, auth, control string
	pid                             int
	held, heldAddrs                 int
	ramp, duration, settle          time.Duration
	workers                         int
	rate                            int
	phases                          string
	baseline                        bool
	clients                         int
	sasl                            float64
	logins                          int
	out                             string
	echo                            string
}

func main() {
	var o options
	fs := flag.NewFlagSet("policyload", flag.ExitOnError)
	fs.StringVar(&o.postfix, "postfix", "127.0.0.1:10023", "Postfix policy server `address`, host:port or unix:/path (\"\" skips the Postfix phases)")
	fs.StringVar(&o.dovecot, "dovecot", "127.0.0.1:10024", "Dovecot policy server `address` (\"\" skips the Dovecot phases and seeding)")
	fs.StringVar(&o.auth, "auth", "", "Authorization header `value` for Dovecot requests")
	fs.StringVar(&o.control, "control", "", "the daemon's control `socket`, for its policy counters (parked, open)")
	fs.IntVar(&o.pid, "pid", 0, "the daemon's `pid`, for its memory and CPU from /proc")
	fs.IntVar(&o.held, "held", 10000, "tarpitted Postfix sessions to hold open")
	fs.IntVar(&o.heldAddrs, "held-addrs", 8, "distinct suspicious client addresses the held sessions use (at most 25 failures a minute, below surge)")
	fs.DurationVar(&o.ramp, "ramp", 25*time.Second, "open the held sessions over this long (about the tarpit delay)")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "pause after the ramp and between phases")
	fs.IntVar(&o.workers, "workers", 100, "load connections (Postfix smtpd processes, Dovecot auth clients)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "length of each load phase")
	fs.IntVar(&o.rate, "rate", 20000, "requests per second in all, for the paced phases")
	fs.StringVar(&o.phases, "phases", "postfix-max,postfix-paced,dovecot-max,dovecot-paced", "load phases to run, in order")
	fs.BoolVar(&o.baseline, "baseline", true, "run postfix-max once before any session is held")
	fs.IntVar(&o.clients, "clients", 50000, "distinct client addresses in Postfix requests")
	fs.Float64Var(&o.sasl, "sasl", 0.1, "fraction of Postfix requests from authenticated clients (sasl_username set)")
	fs.IntVar(&o.logins, "logins", 5000, "distinct (user, address) logins in Dovecot requests")
	fs.StringVar(&o.out, "o", "", "write the result as JSON to `file`")
	fs.StringVar(&o.echo, "echo", "", "instead of generating load, serve a minimal Postfix policy server on `address` that answers DUNNO at once (the control)")
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	if o.echo != "" {
		if _, err := raiseNoFile(uint64(o.held + 2*o.workers + 256)); err != nil {
			logf("%v", err)
		}
		// It serves until it fails.
		fmt.Fprintf(os.Stderr, "policyload: %v\n", serveEcho(o.echo))
		os.Exit(1)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	res, err := run(ctx, o)
	if res != nil {
		printReport(os.Stdout, res)
		if o.out != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			if werr := os.WriteFile(o.out, append(b, '\n'), 0o644); werr != nil && err == nil {
				err = werr
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "policyload: %v\n", err)
		os.Exit(1)
	}
}

// Result is everything one run measured.
type Result struct {
	Started    time.Time    `json:"started"`
	GoMaxProcs int          `json:"gomaxprocs"`
	NumCPU     int          `json:"num_cpu"`
	NoFile     uint64       `json:"generator_nofile"`
	DaemonFile string       `json:"daemon_nofile,omitempty"`
	Options    string       `json:"options"`
	Held       HeldResult   `json:"held"`
	Phases     []Phase      `json:"phases"`
	Memory     []Checkpoint `json:"memory"`
}

func run(ctx context.Context, o options) (*Result, error) {
	res := &Result{Started: time.Now().UTC(), GoMaxProcs: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		Options: strings.Join(os.Args[1:], " ")}
	nofile, err := raiseNoFile(uint64(o.held + 2*o.workers + 256))
	res.NoFile = nofile
	if err != nil {
		return res, err
	}
	if o.pid > 0 {
		res.DaemonFile = daemonNoFile(o.pid)
	}
	d := &daemonProbe{pid: o.pid, control: o.control}
	gen := newGenerator(o)
	checkpoint := func(label string) {
		c := d.checkpoint(label)
		res.Memory = append(res.Memory, c)
		logf("memory %s: %s", label, c)
	}
	checkpoint("idle")

	if o.held > 0 && o.postfix != "" {
		if o.dovecot == "" {
			return res, fmt.Errorf("-held needs -dovecot to seed the held addresses with a failure")
		}
		if err := gen.seed(ctx); err != nil {
			return res, fmt.Errorf("seeding held addresses: %w", err)
		}
	}
	runPhase := func(name string) error {
		proto, mode, ok := strings.Cut(name, "-")
		if !ok || (proto != "postfix" && proto != "dovecot") || (mode != "max" && mode != "paced") {
			return fmt.Errorf("unknown phase %q (want postfix-max, postfix-paced, dovecot-max, dovecot-paced)", name)
		}
		addr := o.postfix
		if proto == "dovecot" {
			addr = o.dovecot
		}
		if addr == "" {
			return nil
		}
		rate := 0
		if mode == "paced" {
			rate = o.rate
		}
		logf("phase %s: %d workers, %v, rate %s", name, o.workers, o.duration, rateString(rate))
		p, err := gen.phase(ctx, d, proto, rate, o.duration)
		if err != nil {
			return fmt.Errorf("phase %s: %w", name, err)
		}
		p.Name = name
		res.Phases = append(res.Phases, *p)
		logf("phase %s: %s", name, p)
		select {
		case <-time.After(o.settle):
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	if o.baseline && o.postfix != "" {
		if err := runPhase("postfix-max"); err != nil {
			return res, err
		}
		res.Phases[len(res.Phases)-1].Name = "postfix-max, nothing held"
		checkpoint("after baseline")
	}
	var hold *holder
	if o.held > 0 && o.postfix != "" {
		hold = gen.startHeld(ctx)
		if err := hold.ramp(ctx, d); err != nil {
			hold.stop()
			return res, err
		}
		checkpoint(fmt.Sprintf("%d held", o.held))
	}
	for name := range strings.SplitSeq(o.phases, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if err := runPhase(name); err != nil {
			if hold != nil {
				hold.stop()
			}
			return res, err
		}
	}
	if hold != nil {
		checkpoint("held, after the load")
		res.Held = hold.stop()
		// A parked connection the client closed is only noticed when its
		// answer is due (the server does not read while it holds one), so
		// "open" stays up for a tarpit delay; RSS is read after a pause.
		time.Sleep(time.Second)
		checkpoint("held closed")
	}
	return res, nil
}

func rateString(r int) string {
	if r == 0 {
		return "max"
	}
	return fmt.Sprintf("%d/s", r)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s policyload: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// raiseNoFile makes sure this process may open want descriptors: Go already
// raises the soft limit to the hard one at start; as root the hard limit is
// raised too when it is short.
func raiseNoFile(want uint64) (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur >= want {
		return rl.Cur, nil
	}
	if rl.Max < want {
		rl.Max = want
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("open files limit %d is below the %d needed, and raising it failed: %w (run as root or raise ulimit -n)", rl.Cur, want, err)
	}
	return rl.Cur, nil
}
