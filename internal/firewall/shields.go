package firewall

// Shields: kernel-side limits on the protected ports, in Rampart's own
// table next to the enforcer's sets and chain, and the port-scan log.
// Every object of theirs is named shield_… and declared in plan (below),
// the one place that says what the shields install.

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ShieldGroup is one group of protected TCP ports and its limits. A limit
// of zero is off.
type ShieldGroup struct {
	Name  string   // "ssh", "submission", …: letters, digits, '-' and '_'
	Ports []uint16 // TCP destination ports
	// Rate and Burst limit the new connections one source address may open
	// per second (a token bucket: Burst at once, then Rate a second).
	Rate, Burst int
	// Conns limits the connections one source address holds at once.
	Conns int
	// NetConns limits the connections one /24 (IPv6: /64) holds at once.
	NetConns int
	// SYNRate and SYNBurst limit the new connections per second from all
	// sources together that no other limit stopped: the guard against a
	// SYN flood from spoofed, ever-changing addresses. Exempt clients
	// (allowlisted, known-good) are not counted and never stopped.
	SYNRate, SYNBurst int
}

// ShieldsConfig configures NewShields.
type ShieldsConfig struct {
	// Table and NetNSFd are as in NFTablesConfig: the shields live in the
	// enforcer's table and use its allow and carve sets.
	Table   string
	NetNSFd int
	Groups  []ShieldGroup
	// MaxSources bounds each per-source table (rate meters, connection
	// counts): a source beyond it is not limited by that table until
	// room frees up (the SYN guard still counts it).
	MaxSources int
	// LogGroup is the NFLOG group the kernel sends shield drops (when
	// LogDrops) and closed-port replies (when Portscan) to.
	LogGroup uint16
	// LogDrops sends the drops of each shield to LogGroup, at most
	// shieldLogRate a second per shield, prefixed "rampart shield GROUP KIND".
	LogDrops bool
	// Portscan sends the host's answers to connection attempts on closed
	// ports to LogGroup (at most portscanLogRate a second), prefixed
	// "rampart portscan": a TCP reset answering a SYN (or a FIN, NULL or
	// Xmas probe) and an ICMP port unreachable answering UDP.
	Portscan bool
	Logger   *slog.Logger
}

// The log prefixes the shields' NFLOG messages carry (see ParseShieldPrefix).
const (
	shieldLogPrefix   = "rampart shield "
	portscanLogPrefix = "rampart portscan"
	shieldLogRate     = 10  // logged drops a second per shield (burst twice that)
	portscanLogRate   = 200 // logged closed-port replies a second (burst twice that)
	logSnaplen        = 128 // bytes of each packet copied to the log: headers only
)

// The kinds of shield, each with a drop chain and a counter per group.
const (
	ShieldRate = "rate" // new connections per second per source
	ShieldConn = "conn" // concurrent connections per source
	ShieldNet  = "net"  // concurrent connections per /24 or /64
	ShieldSYN  = "syn"  // new connections per second from everyone (SYN flood)
	ShieldScan = "scan" // closed-port replies logged (port scans); group ""
)

// ShieldCounter is what one shield stopped: the packets its drop chain
// dropped (for ShieldScan, the closed-port replies it saw).
type ShieldCounter struct {
	Group   string `json:"group"`
	Kind    string `json:"kind"`
	Packets uint64 `json:"packets"`
}

// Shields installs and keeps the shield chains and sets in Rampart's
// table:
//
//   - shield_in, hooked at prerouting with priority -150 (after connection
//     tracking, before DNAT, so ports Docker publishes are covered): for the
//     first packet of a TCP connection to one of this host's addresses, from
//     a source neither allowlisted nor carved out (known-good), it jumps to
//     the chain of the group whose ports it is for;
//   - shield_GROUP: the limits in order — per-source rate, per-source
//     connections, per-network connections, the SYN guard — each going to
//     its drop chain shield_GROUP_KIND (a counter, an optional rate-limited
//     log, drop) when exceeded;
//   - shield_out, hooked at output, and shield_scan: the port-scan log;
//   - the sets shield_GROUP_ports (the ports) and the dynamic sets the
//     limits keep their per-source state in (shield_GROUP_rate4, _conn4,
//     _net4 and their IPv6 twins), bounded by MaxSources.
//
// Reconcile puts back whatever was deleted or changed, like the enforcer's
// own Reconcile; a repair rebuilds all shield objects at once, which
// forgets the per-source state (counters carry over). Shields needs the
// enforcer's table and its allow and carve sets: create the NFTables
// enforcer first, and after an outside flush reconcile it first.
//
// Shields is safe for concurrent use.
type Shields struct {
	mu     sync.Mutex
	cfg    ShieldsConfig
	log    *slog.Logger
	table  *nftables.Table
	plan   shieldPlan
	closed bool

	// base holds the counts of drop chains since deleted (a repair or a
	// reconfiguration rebuilt them), so the totals keep growing; last is
	// what each chain had counted when last read, for chains someone else
	// deleted before Rampart could read them.
	base, last map[string]uint64
	// gen is the ruleset generation at which the kernel last held the
	// plan, when genOK (see NFTables.Reconcile).
	gen   uint32
	genOK bool
	nl    *netlink.Conn
	stats Stats
}

// NewShields installs the shields cfg describes (replacing shield objects
// a former run left that differ) and returns them.
func NewShields(ctx context.Context, cfg ShieldsConfig) (*Shields, error) {
	s := &Shields{log: loggerOrDiscard(cfg.Logger), base: map[string]uint64{}, last: map[string]uint64{}}
	if err := s.Reconfigure(ctx, cfg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Reconfigure installs the shields of cfg in place of the current ones, in
// one transaction; the table, the namespace and the logger stay those
// NewShields was given. When anything changed, every shield starts afresh
// (per-source state is forgotten; counters keep their totals). On error the
// kernel holds what it held before, and the next Reconcile tries cfg
// again.
func (s *Shields) Reconfigure(ctx context.Context, cfg ShieldsConfig) error {
	plan, err := planShields(cfg)
	if err != nil {
		return fmt.Errorf("shields: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("shields: %w", ErrClosed)
	}
	if s.table != nil {
		cfg.Table, cfg.NetNSFd, cfg.Logger = s.cfg.Table, s.cfg.NetNSFd, s.cfg.Logger
	} else {
		s.table = &nftables.Table{Name: NFTablesConfig{Table: cfg.Table}.table(), Family: nftables.TableFamilyINet}
	}
	s.cfg, s.plan = cfg, plan
	s.genOK = false
	if _, err := s.ensure(ctx); err != nil {
		return fmt.Errorf("shields: %w", err)
	}
	return nil
}

// Reconcile checks that the kernel holds the shields as planned and
// rebuilds them when it does not (a flushed ruleset, a deleted chain, set
// or port), logging a warning and counting the repair. It is cheap when no
// transaction was committed since the last check.
func (s *Shields) Reconcile(ctx context.Context) (Repair, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Repair{}, ErrClosed
	}
	if gen, ok := s.readGen(); ok && s.genOK && gen == s.gen {
		return Repair{}, nil
	}
	fixed, err := s.ensure(ctx)
	rep := Repair{Fixed: fixed}
	if err != nil {
		return rep, fmt.Errorf("shields reconcile: %w", err)
	}
	s.stats.note(s.log, "shields", slog.String("table", s.table.Name), rep)
	return rep, nil
}

// Counters returns each shield's counter, totals since NewShields, in the
// plan's order (groups as configured, kinds rate, conn, net, syn; then
// scan).
func (s *Shields) Counters(ctx context.Context) ([]ShieldCounter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := s.conn()
	if err != nil {
		return nil, err
	}
	cur, err := s.readCounters(c)
	if err != nil {
		return nil, fmt.Errorf("shields counters: %w", err)
	}
	var out []ShieldCounter
	for _, ch := range s.plan.chains {
		if ch.kind == "" {
			continue
		}
		out = append(out, ShieldCounter{Group: ch.group, Kind: ch.kind, Packets: s.base[ch.chain.Name] + cur[ch.chain.Name]})
	}
	s.last = cur
	return out, nil
}

// Stats returns the repairs counted by Reconcile.
func (s *Shields) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close releases the shields' socket. The chains and sets stay in the
// kernel (Uninstall removes them with the table); later calls return
// ErrClosed.
func (s *Shields) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.nl != nil {
		s.nl.Close()
		s.nl = nil
	}
	return nil
}

func (s *Shields) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if s.cfg.NetNSFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(s.cfg.NetNSFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return c, nil
}

func (s *Shields) readGen() (uint32, bool) {
	if s.nl == nil {
		nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: s.cfg.NetNSFd})
		if err != nil {
			return 0, false
		}
		s.nl = nl
	}
	gen, err := getGen(s.nl)
	if err != nil {
		s.nl.Close()
		s.nl = nil
		return 0, false
	}
	return gen, true
}

// ensure makes the kernel hold exactly the plan's shield objects. When
// anything differs (missing, changed, or a shield object the plan no longer
// has), it deletes every shield object and installs the plan in one
// transaction, and returns what differed.
func (s *Shields) ensure(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := s.conn()
	if err != nil {
		return nil, err
	}
	before, okBefore := s.readGen()
	have, err := s.readKernel(c)
	if err != nil {
		s.genOK = false
		return nil, err
	}
	diff := s.plan.differences(have)
	if len(diff) == 0 {
		s.gen, s.genOK = before, okBefore
		return nil, nil
	}
	// Keep the totals of the counters about to be deleted, or already gone.
	if cur, err := s.readCounters(c); err == nil {
		for name, n := range s.last {
			if _, ok := cur[name]; !ok {
				cur[name] = n
			}
		}
		for name, n := range cur {
			s.base[name] += n
		}
		s.last = map[string]uint64{}
	}
	if !have.table {
		c.AddTable(s.table)
	}
	for _, ch := range have.chains {
		c.FlushChain(ch) // rules go first: they reference chains and sets
	}
	for _, ch := range have.chains {
		c.DelChain(ch)
	}
	for _, st := range have.sets {
		c.DelSet(st)
	}
	for _, st := range s.plan.sets {
		st.set.Table = s.table
		if err := c.AddSet(st.set, st.elems); err != nil {
			return nil, fmt.Errorf("add set %s: %w", st.set.Name, err)
		}
	}
	for _, ch := range s.plan.chains {
		ch.chain.Table = s.table
		c.AddChain(ch.chain)
	}
	for _, ch := range s.plan.chains {
		for _, r := range ch.rules {
			c.AddRule(&nftables.Rule{Table: s.table, Chain: ch.chain, Exprs: r.exprs,
				UserData: userdata.AppendString(nil, userdata.TypeComment, r.comment)})
		}
	}
	if err := c.Flush(); err != nil {
		s.genOK = false
		return diff, fmt.Errorf("install %s: %w", strings.Join(diff, ", "), err)
	}
	// The new chains count from zero; base holds what their namesakes
	// had counted, so the totals go on.
	after, okAfter := s.readGen()
	s.gen, s.genOK = after, okBefore && okAfter && after-before == 1
	return diff, nil
}

// kernelShields is what the kernel holds of the shields.
type kernelShields struct {
	table  bool
	sets   map[string]*nftables.Set
	elems  map[string][]nftables.SetElement // of the port sets
	chains map[string]*nftables.Chain
	rules  map[string][]string // chain → its rules' comments
}

func (s *Shields) readKernel(c *nftables.Conn) (kernelShields, error) {
	k := kernelShields{sets: map[string]*nftables.Set{}, elems: map[string][]nftables.SetElement{},
		chains: map[string]*nftables.Chain{}, rules: map[string][]string{}}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return k, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range ts {
		k.table = k.table || t.Name == s.table.Name
	}
	if !k.table {
		return k, nil
	}
	sets, err := c.GetSets(s.table)
	if err != nil {
		return k, fmt.Errorf("list sets: %w", err)
	}
	for _, st := range sets {
		if !isShieldName(st.Name) {
			continue
		}
		k.sets[st.Name] = st
		if strings.HasSuffix(st.Name, "_ports") {
			els, err := c.GetSetElements(st)
			if err != nil {
				return k, fmt.Errorf("list set %s: %w", st.Name, err)
			}
			k.elems[st.Name] = els
		}
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return k, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != s.table.Name || !isShieldName(ch.Name) {
			continue
		}
		k.chains[ch.Name] = ch
		rules, err := c.GetRules(s.table, ch)
		if err != nil {
			return k, fmt.Errorf("list rules of %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			cm, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			k.rules[ch.Name] = append(k.rules[ch.Name], cm)
		}
	}
	return k, nil
}

// readCounters returns the packets counted by the first rule of each drop
// chain the kernel holds.
func (s *Shields) readCounters(c *nftables.Conn) (map[string]uint64, error) {
	out := map[string]uint64{}
	have := map[string]bool{}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == s.table.Name {
			have[ch.Name] = true
		}
	}
	for _, ch := range s.plan.chains {
		if ch.kind == "" {
			continue
		}
		if !have[ch.chain.Name] {
			continue
		}
		rules, err := c.GetRules(s.table, ch.chain)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			for _, x := range r.Exprs {
				if ctr, ok := x.(*expr.Counter); ok {
					out[ch.chain.Name] += ctr.Packets
				}
			}
		}
	}
	return out, nil
}

func isShieldName(n string) bool { return strings.HasPrefix(n, "shield_") }

// shieldPlan is every shield object, in the order they are created.
type shieldPlan struct {
	sets   []shieldSet
	chains []shieldChain
}

type shieldSet struct {
	set   *nftables.Set
	elems []nftables.SetElement // the ports; dynamic sets start empty
}

type shieldChain struct {
	chain       *nftables.Chain
	group, kind string // for a drop chain (and shield_scan)
	rules       []shieldRule
}

// shieldRule is one rule; its comment names it and its parameters, so a
// changed configuration or a rule edited by hand shows as a difference.
type shieldRule struct {
	comment string
	exprs   []expr.Any
}

// differences lists what the kernel lacks or holds differently.
func (p shieldPlan) differences(k kernelShields) []string {
	var diff []string
	if !k.table {
		if len(p.sets)+len(p.chains) == 0 {
			return nil
		}
		return []string{"table (missing)"}
	}
	want := map[string]bool{}
	for _, st := range p.sets {
		want[st.set.Name] = true
		got, ok := k.sets[st.set.Name]
		switch {
		case !ok:
			diff = append(diff, "set "+st.set.Name+" (missing)")
		case !shieldSetMatches(got, st.set):
			diff = append(diff, "set "+st.set.Name+" (changed)")
		case st.elems != nil && !samePorts(k.elems[st.set.Name], st.elems):
			diff = append(diff, "set "+st.set.Name+" (ports changed)")
		}
	}
	for _, ch := range p.chains {
		want[ch.chain.Name] = true
		got, ok := k.chains[ch.chain.Name]
		var comments []string
		for _, r := range ch.rules {
			comments = append(comments, r.comment)
		}
		switch {
		case !ok:
			diff = append(diff, "chain "+ch.chain.Name+" (missing)")
		case ch.chain.Hooknum != nil && !chainMatches(got, ch.chain), ch.chain.Hooknum == nil && got.Hooknum != nil:
			diff = append(diff, "chain "+ch.chain.Name+" (changed)")
		case !slices.Equal(k.rules[ch.chain.Name], comments):
			diff = append(diff, "rules of chain "+ch.chain.Name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(k.sets)) {
		if !want[name] {
			diff = append(diff, "set "+name+" (not configured)")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(k.chains)) {
		if !want[name] {
			diff = append(diff, "chain "+name+" (not configured)")
		}
	}
	return diff
}

func shieldSetMatches(got, want *nftables.Set) bool {
	return got.KeyType.Bytes == want.KeyType.Bytes && got.Dynamic == want.Dynamic &&
		got.HasTimeout == want.HasTimeout && got.Timeout == want.Timeout &&
		(want.Size == 0 || got.Size == want.Size) && !got.IsMap && !got.Interval
}

func samePorts(got, want []nftables.SetElement) bool {
	key := func(els []nftables.SetElement) []uint16 {
		var ps []uint16
		for _, el := range els {
			if len(el.Key) == 2 {
				ps = append(ps, binaryutil.BigEndian.Uint16(el.Key))
			}
		}
		slices.Sort(ps)
		return ps
	}
	return slices.Equal(key(got), key(want))
}

// Chain priorities: after connection tracking (-200) and before DNAT
// (-100), so ct count works and the original destination port is seen.
var shieldPriority = nftables.ChainPriorityMangle

// planShields builds every shield object cfg asks for. Set IDs start at
// 200, clear of the enforcer's, though they only need to be unique within
// the one batch that creates them.
func planShields(cfg ShieldsConfig) (shieldPlan, error) {
	var p shieldPlan
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = 65536
	}
	id := uint32(200)
	newSet := func(name string, s nftables.Set, elems []nftables.SetElement) *nftables.Set {
		id++
		s.Name, s.ID = name, id
		p.sets = append(p.sets, shieldSet{set: &s, elems: elems})
		return &s
	}
	accept := nftables.ChainPolicyAccept
	in := shieldChain{chain: &nftables.Chain{Name: "shield_in", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: shieldPriority, Policy: &accept}}
	in.rules = append(in.rules,
		shieldRule{"shield: only new connections", []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)},
			&expr.Verdict{Kind: expr.VerdictReturn}}},
		shieldRule{"shield: only tcp", []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Verdict{Kind: expr.VerdictReturn}}},
		shieldRule{"shield: only to this host", []expr.Any{
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
			&expr.Verdict{Kind: expr.VerdictReturn}}},
	)
	for _, set := range []int{setAllow4, setAllow6, setCarve4, setCarve6} {
		in.rules = append(in.rules, shieldRule{"shield: exempt " + nftSetNames[set],
			append(addrMatch(isV6Set(set), false), lookup(nftSetNames[set]), &expr.Verdict{Kind: expr.VerdictReturn})})
	}
	var chains []shieldChain
	for _, g := range cfg.Groups {
		if !validShieldName(g.Name) {
			return p, fmt.Errorf("group %q: name must be letters, digits, '-' or '_'", g.Name)
		}
		if len(g.Ports) == 0 {
			return p, fmt.Errorf("group %s: no ports", g.Name)
		}
		var elems []nftables.SetElement
		for _, port := range g.Ports {
			elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(port)})
		}
		ports := newSet("shield_"+g.Name+"_ports", nftables.Set{KeyType: nftables.TypeInetService}, elems)
		gc := shieldChain{chain: &nftables.Chain{Name: "shield_" + g.Name}}
		in.rules = append(in.rules, shieldRule{"shield: ports of " + g.Name, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: gc.chain.Name}}})
		drop := func(kind string) string {
			name := "shield_" + g.Name + "_" + kind
			chains = append(chains, dropChain(name, g.Name, kind, cfg))
			return name
		}
		size := uint32(cfg.MaxSources)
		if g.Rate > 0 {
			to := drop(ShieldRate)
			for _, v6 := range []bool{false, true} {
				meter := newSet(fmt.Sprintf("shield_%s_rate%d", g.Name, fam(v6)), nftables.Set{KeyType: addrType(v6),
					Dynamic: true, HasTimeout: true, Timeout: time.Minute, Size: size}, nil)
				gc.rules = append(gc.rules, shieldRule{fmt.Sprintf("shield: %s rate%d %d/s burst %d", g.Name, fam(v6), g.Rate, g.Burst),
					append(addrMatch(v6, false),
						&expr.Dynset{SrcRegKey: 1, SetName: meter.Name, SetID: meter.ID, Operation: unix.NFT_DYNSET_OP_UPDATE,
							Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(g.Rate), Over: true,
								Unit: expr.LimitTimeSecond, Burst: uint32(g.Burst)}}},
						&expr.Verdict{Kind: expr.VerdictGoto, Chain: to})})
			}
		}
		if g.Conns > 0 {
			to := drop(ShieldConn)
			for _, v6 := range []bool{false, true} {
				count := newSet(fmt.Sprintf("shield_%s_conn%d", g.Name, fam(v6)), nftables.Set{KeyType: addrType(v6),
					Dynamic: true, Size: size}, nil)
				gc.rules = append(gc.rules, shieldRule{fmt.Sprintf("shield: %s conn%d over %d", g.Name, fam(v6), g.Conns),
					append(addrMatch(v6, false), connlimit(count, g.Conns), &expr.Verdict{Kind: expr.VerdictGoto, Chain: to})})
			}
		}
		if g.NetConns > 0 {
			to := drop(ShieldNet)
			for _, v6 := range []bool{false, true} {
				count := newSet(fmt.Sprintf("shield_%s_net%d", g.Name, fam(v6)), nftables.Set{KeyType: addrType(v6),
					Dynamic: true, Size: size}, nil)
				bits := 24
				if v6 {
					bits = 64
				}
				gc.rules = append(gc.rules, shieldRule{fmt.Sprintf("shield: %s net%d /%d over %d", g.Name, fam(v6), bits, g.NetConns),
					append(addrMatch(v6, false),
						&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(addrType(v6).Bytes),
							Mask: prefixMask(v6, bits), Xor: make([]byte, addrType(v6).Bytes)},
						connlimit(count, g.NetConns), &expr.Verdict{Kind: expr.VerdictGoto, Chain: to})})
			}
		}
		if g.SYNRate > 0 {
			to := drop(ShieldSYN)
			gc.rules = append(gc.rules, shieldRule{fmt.Sprintf("shield: %s syn %d/s burst %d", g.Name, g.SYNRate, g.SYNBurst),
				[]expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(g.SYNRate), Over: true,
					Unit: expr.LimitTimeSecond, Burst: uint32(g.SYNBurst)},
					&expr.Verdict{Kind: expr.VerdictGoto, Chain: to}}})
		}
		chains = append(chains, gc)
	}
	if len(cfg.Groups) > 0 {
		p.chains = append(p.chains, in)
	}
	p.chains = append(p.chains, chains...)
	if cfg.Portscan {
		p.chains = append(p.chains, portscanChains(cfg)...)
	}
	return p, nil
}

// dropChain counts, optionally logs (rate-limited) and drops.
func dropChain(name, group, kind string, cfg ShieldsConfig) shieldChain {
	ch := shieldChain{chain: &nftables.Chain{Name: name}, group: group, kind: kind}
	first := []expr.Any{&expr.Counter{}}
	comment := "shield: count " + group + " " + kind
	if cfg.LogDrops && cfg.LogGroup != 0 {
		first = append(first, &expr.Limit{Type: expr.LimitTypePkts, Rate: shieldLogRate, Unit: expr.LimitTimeSecond, Burst: 2 * shieldLogRate},
			logTo(cfg.LogGroup, shieldLogPrefix+group+" "+kind))
		comment += fmt.Sprintf(", log group %d", cfg.LogGroup)
	}
	ch.rules = []shieldRule{{comment, first}, {"shield: drop", []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}}}
	return ch
}

// portscanChains log the host's answers to probes of closed ports: a TCP
// reset with sequence number 0 and ACK set is what the kernel sends when
// no socket takes a SYN (or a FIN, NULL or Xmas probe); an application
// resetting its own connection sends its real sequence number. UDP probes
// of closed ports get ICMP port unreachable. The scanner is the
// destination; allowlisted and carved-out ones, and loopback, are left out.
func portscanChains(cfg ShieldsConfig) []shieldChain {
	scan := shieldChain{chain: &nftables.Chain{Name: "shield_scan"}, kind: ShieldScan}
	first := []expr.Any{&expr.Counter{}}
	comment := "shield: count scan"
	if cfg.LogGroup != 0 {
		first = append(first, &expr.Limit{Type: expr.LimitTypePkts, Rate: portscanLogRate, Unit: expr.LimitTimeSecond, Burst: 2 * portscanLogRate},
			logTo(cfg.LogGroup, portscanLogPrefix))
		comment += fmt.Sprintf(", log group %d", cfg.LogGroup)
	}
	scan.rules = []shieldRule{{comment, first}}

	accept := nftables.ChainPolicyAccept
	out := shieldChain{chain: &nftables.Chain{Name: "shield_out", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept}}
	ret := &expr.Verdict{Kind: expr.VerdictReturn}
	jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: scan.chain.Name}
	out.rules = append(out.rules, shieldRule{"shield: not loopback", []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_LOOPBACK)}, ret}})
	for _, set := range []int{setAllow4, setAllow6, setCarve4, setCarve6} {
		out.rules = append(out.rules, shieldRule{"shield: exempt " + nftSetNames[set],
			append(addrMatch(isV6Set(set), true), lookup(nftSetNames[set]), ret)})
	}
	rstAck := byte(0x04 | 0x10)
	out.rules = append(out.rules,
		shieldRule{"shield: closed tcp port", []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x01 | 0x02 | 0x04 | 0x10}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{rstAck}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 4, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)},
			jump}},
		// ICMP (ICMPv6) destination unreachable, port unreachable.
		shieldRule{"shield: closed udp port (ipv4)", portUnreachable(unix.NFPROTO_IPV4, unix.IPPROTO_ICMP, 3, 3, jump)},
		shieldRule{"shield: closed udp port (ipv6)", portUnreachable(unix.NFPROTO_IPV6, unix.IPPROTO_ICMPV6, 1, 4, jump)},
	)
	return []shieldChain{out, scan}
}

// portUnreachable matches an ICMP message of family nfproto with the
// given type and code, and jumps.
func portUnreachable(nfproto, l4proto, typ, code byte, jump *expr.Verdict) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ, code}},
		jump,
	}
}

func fam(v6 bool) int {
	if v6 {
		return 6
	}
	return 4
}

func addrType(v6 bool) nftables.SetDatatype {
	if v6 {
		return nftables.TypeIP6Addr
	}
	return nftables.TypeIPAddr
}

// addrMatch checks the packet's family and loads its source (or, with dst,
// destination) address into register 1.
func addrMatch(v6, dst bool) []expr.Any {
	proto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if v6 {
		proto, off, n = unix.NFPROTO_IPV6, 8, 16
	}
	if dst {
		off += n
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
	}
}

func lookup(set string) *expr.Lookup { return &expr.Lookup{SourceRegister: 1, SetName: set} }

// connlimit adds the key in register 1 to count with a connection count,
// matching when the key holds more than n connections.
func connlimit(count *nftables.Set, n int) *expr.Dynset {
	return &expr.Dynset{SrcRegKey: 1, SetName: count.Name, SetID: count.ID, Operation: unix.NFT_DYNSET_OP_ADD,
		Exprs: []expr.Any{&expr.Connlimit{Count: uint32(n), Flags: expr.NFT_CONNLIMIT_F_INV}}}
}

func prefixMask(v6 bool, bits int) []byte {
	n := 4
	if v6 {
		n = 16
	}
	m := make([]byte, n)
	for i := range bits {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

func logTo(group uint16, prefix string) *expr.Log {
	return &expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_SNAPLEN,
		Group: group, Data: []byte(prefix), Snaplen: logSnaplen}
}

func validShieldName(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// ParseShieldPrefix reads the prefix of a shield's NFLOG message: a drop
// by shield KIND of GROUP ("rampart shield ssh rate"), or a closed-port
// reply (kind ShieldScan, group ""). ok is false for other prefixes.
func ParseShieldPrefix(prefix string) (group, kind string, ok bool) {
	if prefix == portscanLogPrefix {
		return "", ShieldScan, true
	}
	rest, found := strings.CutPrefix(prefix, shieldLogPrefix)
	if !found {
		return "", "", false
	}
	group, kind, found = strings.Cut(rest, " ")
	if !found || group == "" || kind == "" {
		return "", "", false
	}
	return group, kind, true
}

// NewShieldsFor installs shields in the table (and network namespace) of
// the enforcer e; cfg's Table and NetNSFd are ignored.
func NewShieldsFor(ctx context.Context, e *NFTables, cfg ShieldsConfig) (*Shields, error) {
	cfg.Table, cfg.NetNSFd = e.cfg.Table, e.cfg.NetNSFd
	return NewShields(ctx, cfg)
}

// NetNSFd returns the network namespace the shields work in (0: the
// process's own), where their NFLOG group is to be read.
func (s *Shields) NetNSFd() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.NetNSFd
}
