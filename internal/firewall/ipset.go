package firewall

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Runner runs the program name with args, feeding it stdin (nil for none),
// and returns its standard output; a non-zero exit is an error that should
// carry the program's standard error. ExecRunner is the real one; tests run
// commands inside a network namespace with `ip netns exec`.
type Runner func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)

// ExecRunner runs the program directly (no shell) with os/exec.
func ExecRunner(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// ipsetMaxTimeout is the longest timeout ipset accepts, in seconds.
const ipsetMaxTimeout = 2147483

// IPSetConfig configures NewIPSet. Zero fields take the defaults shown.
type IPSetConfig struct {
	// Prefix starts every set name: rampart-ban4, rampart-ban6,
	// rampart-bannet4, rampart-bannet6, rampart-allow4, rampart-allow6,
	// rampart-carve4, rampart-carve6, rampart-banport4, rampart-banport6. Default "rampart-". Set names are at
	// most 31 bytes.
	Prefix string
	// Chain is the chain in iptables' raw table holding Rampart's rules,
	// jumped to from the top of PREROUTING. Default "RAMPART".
	Chain string
	// MaxElem is each set's capacity. Default 1,048,576.
	MaxElem int
	// NoIPv6 leaves out ip6tables and the IPv6 sets, for hosts without IPv6.
	NoIPv6 bool
	// Program names or paths; defaults "ipset", "iptables", "ip6tables",
	// "iptables-restore", "ip6tables-restore".
	IPSet, IPTables, IP6Tables, IPTablesRestore, IP6TablesRestore string
	// Run runs the programs; default ExecRunner.
	Run Runner
	// Logger receives repairs; nil discards.
	Logger *slog.Logger
}

func (c IPSetConfig) withDefaults() IPSetConfig {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Prefix, "rampart-")
	def(&c.Chain, "RAMPART")
	def(&c.IPSet, "ipset")
	def(&c.IPTables, "iptables")
	def(&c.IP6Tables, "ip6tables")
	def(&c.IPTablesRestore, "iptables-restore")
	def(&c.IP6TablesRestore, "ip6tables-restore")
	if c.MaxElem <= 0 {
		c.MaxElem = 1 << 20
	}
	if c.Run == nil {
		c.Run = ExecRunner
	}
	return c
}

// ipsetFamily is what differs between IPv4 and IPv6.
type ipsetFamily struct {
	v6               bool
	family           string // ipset's "inet" or "inet6"
	iptables, restor string
	ban, bannet      string // set names
	allow, carve     string
	banport          string // per-port bans (ipset_ports.go)
}

func (c IPSetConfig) families() []ipsetFamily {
	fs := []ipsetFamily{{
		family: "inet", iptables: c.IPTables, restor: c.IPTablesRestore,
		ban: c.Prefix + "ban4", bannet: c.Prefix + "bannet4", allow: c.Prefix + "allow4", carve: c.Prefix + "carve4",
		banport: c.Prefix + "banport4",
	}}
	if !c.NoIPv6 {
		fs = append(fs, ipsetFamily{
			v6: true, family: "inet6", iptables: c.IP6Tables, restor: c.IP6TablesRestore,
			ban: c.Prefix + "ban6", bannet: c.Prefix + "bannet6", allow: c.Prefix + "allow6", carve: c.Prefix + "carve6",
			banport: c.Prefix + "banport6",
		})
	}
	return fs
}

// IPSet enforces decisions with ipset and iptables, for hosts without
// nftables. It owns, per family, five sets (for the "rampart-" prefix):
// rampart-ban4 (hash:ip, timeout 0), rampart-bannet4 (hash:net, timeout 0),
// rampart-allow4 (hash:net), rampart-carve4 (hash:ip, timeout 0) and
// rampart-banport4 (hash:ip,port, timeout 0: per-port bans, members like
// 192.0.2.1,tcp:22), and the -6 ones with family inet6; and a chain RAMPART
// in the raw table, jumped to from the top of PREROUTING (before conntrack
// and DNAT, so Docker-published ports are covered), whose order is the
// semantics (as in nftables):
//
//	-A RAMPART -m set --match-set rampart-allow4 src -j RETURN
//	-A RAMPART -m set --match-set rampart-ban4 src -j DROP
//	-A RAMPART -m set --match-set rampart-banport4 src,dst -j DROP
//	-A RAMPART -m set --match-set rampart-carve4 src -j RETURN
//	-A RAMPART -m set --match-set rampart-bannet4 src -j DROP
//
// RETURN ends only Rampart's chain. Timeouts live in the kernel (ipset caps
// them at 2,147,483 s, about 24.8 days; a longer ban or carve-out is cut to
// that and Reconcile puts it back when the kernel drops it). ipset's
// hash:net holds overlapping prefixes, so prefix bans need no merging, but
// cannot hold a /0. A chain of an older Rampart, without the carve or the
// per-port rule, is rewritten in place; the sets keep their members.
//
// Each Apply, Revoke, SetAllow, Carve and Uncarve is one `ipset restore`
// process; Active runs one `ipset save` per set. Commands run through
// Config.Run without a shell. New and Active check the iptables rules and
// re-create them when edited by hand; every restore re-creates missing sets.
// IPSet is safe for concurrent use.
type IPSet struct {
	mu     sync.Mutex
	cfg    IPSetConfig
	log    *slog.Logger
	now    func() time.Time
	closed bool
	want   intent
	stats  Stats
	passes int // Reconcile calls, for the periodic full comparison
}

// NewIPSet creates (or checks and repairs) the sets and rules and returns the
// enforcer; existing set members are kept.
func NewIPSet(ctx context.Context, cfg IPSetConfig) (*IPSet, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Prefix)+len("bannet4") > 31-len("-tmp") {
		return nil, fmt.Errorf("ipset prefix %q too long: set names are at most 31 bytes", cfg.Prefix)
	}
	e := &IPSet{cfg: cfg, log: loggerOrDiscard(cfg.Logger), now: time.Now, want: newIntent()}
	if _, err := e.restore(ctx, nil); err != nil {
		return nil, fmt.Errorf("ipset: create sets: %w", err)
	}
	if _, err := e.ensureRules(ctx, true); err != nil {
		return nil, fmt.Errorf("ipset: %w", err)
	}
	return e, nil
}

// createLines declares every set; with -exist they are no-ops for sets that
// are there with the same parameters.
func (e *IPSet) createLines(b *strings.Builder) {
	for _, f := range e.cfg.families() {
		fmt.Fprintf(b, "create %s hash:ip family %s timeout 0 maxelem %d\n", f.ban, f.family, e.cfg.MaxElem)
		fmt.Fprintf(b, "create %s hash:net family %s timeout 0 maxelem %d\n", f.bannet, f.family, e.cfg.MaxElem)
		fmt.Fprintf(b, "create %s hash:net family %s maxelem %d\n", f.allow, f.family, e.cfg.MaxElem)
		fmt.Fprintf(b, "create %s hash:ip family %s timeout 0 maxelem %d\n", f.carve, f.family, e.cfg.MaxElem)
		fmt.Fprintf(b, "create %s hash:ip,port family %s timeout 0 maxelem %d\n", f.banport, f.family, e.cfg.MaxElem)
	}
}

// restore runs one `ipset -exist restore` with the set declarations followed
// by body.
func (e *IPSet) restore(ctx context.Context, body []byte) ([]byte, error) {
	var b strings.Builder
	e.createLines(&b)
	script := append([]byte(b.String()), body...)
	return e.cfg.Run(ctx, script, e.cfg.IPSet, "-exist", "restore")
}

func (e *IPSet) wantRules(f ipsetFamily) []string {
	c := e.cfg.Chain
	return []string{
		"-N " + c,
		"-A " + c + " -m set --match-set " + f.allow + " src -j RETURN",
		"-A " + c + " -m set --match-set " + f.ban + " src -j DROP",
		"-A " + c + " -m set --match-set " + f.banport + " src,dst -j DROP",
		"-A " + c + " -m set --match-set " + f.carve + " src -j RETURN",
		"-A " + c + " -m set --match-set " + f.bannet + " src -j DROP",
	}
}

// ensureRules checks Rampart's chain and the jump to it in each family's raw
// table, rewrites them when they differ, and returns what it repaired;
// install says whether this is the first set-up (no warnings then; a chain
// of an older Rampart is upgraded with a note).
func (e *IPSet) ensureRules(ctx context.Context, install bool) ([]string, error) {
	var fixed []string
	for _, f := range e.cfg.families() {
		want := e.wantRules(f)
		out, err := e.cfg.Run(ctx, nil, f.iptables, "-w", "-t", "raw", "-S", e.cfg.Chain)
		if have := nonEmptyLines(out); err != nil || !slices.Equal(have, want) {
			switch {
			case err == nil && e.olderChain(f, have, want):
				e.log.Info("ipset: chain of an older rampart upgraded with the carve-out rule", "chain", e.cfg.Chain, "family", f.family)
			case err == nil || !install:
				e.log.Warn("ipset: chain was changed outside rampart; repaired", "chain", e.cfg.Chain, "family", f.family)
				fixed = append(fixed, "chain "+e.cfg.Chain+" ("+f.family+")")
			}
			var b strings.Builder
			fmt.Fprintf(&b, "*raw\n:%s - [0:0]\n-F %s\n", e.cfg.Chain, e.cfg.Chain)
			for _, r := range want[1:] {
				b.WriteString(r + "\n")
			}
			b.WriteString("COMMIT\n")
			if _, err := e.cfg.Run(ctx, []byte(b.String()), f.restor, "-w", "--noflush"); err != nil {
				return fixed, fmt.Errorf("%s: write chain %s: %w", f.restor, e.cfg.Chain, err)
			}
		}
		if _, err := e.cfg.Run(ctx, nil, f.iptables, "-w", "-t", "raw", "-C", "PREROUTING", "-j", e.cfg.Chain); err != nil {
			if !install {
				e.log.Warn("ipset: jump to chain was removed outside rampart; repaired", "chain", e.cfg.Chain, "family", f.family)
				fixed = append(fixed, "jump to "+e.cfg.Chain+" ("+f.family+")")
			}
			if _, err := e.cfg.Run(ctx, nil, f.iptables, "-w", "-t", "raw", "-I", "PREROUTING", "1", "-j", e.cfg.Chain); err != nil {
				return fixed, fmt.Errorf("%s: insert jump to %s: %w", f.iptables, e.cfg.Chain, err)
			}
		}
	}
	return fixed, nil
}

// olderChain reports whether have is Rampart's chain as an older version
// wrote it: want without the rules of sets added since (carve-outs,
// per-port bans).
func (e *IPSet) olderChain(f ipsetFamily, have, want []string) bool {
	newer := [][]string{{f.carve}, {f.banport}, {f.carve, f.banport}}
	for _, sets := range newer {
		old := slices.DeleteFunc(slices.Clone(want), func(r string) bool {
			return slices.ContainsFunc(sets, func(s string) bool { return strings.Contains(r, " "+s+" ") })
		})
		if slices.Equal(have, old) {
			return true
		}
	}
	return false
}

func nonEmptyLines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (e *IPSet) familyOf(a netip.Addr) (ipsetFamily, bool) {
	for _, f := range e.cfg.families() {
		if f.v6 == a.Is6() {
			return f, true
		}
	}
	return ipsetFamily{}, false // IPv6 with NoIPv6
}

func (e *IPSet) setFor(p netip.Prefix) (string, bool) {
	for _, f := range e.cfg.families() {
		if f.v6 == p.Addr().Is6() {
			if isSingle(p) {
				return f.ban, true
			}
			return f.bannet, true
		}
	}
	return "", false // IPv6 with NoIPv6
}

func (e *IPSet) begin(ctx context.Context) error {
	if e.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// Apply bans every Decision with Action Ban (see the package doc for Start,
// zero Duration and other actions) through one `ipset -exist restore`
// process. Re-adding a member sets its timeout anew. A Decision with Ports
// bans only those ports of its address (banport sets); a port two such
// bans share keeps the later end. An invalid target, a
// /0, or an IPv6 target with NoIPv6 fails the call before anything runs. On
// an error from ipset, the lines before the failing one have been applied
// and the rest have not; Apply is idempotent, so retrying the whole batch is
// safe.
func (e *IPSet) Apply(ctx context.Context, ds []event.Decision) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.begin(ctx); err != nil {
		return fmt.Errorf("ipset apply: %w", err)
	}
	now := e.now()
	bans, _, err := bansFrom(ds, now)
	if err == nil {
		err = checkPorts(bans)
	}
	if err != nil {
		return fmt.Errorf("ipset apply: %w", err)
	}
	var b bytes.Buffer
	for _, bn := range bans {
		if len(bn.ports) > 0 {
			if _, ok := e.familyOf(bn.target.Addr()); !ok {
				return fmt.Errorf("ipset apply: cannot ban %s", bn.target)
			}
			continue
		}
		set, ok := e.setFor(bn.target)
		if !ok || bn.target.Bits() == 0 {
			return fmt.Errorf("ipset apply: cannot ban %s", bn.target)
		}
		fmt.Fprintf(&b, "add %s %s timeout %d\n", set, ipsetMember(bn.target), ipsetTimeout(bn.timeout))
	}
	e.want.addBans(bans, now)
	if err := e.writePorts(&b, e.want.addPortBans(bans, now), now); err != nil {
		return fmt.Errorf("ipset apply: %w", err)
	}
	if _, err := e.restore(ctx, b.Bytes()); err != nil {
		return fmt.Errorf("ipset apply %d bans: %w", len(bans), err)
	}
	return nil
}

// ipsetTimeout returns d in whole seconds for ipset, rounded up and capped
// at the longest timeout ipset accepts; 0 stays 0 (no timeout).
func ipsetTimeout(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return min(int64((d+time.Second-1)/time.Second), ipsetMaxTimeout)
}

func ipsetMember(p netip.Prefix) string {
	if isSingle(p) {
		return p.Addr().String()
	}
	return p.String()
}

// Revoke removes exactly these targets in one `ipset -exist restore`, an
// address's per-port bans with its whole-host one; absent ones are not an
// error. Partial failure as for Apply.
func (e *IPSet) Revoke(ctx context.Context, targets []netip.Prefix) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.begin(ctx); err != nil {
		return fmt.Errorf("ipset revoke: %w", err)
	}
	ts, err := normalizePrefixes(targets)
	if err != nil {
		return fmt.Errorf("ipset revoke: %w", err)
	}
	var b bytes.Buffer
	single := map[netip.Addr]bool{}
	for _, t := range ts {
		e.want.bans.delete(t)
		if set, ok := e.setFor(t); ok && t.Bits() > 0 {
			fmt.Fprintf(&b, "del %s %s\n", set, ipsetMember(t))
		}
		if isSingle(t) {
			single[t.Addr()] = true
		}
	}
	e.want.dropPortBans(single)
	if err := e.dropPorts(ctx, &b, single); err != nil {
		return fmt.Errorf("ipset revoke: %w", err)
	}
	if _, err := e.restore(ctx, b.Bytes()); err != nil {
		return fmt.Errorf("ipset revoke %d targets: %w", len(ts), err)
	}
	return nil
}

// Active returns the members of the ban sets with their time left (Start is
// now; Duration zero for no timeout), after checking and repairing the
// iptables rules. Only Target, Action, Start and Duration are set, and the
// Ports of per-port bans (one Decision per address and time left).
func (e *IPSet) Active(ctx context.Context) ([]event.Decision, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.begin(ctx); err != nil {
		return nil, fmt.Errorf("ipset active: %w", err)
	}
	if _, err := e.restore(ctx, nil); err != nil {
		return nil, fmt.Errorf("ipset active: %w", err)
	}
	if _, err := e.ensureRules(ctx, false); err != nil {
		return nil, fmt.Errorf("ipset active: %w", err)
	}
	now := e.now()
	var out []event.Decision
	for _, f := range e.cfg.families() {
		for _, set := range []string{f.ban, f.bannet} {
			save, err := e.cfg.Run(ctx, nil, e.cfg.IPSet, "save", set)
			if err != nil {
				return nil, fmt.Errorf("ipset active: save %s: %w", set, err)
			}
			ds, err := parseIPSetSave(save, set, now)
			if err != nil {
				return nil, fmt.Errorf("ipset active: %w", err)
			}
			out = append(out, ds...)
		}
	}
	ps, err := e.activePorts(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("ipset active: %w", err)
	}
	return append(out, ps...), nil
}

// parseIPSetSave reads "add SET MEMBER [timeout N]" lines of `ipset save`.
func parseIPSetSave(save []byte, set string, now time.Time) ([]event.Decision, error) {
	var out []event.Decision
	err := scanIPSetSave(save, set, func(member string, left time.Duration) error {
		p, err := netip.ParsePrefix(member)
		if err != nil {
			a, aerr := netip.ParseAddr(member)
			if aerr != nil {
				return fmt.Errorf("%s: bad member %q", set, member)
			}
			p = event.AddrPrefix(a)
		}
		out = append(out, event.Decision{Target: p, Action: event.Ban, Start: now, Duration: left})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanIPSetSave calls f with the member and the time left (0: none) of
// each "add SET MEMBER [timeout N]" line of `ipset save` output for set,
// stopping at the first error: f's, then a bad timeout's.
func scanIPSetSave(save []byte, set string, f func(member string, left time.Duration) error) error {
	sc := bufio.NewScanner(bytes.NewReader(save))
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) < 3 || w[0] != "add" || w[1] != set {
			continue
		}
		var left time.Duration
		var bad error // a bad member is reported first
		for i := 3; i+1 < len(w); i++ {
			if w[i] == "timeout" {
				n, err := strconv.ParseInt(w[i+1], 10, 64)
				if err != nil {
					bad = fmt.Errorf("%s: bad timeout %q", set, w[i+1])
					break
				}
				left = time.Duration(n) * time.Second
			}
		}
		if err := f(w[2], left); err != nil {
			return err
		}
		if bad != nil {
			return bad
		}
	}
	return sc.Err()
}

// SetAllow replaces the allow sets' members with allow. Each family's new
// list is built in a scratch set and swapped in with `ipset swap`, which is
// atomic, all in one `ipset restore`: there is no moment without an
// allowlist. An invalid prefix or a /0 fails the call before anything runs.
func (e *IPSet) SetAllow(ctx context.Context, allow []netip.Prefix) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.begin(ctx); err != nil {
		return fmt.Errorf("ipset set allow: %w", err)
	}
	ps, err := normalizePrefixes(allow)
	if err != nil {
		return fmt.Errorf("ipset set allow: %w", err)
	}
	for _, p := range ps {
		if p.Bits() == 0 {
			return fmt.Errorf("ipset set allow: cannot hold %s", p)
		}
	}
	e.want.allow, e.want.allowSet = ps, true
	var b bytes.Buffer
	for _, f := range e.cfg.families() {
		e.writeAllow(&b, f, ps)
	}
	if _, err := e.restore(ctx, b.Bytes()); err != nil {
		return fmt.Errorf("ipset set allow: %w", err)
	}
	return nil
}

// writeAllow writes the restore lines that replace f's allow set with the
// prefixes of its family in ps, through a scratch set swapped in, and
// returns how many it wrote.
func (e *IPSet) writeAllow(b *bytes.Buffer, f ipsetFamily, ps []netip.Prefix) int {
	tmp := f.allow + "-tmp"
	fmt.Fprintf(b, "create %s hash:net family %s maxelem %d\nflush %s\n", tmp, f.family, e.cfg.MaxElem, tmp)
	n := 0
	for _, p := range ps {
		if p.Addr().Is6() == f.v6 {
			fmt.Fprintf(b, "add %s %s\n", tmp, p)
			n++
		}
	}
	fmt.Fprintf(b, "swap %s %s\ndestroy %s\n", tmp, f.allow, tmp)
	return n
}

// Close releases the enforcer. Sets, rules and bans stay in the kernel (use
// UninstallIPSet to remove them). Later calls return ErrClosed.
func (e *IPSet) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	return nil
}

// UninstallIPSet removes what NewIPSet installed with this configuration, and
// nothing else: every jump to Rampart's chain from raw PREROUTING, the chain,
// and Rampart's sets (including a leftover scratch allow set). Missing pieces
// and missing programs are not errors.
func UninstallIPSet(ctx context.Context, cfg IPSetConfig) error {
	cfg = cfg.withDefaults()
	var errs []error
	for _, f := range cfg.families() {
		if _, err := cfg.Run(ctx, nil, f.iptables, "-w", "-t", "raw", "-S", cfg.Chain); err != nil {
			continue // no chain (or no iptables): nothing of ours
		}
		for range 100 { // duplicates, one at a time
			if _, err := cfg.Run(ctx, nil, f.iptables, "-w", "-t", "raw", "-D", "PREROUTING", "-j", cfg.Chain); err != nil {
				break
			}
		}
		if _, err := cfg.Run(ctx, nil, f.iptables, "-w", "-t", "raw", "-F", cfg.Chain); err != nil {
			errs = append(errs, fmt.Errorf("%s: flush chain %s: %w", f.iptables, cfg.Chain, err))
			continue
		}
		if _, err := cfg.Run(ctx, nil, f.iptables, "-w", "-t", "raw", "-X", cfg.Chain); err != nil {
			errs = append(errs, fmt.Errorf("%s: delete chain %s: %w", f.iptables, cfg.Chain, err))
		}
	}
	names, err := cfg.Run(ctx, nil, cfg.IPSet, "list", "-n")
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return errors.Join(errs...)
		}
		return errors.Join(append(errs, fmt.Errorf("uninstall ipset: list sets: %w", err))...)
	}
	have := map[string]bool{}
	for _, n := range nonEmptyLines(names) {
		have[n] = true
	}
	for _, f := range cfg.families() {
		for _, set := range []string{f.ban, f.bannet, f.allow, f.carve, f.banport, f.allow + "-tmp"} {
			if !have[set] {
				continue
			}
			if _, err := cfg.Run(ctx, nil, cfg.IPSet, "destroy", set); err != nil {
				errs = append(errs, fmt.Errorf("ipset destroy %s: %w", set, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("uninstall ipset: %w", err)
	}
	return nil
}
