package firewall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/rampart-dev/rampart/internal/event"
)

// DefaultNFTablesTable is the name of Rampart's own table in family inet.
const DefaultNFTablesTable = "rampart"

// nftChain is the name of the one base chain in Rampart's table.
const nftChain = "prerouting"

// nftChunk is how many set elements go into one netlink message. A message's
// element list is a netlink attribute, whose length is 16 bits: 1,000 IPv6
// elements with timeouts stay well under 64 KiB.
const nftChunk = 1000

// NFTablesConfig configures NewNFTables.
type NFTablesConfig struct {
	// Table is the name of Rampart's table in family inet; DefaultNFTablesTable
	// when empty. Everything the enforcer installs lives in this table.
	Table string
	// NetNSFd, when not zero, is an open file descriptor of the network
	// namespace to work in (tests use it); zero means the process's own.
	NetNSFd int
	// Counters adds a packet/byte counter to every rule, shown by
	// `nft list table inet rampart`.
	Counters bool
	// Logger receives repairs of a hand-edited table and kernel fallbacks;
	// nil discards.
	Logger *slog.Logger
	// Trap, when set with ports, makes Apply trap the targets of Trap
	// decisions (see nftables_trap.go); nil: Trap decisions are skipped and
	// the trap's objects removed from the table.
	Trap *TrapRedirect
}

func (c NFTablesConfig) table() string {
	if c.Table == "" {
		return DefaultNFTablesTable
	}
	return c.Table
}

// Set indexes.
const (
	setBan4 = iota
	setBan6
	setBanNet4
	setBanNet6
	setAllow4
	setAllow6
	setCarve4
	setCarve6
	setBanPort4 // per-port bans (nftables_ports.go)
	setBanPort6
	numSets
)

var nftSetNames = [numSets]string{"ban4", "ban6", "bannet4", "bannet6", "allow4", "allow6", "carve4", "carve6", "banport4", "banport6"}

func isV6Set(i int) bool {
	return i == setBan6 || i == setBanNet6 || i == setAllow6 || i == setCarve6 || i == setBanPort6
}

// nftRule is one rule of the base chain, in chain order.
type nftRule struct {
	set     int
	verdict expr.VerdictKind
}

// The order is the semantics:
//
//  1. allow sets accept: the allowlist wins over every ban;
//  2. address bans drop: a ban on the address itself beats its carve-out;
//  3. per-port bans drop the address's traffic to their ports, and beat
//     its carve-out too;
//  4. carve sets accept: a carved-out address inside a banned prefix passes;
//  5. prefix bans drop.
//
// An accept ends only Rampart's chain, so other base chains (Docker's, the
// distribution's firewall) still see the packet.
var nftRules = []nftRule{
	{setAllow4, expr.VerdictAccept},
	{setAllow6, expr.VerdictAccept},
	{setBan4, expr.VerdictDrop},
	{setBan6, expr.VerdictDrop},
	{setBanPort4, expr.VerdictDrop},
	{setBanPort6, expr.VerdictDrop},
	{setCarve4, expr.VerdictAccept},
	{setCarve6, expr.VerdictAccept},
	{setBanNet4, expr.VerdictDrop},
	{setBanNet6, expr.VerdictDrop},
}

func (r nftRule) comment() string {
	v := "drop"
	if r.verdict == expr.VerdictAccept {
		v = "accept"
	}
	return "rampart " + nftSetNames[r.set] + " " + v
}

// NFTables enforces decisions with nftables over netlink. It owns one table
// (inet rampart by default) holding:
//
//   - sets ban4/ban6 (addresses, flags timeout) and bannet4/bannet6
//     (prefixes, flags interval,timeout) whose elements carry their own
//     kernel timeout, so bans expire even while the daemon is down;
//   - sets allow4/allow6 (flags interval);
//   - sets carve4/carve6 (addresses, flags timeout): the carve-outs;
//   - sets banport4/banport6 (address . protocol . port, flags timeout): the
//     per-port bans (see nftables_ports.go);
//   - one base chain, type filter hook prerouting priority -300 (raw: before
//     conntrack and before DNAT, so Docker-published ports are covered), with
//     rules in this order: saddr in allow → accept (ends only this chain);
//     saddr in ban → drop; saddr . l4proto . dport in banport → drop;
//     saddr in carve → accept; saddr in bannet → drop.
//
// Every call first checks that table, sets, chain and rules are as Rampart
// made them and re-creates what was deleted or changed by hand, then puts
// back the elements the kernel lost (see Reconcile), logging a warning that
// names what it repaired. A table of an older Rampart, without the carve
// or the per-port sets, is upgraded in place: its bans stay.
//
// A /32 or /128 target goes into the address set, a wider prefix into the
// net set. The net sets cannot hold overlapping intervals, so a new prefix
// replaces the narrower prefixes it covers (their own timeouts are lost) and
// a prefix already covered by a wider banned one is not added.
//
// Re-adding an element refreshes its timeout on kernels that update timeouts
// in place (6.x; probed at start-up); on older ones Apply deletes and re-adds
// the element within the same batch, which has the same effect.
//
// If the kernel refuses interval+timeout sets, bannet4/bannet6 are created
// with flags interval only and the enforcer expires their elements itself
// on its next Apply or Active: while the daemon is down, prefix bans then
// stay in place. A warning says so at start-up.
//
// NFTables is safe for concurrent use. It never runs the nft binary.
type NFTables struct {
	mu     sync.Mutex
	cfg    NFTablesConfig
	log    *slog.Logger
	now    func() time.Time
	table  *nftables.Table
	sets   [numSets]*nftables.Set
	chain  *nftables.Chain
	trap   *trapObjects // nil unless trapping
	closed bool

	// What the kernel can do, learnt once by probing in New.
	updatesTimeout bool // re-adding an element sets its new timeout
	netTimeout     bool // interval sets accept element timeouts

	// netExpiry holds the end of each prefix ban when !netTimeout.
	netExpiry map[netip.Prefix]time.Time

	// want is what the kernel should hold; Reconcile compares the two.
	want intent
	// gen is the ruleset generation at which the kernel was last known to
	// hold want, when genOK: a later generation means someone committed
	// since (see Reconcile).
	gen   uint32
	genOK bool
	// nl is a socket of our own for generations and dumps; nil until used.
	nl    *netlink.Conn
	stats Stats

	// Socket buffer sizes for the next netlink dial: one batch is one
	// sendmsg, and the kernel refuses one larger than the send buffer.
	sndbuf, rcvbuf int
}

// NewNFTables installs (or checks and repairs) Rampart's table and returns
// the enforcer. Existing elements are kept: a restarted daemon finds its
// bans where it left them.
func NewNFTables(ctx context.Context, cfg NFTablesConfig) (*NFTables, error) {
	e := &NFTables{
		cfg:       cfg,
		log:       loggerOrDiscard(cfg.Logger),
		now:       time.Now,
		table:     &nftables.Table{Name: cfg.table(), Family: nftables.TableFamilyINet},
		netExpiry: make(map[netip.Prefix]time.Time),
		want:      newIntent(),
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := e.init(); err != nil {
		return nil, fmt.Errorf("nftables table inet %s: %w", e.table.Name, err)
	}
	return e, nil
}

func (e *NFTables) init() error {
	c, err := e.conn()
	if err != nil {
		return err
	}
	existed, err := e.tableExists(c)
	if err != nil {
		return err
	}
	if !existed {
		c.AddTable(e.table)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("create table: %w", err)
		}
	}
	if err := e.probe(c); err != nil {
		return err
	}
	e.defineSets()
	fixed, err := e.ensure(c)
	if err != nil {
		return err
	}
	// The trap's objects come and go with the configuration at start-up:
	// no one else changed them.
	n := len(fixed)
	fixed = slices.DeleteFunc(fixed, isTrapObject)
	if len(fixed) < n && e.trapping() {
		e.log.Info("nftables: trap redirect installed", "table", e.table.Name, "ports", fmt.Sprint(e.cfg.Trap.Ports))
	}
	switch {
	case !existed:
		e.log.Info("nftables: installed table", "table", e.table.Name,
			"timeout_update", e.updatesTimeout, "interval_timeout", e.netTimeout)
	case upgrade(fixed):
		e.log.Info("nftables: table of an older rampart upgraded in place; its bans are kept",
			"table", e.table.Name, "changed", strings.Join(fixed, ", "))
	case len(fixed) > 0:
		e.log.Warn("nftables: table was changed outside rampart; repaired",
			"table", e.table.Name, "repaired", strings.Join(fixed, ", "))
	}
	e.genOK = false
	return nil
}

// newerSets are the sets later versions of Rampart added to its table.
var newerSets = []string{"carve4", "carve6", "banport4", "banport6"}

// upgrade reports whether the repairs ensure made are those that bring a
// table of an older Rampart (without some of newerSets) up to date: the
// sets added and the chain's rules rewritten, nothing else.
func upgrade(fixed []string) bool {
	rules := false
	for _, f := range fixed {
		if f == "rules of chain "+nftChain {
			rules = true
			continue
		}
		name, ok := strings.CutPrefix(f, "set ")
		name, missing := strings.CutSuffix(name, " (missing)")
		if !ok || !missing || !slices.Contains(newerSets, name) {
			return false
		}
	}
	return rules
}

// conn returns a netlink connection handle; each operation on it dials its
// own socket (in the configured namespace) and closes it.
func (e *NFTables) conn() (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.WithSockOptions(e.sockOpt)}
	if e.cfg.NetNSFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(e.cfg.NetNSFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return c, nil
}

func (e *NFTables) sockOpt(nc *netlink.Conn) error {
	raw, err := nc.SyscallConn()
	if err != nil {
		return err
	}
	snd, rcv := max(e.sndbuf, 1<<20), max(e.rcvbuf, 4<<20)
	var serr error
	err = raw.Control(func(fd uintptr) {
		// The FORCE variants ignore net.core.[rw]mem_max; they need
		// CAP_NET_ADMIN, which nftables needs anyway.
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, snd); err != nil {
			serr = fmt.Errorf("set send buffer: %w", err)
			return
		}
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcv); err != nil {
			serr = fmt.Errorf("set receive buffer: %w", err)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// sizeFor sets the socket buffers for a batch of about n elements in msgs
// messages.
func (e *NFTables) sizeFor(n, msgs int) {
	e.sndbuf = n*96 + msgs*256 + 1<<16
	e.rcvbuf = msgs*2048 + 1<<20
}

// begin checks the enforcer and the table before an operation. When the
// table had been changed, it repairs it and puts back what the kernel lost
// before the operation goes on.
func (e *NFTables) begin(ctx context.Context) (*nftables.Conn, error) {
	if e.closed {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.sndbuf, e.rcvbuf = 0, 0
	c, err := e.conn()
	if err != nil {
		return nil, err
	}
	fixed, err := e.ensure(c)
	if err != nil {
		return nil, err
	}
	if len(fixed) > 0 {
		if _, err := e.repair(c, fixed); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// batch counts what goes into one netlink batch, to size the socket.
type nftBatch struct {
	c          *nftables.Conn
	elems, msg int
	err        error
}

func (b *nftBatch) add(s *nftables.Set, els []nftables.SetElement) {
	for chunk := range slices.Chunk(els, nftChunk) {
		if err := b.c.SetAddElements(s, chunk); err != nil && b.err == nil {
			b.err = fmt.Errorf("add to set %s: %w", s.Name, err)
		}
		b.elems += len(chunk)
		b.msg++
	}
}

func (b *nftBatch) del(s *nftables.Set, els []nftables.SetElement) {
	for chunk := range slices.Chunk(els, nftChunk) {
		if err := b.c.SetDeleteElements(s, chunk); err != nil && b.err == nil {
			b.err = fmt.Errorf("delete from set %s: %w", s.Name, err)
		}
		b.elems += len(chunk)
		b.msg++
	}
}

// destroy deletes elements of a hash set whether or not they are there: it
// adds them (a no-op for present ones) and deletes them in the same batch.
func (b *nftBatch) destroy(s *nftables.Set, els []nftables.SetElement) {
	plain := make([]nftables.SetElement, len(els))
	for i, el := range els {
		plain[i] = nftables.SetElement{Key: el.Key}
	}
	b.add(s, plain)
	b.del(s, plain)
}

// flush sends the batch as one transaction. When the kernel was known to
// hold the intent before and the transaction is the only one committed in
// between, it still is afterwards; otherwise the next Reconcile compares
// everything.
func (e *NFTables) flush(b *nftBatch) error {
	if b.err != nil {
		e.genOK = false
		return b.err
	}
	e.sizeFor(b.elems, b.msg)
	before, okBefore := e.readGen()
	err := b.c.Flush()
	after, okAfter := e.readGen()
	if err != nil || !okBefore || !okAfter || !e.genOK || before != e.gen || after-before > 1 {
		e.genOK = false
	} else {
		e.gen = after
	}
	return err
}

// intervalElems returns the elements that encode r in an interval set: its
// first address with the timeout, and one past its last address flagged as
// the interval's end (left out when r runs to the top of the family).
func intervalElems(r addrRange, timeout time.Duration) []nftables.SetElement {
	els := []nftables.SetElement{{Key: r.first.AsSlice(), Timeout: timeout}}
	if next := r.last.Next(); next.IsValid() {
		els = append(els, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
	}
	return els
}

// nftInterval is one interval read back from the kernel.
type nftInterval struct {
	r         addrRange
	timeout   time.Duration // as set; 0 for none
	remaining time.Duration // time left when timeout > 0
}

// each calls fn for every element of one of Rampart's sets (see
// dumpElements).
func (e *NFTables) each(s *nftables.Set, fn func(nftElem)) error {
	nl, err := e.netlink()
	if err != nil {
		return err
	}
	if err := dumpElements(nl, e.table.Name, s.Name, fn); err != nil {
		e.dropNetlink()
		return err
	}
	return nil
}

// dump lists the elements of one of Rampart's sets.
func (e *NFTables) dump(s *nftables.Set) ([]nftElem, error) {
	var els []nftElem
	err := e.each(s, func(el nftElem) { els = append(els, el) })
	return els, err
}

// readIntervals lists the intervals of an interval set, pairing each start
// element with the end element that follows it.
func (e *NFTables) readIntervals(s *nftables.Set) ([]nftInterval, error) {
	pts, err := e.dump(s)
	if err != nil {
		return nil, err
	}
	// At equal keys an interval's end sorts before the next one's start.
	slices.SortFunc(pts, func(x, y nftElem) int {
		if c := x.key.Compare(y.key); c != 0 {
			return c
		}
		switch {
		case x.end == y.end:
			return 0
		case x.end:
			return -1
		}
		return 1
	})
	var out []nftInterval
	for i, p := range pts {
		if p.end {
			continue
		}
		last := lastAddr(netip.PrefixFrom(p.key, 0))
		if i+1 < len(pts) && pts[i+1].end {
			last = pts[i+1].key.Prev()
		}
		out = append(out, nftInterval{r: addrRange{p.key, last}, timeout: p.timeout, remaining: p.remaining})
	}
	return out, nil
}

// Apply bans every Decision with Action Ban, each Target for its Duration
// (see the package doc for Start, zero Duration and other actions), in a
// single netlink batch. Re-applying a target that is already banned sets its
// timeout to the new Duration. A Decision with Ports bans only those ports
// of its address (banport sets): a port that two such bans share keeps the
// later end. Apply is all or nothing: the batch is one
// kernel transaction, so a nil error means every ban is in force and an
// error means the kernel's sets are as they were (repairs of a hand-edited
// table, logged, may have been made before) while the bans stay in the
// intent, so the next Reconcile tries them again. An invalid target fails
// the call before anything is sent or remembered. ctx is checked before
// the batch is sent; a batch in flight is not interrupted (one kernel
// transaction: milliseconds, under half a second for 100,000 bans).
func (e *NFTables) Apply(ctx context.Context, ds []event.Decision) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	bans, _, err := bansFrom(ds, now)
	if err == nil {
		err = checkPorts(bans)
	}
	if err != nil {
		return fmt.Errorf("nftables apply: %w", err)
	}
	var traps []ban
	if e.trapping() {
		if traps, err = trapsFrom(ds, now); err != nil {
			return fmt.Errorf("nftables apply: %w", err)
		}
	}
	if e.closed {
		return fmt.Errorf("nftables apply: %w", ErrClosed)
	}
	e.want.addBans(bans, now)
	ports := e.want.addPortBans(bans, now)
	e.want.addTraps(traps, now)
	defer e.unsure(&err)
	c, err := e.begin(ctx)
	if err != nil {
		return fmt.Errorf("nftables apply: %w", err)
	}
	b := &nftBatch{c: c}
	var nets [2][]ban
	var addrs [2][]nftables.SetElement
	for _, bn := range bans {
		v6 := 0
		if bn.target.Addr().Is6() {
			v6 = 1
		}
		switch {
		case len(bn.ports) > 0:
			// in ports
		case isSingle(bn.target):
			addrs[v6] = append(addrs[v6], nftables.SetElement{Key: bn.target.Addr().AsSlice(), Timeout: bn.timeout})
		default:
			nets[v6] = append(nets[v6], bn)
		}
	}
	e.addPorts(b, ports, now)
	for fam, els := range addrs {
		if len(els) == 0 {
			continue
		}
		s := e.sets[setBan4+fam]
		if !e.updatesTimeout {
			b.destroy(s, els)
		}
		b.add(s, els)
	}
	if len(traps) > 0 {
		e.addTraps(b, traps)
	}
	expiry := map[netip.Prefix]time.Time{}
	for fam, nb := range nets {
		if len(nb) == 0 && e.netTimeout {
			continue
		}
		if err := e.applyNets(b, e.sets[setBanNet4+fam], nb, now, expiry); err != nil {
			return fmt.Errorf("nftables apply: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nftables apply: %w", err)
	}
	if err := e.flush(b); err != nil {
		return fmt.Errorf("nftables apply %d bans, %d traps: %w", len(bans), len(traps), err)
	}
	for p, t := range expiry {
		if t.IsZero() {
			delete(e.netExpiry, p)
		} else {
			e.netExpiry[p] = t
		}
	}
	return nil
}

// applyNets adds prefix bans to an interval set, resolving overlaps with what
// the set holds (the kernel refuses overlapping intervals). When the kernel
// cannot time out interval elements, it also deletes the ones whose time is
// up and records in expiry the end of each ban it adds (zero: removed).
func (e *NFTables) applyNets(b *nftBatch, s *nftables.Set, nb []ban, now time.Time, expiry map[netip.Prefix]time.Time) error {
	cur, err := e.readIntervals(s)
	if err != nil {
		return err
	}
	if !e.netTimeout {
		cur = e.expireNets(b, s, cur, now, expiry)
	}
	// Widest first, so a narrower prefix of the same batch is seen as covered.
	slices.SortStableFunc(nb, func(x, y ban) int { return x.target.Bits() - y.target.Bits() })
	for _, bn := range nb {
		r := prefixRange(bn.target)
		covered := false
		keep := cur[:0:0]
		for _, iv := range cur {
			switch {
			case iv.r == r:
				// Refresh: re-adding updates the timeout where the kernel
				// supports it; elsewhere delete and re-add in this batch.
				if !e.updatesTimeout || !e.netTimeout {
					b.del(s, intervalElems(iv.r, 0))
				}
			case iv.r.contains(r):
				covered = true
				keep = append(keep, iv)
			case iv.r.overlaps(r):
				// A narrower ban (or a hand-made range) inside the new one.
				b.del(s, intervalElems(iv.r, 0))
				for _, p := range rangePrefixes(iv.r) {
					expiry[p] = time.Time{}
				}
			default:
				keep = append(keep, iv)
			}
		}
		if covered {
			e.log.Debug("nftables: prefix already covered by a wider ban", "addr", bn.target.String())
			cur = keep
			continue
		}
		timeout := bn.timeout
		if !e.netTimeout {
			expiry[bn.target] = time.Time{}
			if timeout > 0 {
				expiry[bn.target] = now.Add(timeout)
			}
			timeout = 0
		}
		b.add(s, intervalElems(r, timeout))
		cur = append(keep, nftInterval{r: r, timeout: bn.timeout, remaining: bn.timeout})
	}
	return nil
}

// expireNets deletes the prefix bans whose recorded end has passed, for
// kernels without interval timeouts, and returns the intervals left.
func (e *NFTables) expireNets(b *nftBatch, s *nftables.Set, cur []nftInterval, now time.Time, expiry map[netip.Prefix]time.Time) []nftInterval {
	keep := cur[:0:0]
	for _, iv := range cur {
		ps := rangePrefixes(iv.r)
		end, ok := e.netExpiry[ps[0]]
		if len(ps) == 1 && ok && !now.Before(end) {
			b.del(s, intervalElems(iv.r, 0))
			expiry[ps[0]] = time.Time{}
			continue
		}
		keep = append(keep, iv)
	}
	return keep
}

// Revoke removes the bans on exactly these targets (normalized like Apply's)
// in one batch, an address's per-port bans with its whole-host one. A
// target that is not banned is not an error; Revoke of a prefix does not
// touch other bans inside or around it. All or nothing,
// like Apply; an invalid target fails the call before anything is sent.
func (e *NFTables) Revoke(ctx context.Context, targets []netip.Prefix) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ts, err := normalizePrefixes(targets)
	if err != nil {
		return fmt.Errorf("nftables revoke: %w", err)
	}
	if e.closed {
		return fmt.Errorf("nftables revoke: %w", ErrClosed)
	}
	single := map[netip.Addr]bool{}
	for _, t := range ts {
		e.want.bans.delete(t)
		delete(e.want.traps, t.Addr())
		if isSingle(t) {
			single[t.Addr()] = true
		}
	}
	e.want.dropPortBans(single)
	defer e.unsure(&err)
	c, err := e.begin(ctx)
	if err != nil {
		return fmt.Errorf("nftables revoke: %w", err)
	}
	b := &nftBatch{c: c}
	var addrs [2][]nftables.SetElement
	var nets [2][]netip.Prefix
	for _, t := range ts {
		v6 := 0
		if t.Addr().Is6() {
			v6 = 1
		}
		if isSingle(t) {
			addrs[v6] = append(addrs[v6], nftables.SetElement{Key: t.Addr().AsSlice()})
		} else {
			nets[v6] = append(nets[v6], t)
		}
	}
	for fam, els := range addrs {
		if len(els) > 0 {
			b.destroy(e.sets[setBan4+fam], els)
		}
	}
	if e.trapping() {
		e.untrap(b, addrs)
	}
	if err := e.dropPorts(b, single); err != nil {
		return fmt.Errorf("nftables revoke: %w", err)
	}
	for fam, ps := range nets {
		if len(ps) == 0 {
			continue
		}
		s := e.sets[setBanNet4+fam]
		cur, err := e.readIntervals(s)
		if err != nil {
			return fmt.Errorf("nftables revoke: %w", err)
		}
		for _, p := range ps {
			r := prefixRange(p)
			for _, iv := range cur {
				if iv.r == r {
					b.del(s, intervalElems(r, 0))
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nftables revoke: %w", err)
	}
	if err := e.flush(b); err != nil {
		return fmt.Errorf("nftables revoke %d targets: %w", len(ts), err)
	}
	for fam := range nets {
		for _, p := range nets[fam] {
			delete(e.netExpiry, p)
		}
	}
	return nil
}

// Active returns the bans the kernel holds now, one Decision per address or
// prefix with Action Ban, Start the current time and Duration the time left
// (zero for a ban without timeout); per-port bans as one Decision with Ports
// per address and time left. Scenario, Reason, Jail and Origin are
// empty: the kernel does not keep them. An interval added by hand that is not
// a CIDR prefix is reported as the prefixes that make it up. The allow sets
// are not reported.
func (e *NFTables) Active(ctx context.Context) ([]event.Decision, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("nftables active: %w", err)
	}
	now := e.now()
	var out []event.Decision
	for _, i := range []int{setBan4, setBan6} {
		els, err := e.dump(e.sets[i])
		if err != nil {
			return nil, fmt.Errorf("nftables active: %w", err)
		}
		for _, el := range els {
			out = append(out, event.Decision{Target: event.AddrPrefix(el.key), Action: event.Ban, Start: now, Duration: remaining(el.timeout, el.remaining)})
		}
	}
	b := &nftBatch{c: c}
	expiry := map[netip.Prefix]time.Time{}
	for _, i := range []int{setBanNet4, setBanNet6} {
		cur, err := e.readIntervals(e.sets[i])
		if err != nil {
			return nil, fmt.Errorf("nftables active: %w", err)
		}
		if !e.netTimeout {
			cur = e.expireNets(b, e.sets[i], cur, now, expiry)
		}
		for _, iv := range cur {
			for _, p := range rangePrefixes(iv.r) {
				d := remaining(iv.timeout, iv.remaining)
				if end, ok := e.netExpiry[p]; !e.netTimeout && ok {
					d = end.Sub(now)
				}
				out = append(out, event.Decision{Target: p, Action: event.Ban, Start: now, Duration: d})
			}
		}
	}
	if b.msg > 0 {
		if err := e.flush(b); err != nil {
			return nil, fmt.Errorf("nftables active: expire prefix bans: %w", err)
		}
		for p := range expiry {
			delete(e.netExpiry, p)
		}
	}
	ps, err := e.activePorts(now)
	if err != nil {
		return nil, fmt.Errorf("nftables active: %w", err)
	}
	out = append(out, ps...)
	if e.trapping() {
		ts, err := e.activeTraps(now)
		if err != nil {
			return nil, fmt.Errorf("nftables active: %w", err)
		}
		out = append(out, ts...)
	}
	return out, nil
}

func remaining(timeout, expires time.Duration) time.Duration {
	if timeout <= 0 {
		return 0
	}
	return max(expires, time.Millisecond)
}

// SetAllow replaces the contents of the allow sets with allow in one batch:
// the kernel switches from the old allowlist to the new one atomically, with
// no moment where neither applies. Overlapping and adjacent entries are
// merged. An invalid prefix fails the call before anything is sent.
func (e *NFTables) SetAllow(ctx context.Context, allow []netip.Prefix) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps, err := normalizePrefixes(allow)
	if err != nil {
		return fmt.Errorf("nftables set allow: %w", err)
	}
	if e.closed {
		return fmt.Errorf("nftables set allow: %w", ErrClosed)
	}
	e.want.allow, e.want.allowSet = ps, true
	defer e.unsure(&err)
	c, err := e.begin(ctx)
	if err != nil {
		return fmt.Errorf("nftables set allow: %w", err)
	}
	b := &nftBatch{c: c}
	for fam, rs := range allowRanges(ps) {
		e.writeAllow(b, fam, rs)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nftables set allow: %w", err)
	}
	if err := e.flush(b); err != nil {
		return fmt.Errorf("nftables set allow: %w", err)
	}
	return nil
}

// allowRanges splits normalized prefixes into merged IPv4 and IPv6 ranges.
func allowRanges(ps []netip.Prefix) [2][]addrRange {
	var rs [2][]addrRange
	for _, p := range ps {
		fam := 0
		if p.Addr().Is6() {
			fam = 1
		}
		rs[fam] = append(rs[fam], prefixRange(p))
	}
	return [2][]addrRange{mergeRanges(rs[0]), mergeRanges(rs[1])}
}

// writeAllow replaces the contents of one family's allow set with rs in the
// batch and returns how many ranges it wrote.
func (e *NFTables) writeAllow(b *nftBatch, fam int, rs []addrRange) int {
	s := e.sets[setAllow4+fam]
	b.c.FlushSet(s)
	b.msg++
	var els []nftables.SetElement
	for _, r := range rs {
		els = append(els, intervalElems(r, 0)...)
	}
	b.add(s, els)
	return len(rs)
}

// unsure makes the next Reconcile compare everything when an operation
// failed: the kernel may hold less than the intent it recorded.
func (e *NFTables) unsure(err *error) {
	if *err != nil {
		e.genOK = false
	}
}

// Close releases the enforcer. The table, its bans and their timeouts stay in
// the kernel (use UninstallNFTables to remove them). Later calls return
// ErrClosed.
func (e *NFTables) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	e.dropNetlink()
	return nil
}

// UninstallNFTables deletes Rampart's table (cfg.Table in family inet) and with
// it every set, element, chain and rule Rampart installed. Other tables are
// not touched. A table that is not there is not an error.
func UninstallNFTables(cfg NFTablesConfig) error {
	e := &NFTables{cfg: cfg, table: &nftables.Table{Name: cfg.table(), Family: nftables.TableFamilyINet}}
	c, err := e.conn()
	if err != nil {
		return fmt.Errorf("uninstall nftables: %w", err)
	}
	ok, err := e.tableExists(c)
	if err != nil {
		return fmt.Errorf("uninstall nftables: %w", err)
	}
	if !ok {
		return nil
	}
	c.DelTable(e.table)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("uninstall nftables: delete table inet %s: %w", e.table.Name, err)
	}
	return nil
}
