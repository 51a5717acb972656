package firewall

// Carve-outs and keeping the kernel in step with what the NFTables enforcer
// was told: Reconcile, the repair after an outside change, and Watch.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// netlink returns the enforcer's own socket, dialling it when needed.
func (e *NFTables) netlink() (*netlink.Conn, error) {
	if e.nl == nil {
		nl, err := e.dialNetlink()
		if err != nil {
			return nil, err
		}
		e.nl = nl
	}
	return e.nl, nil
}

// dropNetlink closes the enforcer's socket after an error (a dump cut short
// leaves unread messages behind) or at Close.
func (e *NFTables) dropNetlink() {
	if e.nl != nil {
		e.nl.Close()
		e.nl = nil
	}
}

// readGen returns the ruleset's generation; ok is false when it cannot be
// read.
func (e *NFTables) readGen() (gen uint32, ok bool) {
	nl, err := e.netlink()
	if err != nil {
		return 0, false
	}
	gen, err = getGen(nl)
	if err != nil {
		e.dropNetlink()
		return 0, false
	}
	return gen, true
}

// Carve adds or refreshes carve-outs in one batch: each address passes the
// prefix bans until its Until (see CarveOut; an entry already past its
// Until is skipped, a zero Until means no timeout). Re-carving an address
// sets its timeout to the new Until, shorter or longer. A ban on the
// address itself still drops it. All or nothing, like Apply; an invalid
// address fails the call before anything is sent.
func (e *NFTables) Carve(ctx context.Context, cs []CarveOut) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	carves, err := carvesFrom(cs, now)
	if err != nil {
		return fmt.Errorf("nftables carve: %w", err)
	}
	if e.closed {
		return fmt.Errorf("nftables carve: %w", ErrClosed)
	}
	e.want.addCarves(carves, now)
	defer e.unsure(&err)
	c, err := e.begin(ctx)
	if err != nil {
		return fmt.Errorf("nftables carve: %w", err)
	}
	var els [2][]nftables.SetElement
	for _, co := range carves {
		fam := 0
		if co.addr.Is6() {
			fam = 1
		}
		els[fam] = append(els[fam], nftables.SetElement{Key: co.addr.AsSlice(), Timeout: co.timeout})
	}
	b := &nftBatch{c: c}
	for fam, els := range els {
		if len(els) == 0 {
			continue
		}
		s := e.sets[setCarve4+fam]
		if !e.updatesTimeout {
			b.destroy(s, els)
		}
		b.add(s, els)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nftables carve: %w", err)
	}
	if err := e.flush(b); err != nil {
		return fmt.Errorf("nftables carve %d addresses: %w", len(carves), err)
	}
	return nil
}

// Uncarve ends the carve-outs of these addresses in one batch; addresses
// not carved out are not an error. All or nothing, like Apply.
func (e *NFTables) Uncarve(ctx context.Context, addrs []netip.Addr) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	as, err := normalizeAddrs(addrs)
	if err != nil {
		return fmt.Errorf("nftables uncarve: %w", err)
	}
	if e.closed {
		return fmt.Errorf("nftables uncarve: %w", ErrClosed)
	}
	for _, a := range as {
		delete(e.want.carves, a)
	}
	defer e.unsure(&err)
	c, err := e.begin(ctx)
	if err != nil {
		return fmt.Errorf("nftables uncarve: %w", err)
	}
	var els [2][]nftables.SetElement
	for _, a := range as {
		fam := 0
		if a.Is6() {
			fam = 1
		}
		els[fam] = append(els[fam], nftables.SetElement{Key: a.AsSlice()})
	}
	b := &nftBatch{c: c}
	for fam, els := range els {
		if len(els) > 0 {
			b.destroy(e.sets[setCarve4+fam], els)
		}
	}
	if err := e.flush(b); err != nil {
		return fmt.Errorf("nftables uncarve %d addresses: %w", len(as), err)
	}
	return nil
}

// CarveOuts returns the carve-outs the kernel holds now, sorted by address,
// with Until computed from the time each has left (zero: no timeout).
func (e *NFTables) CarveOuts(ctx context.Context) ([]CarveOut, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.begin(ctx); err != nil {
		return nil, fmt.Errorf("nftables carve-outs: %w", err)
	}
	now := e.now()
	m := map[netip.Addr]time.Time{}
	for _, i := range []int{setCarve4, setCarve6} {
		els, err := e.dump(e.sets[i])
		if err != nil {
			return nil, fmt.Errorf("nftables carve-outs: %w", err)
		}
		for _, el := range els {
			m[el.key] = time.Time{}
			if el.timeout > 0 {
				m[el.key] = now.Add(remaining(el.timeout, el.remaining))
			}
		}
	}
	return liveCarves(m, now), nil
}

// Stats returns the enforcer's counters.
func (e *NFTables) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats
	st.CarvedOut = e.want.carvedOut(e.now())
	return st
}

// Reconcile makes the kernel hold again what the enforcer was told: the
// bans applied and neither revoked nor ended, the carve-outs, the
// allowlist. It re-creates a missing or changed table, set, chain or rule
// (a flushed ruleset, a firewall manager's reload) and puts back the
// elements the kernel lost, in one batch, then logs a warning and counts
// the repair (see Stats). Elements someone else added are left alone.
//
// Cheap when nothing changed: it reads the ruleset's generation, which the
// kernel increments at every committed transaction (expiring elements do
// not), and compares the sets only when a transaction that is not the
// enforcer's own, and that Watch did not see leave Rampart's table alone,
// has been committed since the kernel was last known to hold the intent,
// or when an operation of its own failed. That comparison dumps every set:
// a quarter to half a second at 100,000 bans (the kernel walks a set from
// its start for each piece of a dump), during which Apply waits.
//
// A nil error means the kernel held, or now holds, the intent as of the
// call; a non-nil error means it may not, and the next call compares
// everything again.
func (e *NFTables) Reconcile(ctx context.Context) (Repair, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Repair{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return Repair{}, err
	}
	if gen, ok := e.readGen(); ok && e.genOK && gen == e.gen {
		if e.want.bans.len() > e.want.prunedBans+1024 {
			e.want.prune(e.now())
		}
		return Repair{}, nil
	}
	e.sndbuf, e.rcvbuf = 0, 0
	c, err := e.conn()
	if err != nil {
		return Repair{}, fmt.Errorf("nftables reconcile: %w", err)
	}
	fixed, err := e.ensure(c)
	if err != nil {
		e.genOK = false
		return Repair{Fixed: fixed}, fmt.Errorf("nftables reconcile: %w", err)
	}
	rep, err := e.repair(c, fixed)
	if err != nil {
		return rep, fmt.Errorf("nftables reconcile: %w", err)
	}
	return rep, nil
}

// repair compares every set with the intent and puts back what is missing
// in one batch; fixed lists the structural repairs ensure has just made.
// It logs and counts a repair that changed anything.
func (e *NFTables) repair(c *nftables.Conn, fixed []string) (Repair, error) {
	rep := Repair{Fixed: fixed}
	before, okBefore := e.readGen()
	now := e.now()
	e.want.prune(now)
	b := &nftBatch{c: c}
	expiry := map[netip.Prefix]time.Time{}
	var nets [2][]ban
	for t, end := range e.want.bans.all() {
		if !isSingle(t) && live(end, now, reconcileSlack) {
			fam := 0
			if t.Addr().Is6() {
				fam = 1
			}
			nets[fam] = append(nets[fam], ban{target: t, timeout: timeoutAt(end, now)})
		}
	}
	for fam := range 2 {
		v6 := fam == 1
		n, err := e.restoreAddrs(b, e.sets[setBan4+fam], now, func(want func(netip.Addr, time.Time)) {
			for t, end := range e.want.bans.all() {
				if isSingle(t) && t.Addr().Is6() == v6 {
					want(t.Addr(), end)
				}
			}
		})
		if err != nil {
			e.genOK = false
			return rep, err
		}
		rep.Bans += n

		n, err = e.restoreAddrs(b, e.sets[setCarve4+fam], now, func(want func(netip.Addr, time.Time)) {
			for a, end := range e.want.carves {
				if a.Is6() == v6 {
					want(a, end)
				}
			}
		})
		if err != nil {
			e.genOK = false
			return rep, err
		}
		rep.CarveOuts += n

		s := e.sets[setBanNet4+fam]
		cur, err := e.readIntervals(s)
		if err != nil {
			e.genOK = false
			return rep, err
		}
		var missing []ban
		for _, bn := range nets[fam] {
			r := prefixRange(bn.target)
			held := false
			for _, iv := range cur {
				if iv.r.contains(r) {
					held = true
					break
				}
			}
			if !held {
				missing = append(missing, bn)
			}
		}
		if len(missing) > 0 {
			if err := e.applyNets(b, s, missing, now, expiry); err != nil {
				e.genOK = false
				return rep, err
			}
			rep.Bans += len(missing)
		}

		if e.want.allowSet {
			want := allowRanges(e.want.allow)[fam]
			cur, err := e.readIntervals(e.sets[setAllow4+fam])
			if err != nil {
				e.genOK = false
				return rep, err
			}
			if !sameRanges(cur, want) {
				rep.AllowEntries += e.writeAllow(b, fam, want)
			}
		}
	}
	n, err := e.repairPorts(b, now)
	if err != nil {
		e.genOK = false
		return rep, err
	}
	rep.Bans += n
	if e.trapping() {
		n, err := e.repairTraps(b, now)
		if err != nil {
			e.genOK = false
			return rep, err
		}
		rep.Traps += n
	}
	e.sizeFor(b.elems, b.msg)
	if b.err != nil {
		e.genOK = false
		return rep, b.err
	}
	if err := b.c.Flush(); err != nil {
		e.genOK = false
		return rep, fmt.Errorf("put back %s: %w", rep, err)
	}
	for p, t := range expiry {
		if t.IsZero() {
			delete(e.netExpiry, p)
		} else {
			e.netExpiry[p] = t
		}
	}
	after, okAfter := e.readGen()
	committed := uint32(0)
	if b.msg > 0 {
		committed = 1
	}
	e.genOK = okBefore && okAfter && after-before == committed
	e.gen = after
	e.stats.note(e.log, "nftables", slog.String("table", e.table.Name), rep)
	return rep, nil
}

// restoreAddrs adds to the address set s the addresses it lacks of those
// wanted (each with its end; zero: none) that are still live at now, and
// returns how many.
func (e *NFTables) restoreAddrs(b *nftBatch, s *nftables.Set, now time.Time, wanted func(want func(netip.Addr, time.Time))) (int, error) {
	n := 0
	wanted(func(netip.Addr, time.Time) { n++ })
	if n == 0 {
		return 0, nil
	}
	have := make(map[netip.Addr]struct{}, n)
	if err := e.each(s, func(el nftElem) { have[el.key] = struct{}{} }); err != nil {
		return 0, err
	}
	var add []nftables.SetElement
	wanted(func(a netip.Addr, end time.Time) {
		if _, ok := have[a]; !ok && live(end, now, reconcileSlack) {
			add = append(add, nftables.SetElement{Key: a.AsSlice(), Timeout: timeoutAt(end, now)})
		}
	})
	b.add(s, add)
	return len(add), nil
}

// timeoutAt is the kernel timeout for an entry ending at end (0: none).
func timeoutAt(end, now time.Time) time.Duration {
	if end.IsZero() {
		return 0
	}
	return max(end.Sub(now), time.Millisecond)
}

// sameRanges reports whether an interval set holds exactly the ranges want.
func sameRanges(cur []nftInterval, want []addrRange) bool {
	if len(cur) != len(want) {
		return false
	}
	for i, iv := range cur {
		if iv.r != want[i] {
			return false
		}
	}
	return true
}

// Watch follows the commits to the namespace's ruleset and calls changed
// (which must not block) when a Reconcile has work to do: another program
// committed a transaction that touched Rampart's table (a flushed ruleset,
// a deleted set or element), or the kernel dropped notifications because
// they came faster than they were read (a batch of Rampart's own with
// 100,000 elements does that). Transactions that touch only other tables
// (Docker's, kube-proxy's, a firewall manager's) are noted as harmless, so
// the Reconcile after them stays cheap. It returns nil when ctx ends, or an
// error when it cannot listen; the caller may call it again.
func (e *NFTables) Watch(ctx context.Context, changed func()) error {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: e.cfg.NetNSFd})
	if err != nil {
		return fmt.Errorf("nftables watch: %w", err)
	}
	defer nl.Close()
	if raw, err := nl.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			// Room for a few thousand notifications; more make ENOBUFS.
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		})
	}
	if err := nl.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("nftables watch: join group: %w", err)
	}
	// Commits before the group was joined went unseen.
	e.eventsLost()
	changed()
	stop := context.AfterFunc(ctx, func() { nl.SetReadDeadline(time.Now()) })
	defer stop()
	touched := false // the transaction being read touched Rampart's table
	for {
		msgs, err := nl.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				e.eventsLost()
				changed()
				touched = false
				continue
			}
			return fmt.Errorf("nftables watch: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type&0xff00 != nftSubsys || len(m.Data) < 4 {
				continue
			}
			if m.Header.Type&0xff == unix.NFT_MSG_NEWGEN {
				if gen, ok := genID(m.Data[4:]); !ok || e.noteCommit(gen, touched) {
					changed()
				}
				touched = false
				continue
			}
			if !touched && m.Data[0] == unix.NFPROTO_INET && tableName(m.Data[4:]) == e.table.Name {
				touched = true
			}
		}
	}
}

// noteCommit records a committed transaction that Watch has seen and
// reports whether a Reconcile has work to do: when the kernel was known to
// hold the intent at the generation before and the transaction did not
// touch Rampart's table, it still holds it.
func (e *NFTables) noteCommit(gen uint32, touched bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case !e.genOK:
		return true
	case int32(gen-e.gen) <= 0:
		return false // counted already: the enforcer's own, or older
	case gen == e.gen+1 && !touched:
		e.gen = gen
		return false
	}
	return true
}

// eventsLost makes the next Reconcile compare everything.
func (e *NFTables) eventsLost() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.genOK = false
}

// genID reads NFTA_GEN_ID from a NEWGEN message's attributes.
func genID(attrs []byte) (gen uint32, ok bool) {
	walkAttrs(attrs, func(typ uint16, b []byte) {
		if typ == unix.NFTA_GEN_ID && len(b) == 4 {
			gen, ok = binary.BigEndian.Uint32(b), true
		}
	})
	return gen, ok
}

// tableName reads the table an nftables notification is about: attribute 1
// of every object's message (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE,
// NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE, ...).
func tableName(attrs []byte) string {
	name := ""
	found := false
	walkAttrs(attrs, func(typ uint16, b []byte) {
		if typ == 1 && !found {
			found = true
			if i := bytes.IndexByte(b, 0); i >= 0 {
				b = b[:i]
			}
			name = string(b)
		}
	})
	return name
}
