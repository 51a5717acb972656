package firewall

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// CommandConfig configures NewCommand: shell command templates in the manner
// of fail2ban's actions.
//
// Ban and Unban may contain these tags, replaced per decision:
//
//	<ip>        the address; for a prefix ban, the prefix in CIDR notation
//	<cidr>      the target in CIDR notation (192.0.2.1/32, 2001:db8::/48)
//	<family>    inet or inet6
//	<time>      when the ban started, in Unix seconds
//	<bantime>   the ban's length in seconds; 0 means no timeout
//	<jail>      the jail whose rules fired
//	<scenario>  the scenario ("ip-failures", ...)
//	<reason>    the human explanation
//	<port>      a per-port ban's ports as iptables' multiport takes them
//	            ("22", "25,465,587", "6000:6010"); empty for a whole-host ban
//	<protocol>  a per-port ban's protocols ("tcp"; "tcp,udp" when it has
//	            ports of both); empty for a whole-host ban
//	<ports>     a per-port ban's ports with their protocols ("22/tcp,53/udp");
//	            empty for a whole-host ban
//
// Every value is inserted shell-quoted ('...'), so write tags bare:
// `iptables -I INPUT -s <ip> -j DROP`, not "<ip>". A template that serves
// per-port and whole-host bans alike tests <port>:
// `if [ -n <port> ]; then iptables -I INPUT -s <ip> -p <protocol> -m multiport --dports <port> -j DROP; else iptables -I INPUT -s <ip> -j DROP; fi`. Reason, jail and the
// like carry attacker-chosen text (user names, for one) and cannot break out
// of their quotes. Unknown tags are left as they are. Start and Stop get no
// tags.
type CommandConfig struct {
	Ban   string // required: run once when a target is banned
	Unban string // run when a ban is revoked or found expired; may be empty
	Start string // run once by NewCommand; may be empty
	Stop  string // run once by Close; may be empty
	// Shell runs each command as Shell -c COMMAND. Default "/bin/sh".
	Shell string
	// Timeout bounds each command; it is killed after that. Default 30s.
	Timeout time.Duration
	// Logger receives command failures and skipped bans; nil discards.
	Logger *slog.Logger
}

// Command enforces decisions by running user commands, fail2ban style.
//
// It keeps in memory what it has banned: Active returns the bans it applied
// and has neither revoked nor seen expire, with their Scenario, Reason, Jail
// and Origin, Start now and Duration the time left. That memory dies with the
// process; what the user's commands did to the system is not read back. A
// ban whose time is up is "seen to expire" at the start of the next Apply or
// Revoke, which then runs Unban for it; Active already leaves it out.
//
// Re-applying a banned target does not run Ban again (as fail2ban, so that
// commands like `iptables -I` do not pile up): it only moves the remembered
// end, so Unban runs at the new time.
//
// The allowlist cannot be carved out of a user's command, so Apply does not
// run Ban for a target that is or contains an allowlisted address (it logs
// a warning), and SetAllow unbans active targets that the new allowlist
// touches.
//
// Carve-outs cannot be carved out of a user's command either, and there is
// no template for them: Command treats them the same way. Apply does not
// run Ban for a prefix that holds an address carved out at the time (a
// warning says so), and Carve unbans the active prefix bans that hold a new
// carve-out. A ban on a carved-out address itself runs as usual. So with
// this backend a neighbour of a known-good client in a /24 is not banned
// with the /24; a prefix skipped while it held a carve-out is not banned
// later when the carve-out ends. Command is safe for concurrent use;
// commands run one at a time.
type Command struct {
	mu     sync.Mutex
	cfg    CommandConfig
	log    *slog.Logger
	now    func() time.Time
	active map[banKey]event.Decision // Start: when banned, Duration: full length
	allow  []netip.Prefix
	want   intent // carve-outs only
	closed bool
}

// NewCommand checks the configuration and runs the Start command, if any.
func NewCommand(ctx context.Context, cfg CommandConfig) (*Command, error) {
	if strings.TrimSpace(cfg.Ban) == "" {
		return nil, errors.New("command action: ban command is empty")
	}
	if cfg.Shell == "" {
		cfg.Shell = "/bin/sh"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	c := &Command{cfg: cfg, log: loggerOrDiscard(cfg.Logger), now: time.Now, active: map[banKey]event.Decision{}, want: newIntent()}
	if cfg.Start != "" {
		if err := c.run(ctx, "start", cfg.Start); err != nil {
			return nil, fmt.Errorf("command action: %w", err)
		}
	}
	return c, nil
}

// shellQuote returns s as one single-quoted shell word. NUL bytes, which no
// command line can carry, are dropped.
func shellQuote(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// render fills tmpl's tags for decision d (Target normalized, Start set,
// Duration the ban's length).
func render(tmpl string, d event.Decision) string {
	ip, family := d.Target.String(), "inet"
	if isSingle(d.Target) {
		ip = d.Target.Addr().String()
	}
	if d.Target.Addr().Is6() {
		family = "inet6"
	}
	port, proto := multiport(d.Ports)
	secs := int64(0)
	if d.Duration > 0 {
		secs = int64((d.Duration + time.Second - 1) / time.Second)
	}
	r := strings.NewReplacer(
		"<ip>", shellQuote(ip),
		"<cidr>", shellQuote(d.Target.String()),
		"<family>", shellQuote(family),
		"<time>", shellQuote(strconv.FormatInt(d.Start.Unix(), 10)),
		"<bantime>", shellQuote(strconv.FormatInt(secs, 10)),
		"<jail>", shellQuote(d.Jail),
		"<scenario>", shellQuote(d.Scenario),
		"<reason>", shellQuote(d.Reason),
		"<port>", shellQuote(port),
		"<protocol>", shellQuote(proto),
		"<ports>", shellQuote(event.FormatPorts(d.Ports)),
	)
	return r.Replace(tmpl)
}

// multiport writes ports as iptables' multiport match and fail2ban's
// <port> take them ("25,465,6000:6010"), and their protocols ("tcp",
// "tcp,udp").
func multiport(ps []event.PortRange) (port, proto string) {
	var ports, protos []string
	for _, r := range ps {
		p := strconv.Itoa(int(r.First))
		if r.Last != r.First {
			p += ":" + strconv.Itoa(int(r.Last))
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
		if !slices.Contains(protos, r.Proto.String()) {
			protos = append(protos, r.Proto.String())
		}
	}
	return strings.Join(ports, ","), strings.Join(protos, ",")
}

// run runs script with the shell, bounded by the configured timeout.
func (c *Command) run(ctx context.Context, what, script string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.cfg.Shell, "-c", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, killed whole on timeout: a command's children
	// (a sleep, a hung curl) must not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := out.String()
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		return fmt.Errorf("%s command: %w: %s", what, err, strings.TrimSpace(msg))
	}
	return nil
}

func (c *Command) begin(ctx context.Context) error {
	if c.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// sweep runs Unban for remembered bans whose time is up and forgets them.
func (c *Command) sweep(ctx context.Context, now time.Time) []error {
	var errs []error
	for t, d := range c.active {
		if d.Active(now) {
			continue
		}
		if err := c.unban(ctx, d); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(c.active, t)
	}
	return errs
}

func (c *Command) unban(ctx context.Context, d event.Decision) error {
	if c.cfg.Unban == "" {
		return nil
	}
	if err := c.run(ctx, "unban "+d.Target.String(), render(c.cfg.Unban, d)); err != nil {
		return err
	}
	return nil
}

func (c *Command) allowed(t netip.Prefix) bool {
	for _, a := range c.allow {
		if a.Overlaps(t) {
			return true
		}
	}
	return false
}

// carved reports whether the prefix ban t holds an address carved out at
// now; an address ban never does.
func (c *Command) carved(t netip.Prefix, now time.Time) bool {
	if isSingle(t) {
		return false
	}
	for a, end := range c.want.carves {
		if t.Contains(a) && live(end, now, 0) {
			return true
		}
	}
	return false
}

// Apply runs Ban for each Decision with Action Ban that is not already
// banned (see the package doc for Start, zero Duration and other actions),
// one command at a time in order. A failing command does not stop the
// others: Apply returns their errors joined, and only the targets whose
// command succeeded are remembered as banned, so re-applying the same batch
// retries exactly the failures. Expired bans are unbanned first. An invalid
// target fails the call before anything runs.
func (c *Command) Apply(ctx context.Context, ds []event.Decision) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(ctx); err != nil {
		return fmt.Errorf("command apply: %w", err)
	}
	now := c.now()
	bans, _, err := bansFrom(ds, now)
	if err != nil {
		return fmt.Errorf("command apply: %w", err)
	}
	errs := c.sweep(ctx, now)
	for _, b := range bans {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		d := b.d
		d.Start, d.Duration = now, b.timeout
		if c.allowed(b.target) {
			c.log.Warn("command action: not banning an allowlisted target", "addr", b.target.String(), "scenario", d.Scenario, "jail", d.Jail)
			continue
		}
		if c.carved(b.target, now) {
			c.log.Warn("command action: not banning a prefix that holds a carved-out address (commands cannot carve)", "addr", b.target.String(), "scenario", d.Scenario, "jail", d.Jail)
			continue
		}
		k := b.key()
		if _, ok := c.active[k]; ok {
			c.active[k] = d
			continue
		}
		if err := c.run(ctx, "ban "+b.target.String(), render(c.cfg.Ban, d)); err != nil {
			c.log.Error("command action: ban failed", "addr", b.target.String(), "ports", k.ports, "error", err)
			errs = append(errs, err)
			continue
		}
		c.active[k] = d
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("command apply: %w", err)
	}
	return nil
}

// Revoke runs Unban for each target it remembers as banned and forgets it
// (once for each of an address's bans: whole-host and per-port); targets it
// does not remember are not an error and run nothing. A target
// whose Unban fails stays remembered (the ban may still be in place) and its
// error is returned, joined with the others; the rest are still revoked.
func (c *Command) Revoke(ctx context.Context, targets []netip.Prefix) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(ctx); err != nil {
		return fmt.Errorf("command revoke: %w", err)
	}
	ts, err := normalizePrefixes(targets)
	if err != nil {
		return fmt.Errorf("command revoke: %w", err)
	}
	errs := c.sweep(ctx, c.now())
	revoke := map[netip.Prefix]bool{}
	for _, t := range ts {
		revoke[t] = true
	}
	for _, k := range sortedKeys(c.active) {
		if !revoke[k.target] {
			continue
		}
		if err := c.unban(ctx, c.active[k]); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(c.active, k)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("command revoke: %w", err)
	}
	return nil
}

// Active returns the bans this process applied and has not revoked and that
// have not expired, with Start now and Duration the time left (zero for no
// timeout), keeping Scenario, Reason, Jail and Origin. It runs nothing.
func (c *Command) Active(ctx context.Context) ([]event.Decision, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(ctx); err != nil {
		return nil, fmt.Errorf("command active: %w", err)
	}
	return activeDecisions(c.active, c.now(), func(d event.Decision, _ banKey) event.Decision { return d }), nil
}

// sortedKeys returns the keys of m in the order of their targets, then
// their ports, so commands run in a stable order.
func sortedKeys(m map[banKey]event.Decision) []banKey {
	ks := slices.Collect(maps.Keys(m))
	slices.SortFunc(ks, func(a, b banKey) int {
		return cmp.Or(a.target.Compare(b.target), strings.Compare(a.ports, b.ports))
	})
	return ks
}

// activeDecisions reports the unexpired entries of m as of now, as a
// kernel holds them: Start now and Duration the time left. decision turns
// an entry into the decision it holds.
func activeDecisions[K comparable, V any](m map[K]V, now time.Time, decision func(V, K) event.Decision) []event.Decision {
	out := make([]event.Decision, 0, len(m))
	for k, v := range m {
		d := decision(v, k)
		if !d.Active(now) {
			continue
		}
		if d.Duration > 0 {
			d.Duration = d.End().Sub(now)
		}
		d.Start = now
		out = append(out, d)
	}
	return out
}

// SetAllow replaces the remembered allowlist and runs Unban for active bans
// that touch it. Errors of those commands are joined; the allowlist is
// replaced regardless. An invalid prefix fails the call before anything
// changes.
func (c *Command) SetAllow(ctx context.Context, allow []netip.Prefix) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(ctx); err != nil {
		return fmt.Errorf("command set allow: %w", err)
	}
	ps, err := normalizePrefixes(allow)
	if err != nil {
		return fmt.Errorf("command set allow: %w", err)
	}
	c.allow = ps
	var errs []error
	for k, d := range c.active {
		if !c.allowed(k.target) {
			continue
		}
		if err := c.unban(ctx, d); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(c.active, k)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("command set allow: %w", err)
	}
	return nil
}

// Carve remembers the carve-outs (see CarveOut) and runs Unban for the
// active prefix bans that hold one of them; errors of those commands are
// joined, and the carve-outs are remembered regardless. An invalid address
// fails the call before anything changes.
func (c *Command) Carve(ctx context.Context, cs []CarveOut) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(ctx); err != nil {
		return fmt.Errorf("command carve: %w", err)
	}
	now := c.now()
	carves, err := carvesFrom(cs, now)
	if err != nil {
		return fmt.Errorf("command carve: %w", err)
	}
	c.want.addCarves(carves, now)
	var errs []error
	for k, d := range c.active {
		t := k.target
		if isSingle(t) || !slices.ContainsFunc(carves, func(co carveOut) bool { return t.Contains(co.addr) }) {
			continue
		}
		c.log.Warn("command action: unbanning a prefix that now holds a carved-out address (commands cannot carve)", "addr", t.String())
		if err := c.unban(ctx, d); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(c.active, k)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("command carve: %w", err)
	}
	return nil
}

// Uncarve forgets the carve-outs of these addresses; it runs nothing.
func (c *Command) Uncarve(ctx context.Context, addrs []netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(ctx); err != nil {
		return fmt.Errorf("command uncarve: %w", err)
	}
	as, err := normalizeAddrs(addrs)
	if err != nil {
		return fmt.Errorf("command uncarve: %w", err)
	}
	for _, a := range as {
		delete(c.want.carves, a)
	}
	return nil
}

// CarveOuts returns the remembered carve-outs that have not ended.
func (c *Command) CarveOuts(ctx context.Context) ([]CarveOut, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(ctx); err != nil {
		return nil, fmt.Errorf("command carve-outs: %w", err)
	}
	return liveCarves(c.want.carves, c.now()), nil
}

// Stats counts the remembered carve-outs; commands are not checked.
func (c *Command) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{CarvedOut: c.want.carvedOut(c.now())}
}

// Close runs the Stop command, if any (bounded by the configured timeout),
// and forgets everything; remembered bans are not unbanned. Later calls
// return ErrClosed; a second Close does nothing.
func (c *Command) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.active, c.want = nil, newIntent()
	if c.cfg.Stop != "" {
		if err := c.run(context.Background(), "stop", c.cfg.Stop); err != nil {
			return fmt.Errorf("command action: %w", err)
		}
	}
	return nil
}
