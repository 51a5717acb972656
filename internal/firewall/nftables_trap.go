package firewall

// The trap's objects in Rampart's nftables table (issue 13), declared here
// and nowhere else: an address the daemon traps (a Decision with Action
// Trap) has its new TCP connections to the mail ports redirected to
// Rampart's trap listeners, and everything else it sends dropped, so the
// real mail servers never see it again.
//
//	set trap4, trap6       addresses, flags timeout: the trapped addresses
//	chain trap_filter      type filter hook prerouting priority mangle (-150):
//	                       after conntrack, before any DNAT
//	  ip saddr @allow4 accept                      (the allowlist is never trapped)
//	  ip saddr @trap4 ct status dnat accept        (a connection already redirected)
//	  ip saddr @trap4 tcp dport P ct state new accept   (for each trapped port P)
//	  ip saddr @trap4 drop                         (everything else it sends)
//	chain trap_nat         type nat hook prerouting priority dstnat - 10:
//	                       before other DNAT (Docker's), which it takes precedence over
//	  ip saddr @trap4 tcp dport P redirect to :L   (for each P and its listener L)
//	chain trap_input       type filter hook input priority filter:
//	  iif lo accept
//	  tcp dport L ct status dnat accept            (for each listener port L)
//	  tcp dport L drop                             (nobody reaches a listener unredirected)
//
// (and the same with ip6 and trap6). Address bans still win: the main
// chain drops a banned address at priority raw (-300), before any of
// these see it; so do prefix bans, except for carved-out addresses.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/rampart-dev/rampart/internal/event"
)

// TrapRedirect configures trapping in the NFTables enforcer: the new TCP
// connections of a trapped address to each port of Ports go to the local
// port it maps to, where the trap listens.
type TrapRedirect struct {
	Ports map[uint16]uint16 // the port an attacker dials → the trap listener's port
}

const (
	nftTrapFilter = "trap_filter"
	nftTrapNAT    = "trap_nat"
	nftTrapInput  = "trap_input"
)

var nftTrapSetNames = [2]string{"trap4", "trap6"}

// ctDNAT is conntrack's IPS_DST_NAT status bit: the connection was
// redirected (or otherwise destination-NATed).
const ctDNAT = 1 << 5

// trapObjects are the trap's sets and chains as Rampart wants them.
type trapObjects struct {
	sets   [2]*nftables.Set
	chains []*nftables.Chain
}

// trapSetID keeps the trap sets' batch IDs apart from the main sets'.
const trapSetID = 200

func (e *NFTables) defineTrap() *trapObjects {
	t := &trapObjects{}
	for fam, name := range nftTrapSetNames {
		s := &nftables.Set{Table: e.table, Name: name, ID: uint32(trapSetID + fam), KeyType: nftables.TypeIPAddr, HasTimeout: true}
		if fam == 1 {
			s.KeyType = nftables.TypeIP6Addr
		}
		t.sets[fam] = s
	}
	accept := nftables.ChainPolicyAccept
	t.chains = []*nftables.Chain{
		{Name: nftTrapFilter, Table: e.table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookPrerouting,
			Priority: nftables.ChainPriorityMangle, Policy: &accept},
		{Name: nftTrapNAT, Table: e.table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting,
			Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityNATDest - 10), Policy: &accept},
		{Name: nftTrapInput, Table: e.table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput,
			Priority: nftables.ChainPriorityFilter, Policy: &accept},
	}
	return t
}

// trapRule is one rule of a trap chain: its comment (how ensure recognises
// it) and its expressions.
type trapRule struct {
	comment string
	exprs   []expr.Any
}

// trapPorts returns the trapped ports in order, for stable rules.
func (t *TrapRedirect) trapPorts() []uint16 {
	ps := make([]uint16, 0, len(t.Ports))
	for p := range t.Ports {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// trapRules returns the rules of each trap chain, by chain name.
func (e *NFTables) trapRules() map[string][]trapRule {
	tr := e.cfg.Trap
	ports := tr.trapPorts()
	saddr := func(fam int, set *nftables.Set) []expr.Any {
		proto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
		if fam == 1 {
			proto, off, n = unix.NFPROTO_IPV6, 8, 16
		}
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		}
	}
	dport := func(p uint16) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, p)},
		}
	}
	ctBit := func(key expr.CtKey, bit uint32) []expr.Any {
		return []expr.Any{
			&expr.Ct{Key: key, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binary.NativeEndian.AppendUint32(nil, bit), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		}
	}
	verdict := func(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }
	cat := func(parts ...any) []expr.Any {
		var out []expr.Any
		for _, p := range parts {
			switch p := p.(type) {
			case []expr.Any:
				out = append(out, p...)
			case expr.Any:
				out = append(out, p)
			}
		}
		if e.cfg.Counters {
			out = slices.Insert(out, len(out)-1, expr.Any(&expr.Counter{}))
		}
		return out
	}
	rules := map[string][]trapRule{}
	for fam := range 2 {
		trapSet, allowSet := e.trap.sets[fam], e.sets[setAllow4+fam]
		rules[nftTrapFilter] = append(rules[nftTrapFilter],
			trapRule{"rampart " + allowSet.Name + " accept", cat(saddr(fam, allowSet), verdict(expr.VerdictAccept))},
			trapRule{"rampart " + trapSet.Name + " redirected accept", cat(saddr(fam, trapSet), ctBit(expr.CtKeySTATUS, ctDNAT), verdict(expr.VerdictAccept))})
		for _, p := range ports {
			rules[nftTrapFilter] = append(rules[nftTrapFilter],
				trapRule{fmt.Sprintf("rampart %s new %d accept", trapSet.Name, p), cat(saddr(fam, trapSet), dport(p), ctBit(expr.CtKeySTATE, expr.CtStateBitNEW), verdict(expr.VerdictAccept))})
			rules[nftTrapNAT] = append(rules[nftTrapNAT],
				trapRule{fmt.Sprintf("rampart %s %d redirect %d", trapSet.Name, p, tr.Ports[p]), cat(saddr(fam, trapSet), dport(p),
					&expr.Immediate{Register: 1, Data: binary.BigEndian.AppendUint16(nil, tr.Ports[p])},
					&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED})})
		}
		rules[nftTrapFilter] = append(rules[nftTrapFilter],
			trapRule{"rampart " + trapSet.Name + " drop", cat(saddr(fam, trapSet), verdict(expr.VerdictDrop))})
	}
	rules[nftTrapInput] = append(rules[nftTrapInput], trapRule{"rampart trap lo accept", cat(
		&expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, 1)},
		verdict(expr.VerdictAccept))})
	listeners := map[uint16]bool{}
	for _, p := range ports {
		l := tr.Ports[p]
		if listeners[l] {
			continue
		}
		listeners[l] = true
		rules[nftTrapInput] = append(rules[nftTrapInput],
			trapRule{fmt.Sprintf("rampart trap listener %d redirected accept", l), cat(dport(l), ctBit(expr.CtKeySTATUS, ctDNAT), verdict(expr.VerdictAccept))},
			trapRule{fmt.Sprintf("rampart trap listener %d drop", l), cat(dport(l), verdict(expr.VerdictDrop))})
	}
	return rules
}

// ensureTrap adds to the batch on c what the trap needs and the kernel
// lacks: its sets, chains and rules, or removes them all when trapping is
// not configured. flush re-adds every trap rule (the main sets the rules
// look up are being re-created). It returns a description of each repair.
func (e *NFTables) ensureTrap(c *nftables.Conn, exists bool, haveSets map[string]*nftables.Set, flush bool) ([]string, error) {
	var haveChains map[string]*nftables.Chain
	if exists {
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return nil, fmt.Errorf("list chains: %w", err)
		}
		haveChains = map[string]*nftables.Chain{}
		for _, ch := range chains {
			if ch.Table != nil && ch.Table.Name == e.table.Name {
				haveChains[ch.Name] = ch
			}
		}
	}
	if e.cfg.Trap == nil || len(e.cfg.Trap.Ports) == 0 {
		// Not trapping: what an earlier configuration installed goes.
		var fixed []string
		for _, name := range []string{nftTrapFilter, nftTrapNAT, nftTrapInput} {
			if ch, ok := haveChains[name]; ok {
				c.DelChain(ch)
				fixed = append(fixed, "chain "+name+" (trapping is off)")
			}
		}
		for _, name := range nftTrapSetNames {
			if s, ok := haveSets[name]; ok {
				c.DelSet(s)
				fixed = append(fixed, "set "+name+" (trapping is off)")
			}
		}
		return fixed, nil
	}
	if e.trap == nil {
		e.trap = e.defineTrap()
	}
	var fixed []string
	for _, want := range e.trap.sets {
		got, ok := haveSets[want.Name]
		switch {
		case !ok:
			if exists {
				fixed = append(fixed, "set "+want.Name+" (missing)")
			}
		case !setMatches(got, want):
			// Rules that reference it go first.
			for _, name := range []string{nftTrapFilter, nftTrapNAT} {
				if ch, ok := haveChains[name]; ok {
					c.DelChain(ch)
					delete(haveChains, name)
				}
			}
			c.DelSet(got)
			fixed = append(fixed, "set "+want.Name+" (wrong type or flags; its elements are lost)")
		default:
			continue
		}
		if err := c.AddSet(want, nil); err != nil {
			return nil, fmt.Errorf("add set %s: %w", want.Name, err)
		}
	}
	rules := e.trapRules()
	for _, want := range e.trap.chains {
		got, ok := haveChains[want.Name]
		add, refill := !ok, flush
		switch {
		case !ok:
			if exists {
				fixed = append(fixed, "chain "+want.Name+" (missing)")
			}
		case !chainMatches(got, want):
			c.DelChain(got)
			add = true
			fixed = append(fixed, "chain "+want.Name+" (wrong type, hook, priority or policy)")
		default:
			have, err := c.GetRules(e.table, want)
			if err != nil {
				return nil, fmt.Errorf("list rules of %s: %w", want.Name, err)
			}
			if !trapRulesMatch(have, rules[want.Name]) {
				refill = true
				fixed = append(fixed, "rules of chain "+want.Name)
			}
		}
		if add {
			c.AddChain(want)
		} else if refill {
			c.FlushChain(want)
		}
		if add || refill {
			for _, r := range rules[want.Name] {
				c.AddRule(&nftables.Rule{Table: e.table, Chain: want, Exprs: r.exprs,
					UserData: userdata.AppendString(nil, userdata.TypeComment, r.comment)})
			}
		}
	}
	return fixed, nil
}

// trapRulesMatch reports whether a chain holds exactly the wanted rules,
// told apart by their comments and expression counts.
func trapRulesMatch(have []*nftables.Rule, want []trapRule) bool {
	if len(have) != len(want) {
		return false
	}
	for i, r := range have {
		c, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		if c != want[i].comment || len(r.Exprs) != len(want[i].exprs) {
			return false
		}
	}
	return true
}

// trapsFrom returns the Trap decisions among ds as kernel entries, with
// bansFrom's semantics; only single addresses can be trapped, so a Trap
// on a wider prefix is skipped.
func trapsFrom(ds []event.Decision, now time.Time) ([]ban, error) {
	var ts []event.Decision
	for _, d := range ds {
		if d.Action == event.Trap {
			d.Action = event.Ban
			ts = append(ts, d)
		}
	}
	if len(ts) == 0 {
		return nil, nil
	}
	bans, _, err := bansFrom(ts, now)
	if err != nil {
		return nil, err
	}
	bans = slices.DeleteFunc(bans, func(b ban) bool { return !isSingle(b.target) })
	for i := range bans {
		bans[i].d.Action = event.Trap
	}
	return bans, nil
}

// trapping reports whether the enforcer traps.
func (e *NFTables) trapping() bool { return e.cfg.Trap != nil && len(e.cfg.Trap.Ports) > 0 }

// Trapping reports whether Apply enforces Trap decisions (the enforcer
// was made with a TrapRedirect).
func (e *NFTables) Trapping() bool { return e.trapping() }

// addTraps adds trapped addresses to the batch.
func (e *NFTables) addTraps(b *nftBatch, traps []ban) {
	var els [2][]nftables.SetElement
	for _, t := range traps {
		fam := 0
		if t.target.Addr().Is6() {
			fam = 1
		}
		els[fam] = append(els[fam], nftables.SetElement{Key: t.target.Addr().AsSlice(), Timeout: t.timeout})
	}
	for fam, els := range els {
		if len(els) == 0 {
			continue
		}
		s := e.trap.sets[fam]
		if !e.updatesTimeout {
			b.destroy(s, els)
		}
		b.add(s, els)
	}
}

// untrap deletes addresses from the trap sets in the batch, present or not.
func (e *NFTables) untrap(b *nftBatch, addrs [2][]nftables.SetElement) {
	for fam, els := range addrs {
		if len(els) > 0 {
			b.destroy(e.trap.sets[fam], els)
		}
	}
}

// activeTraps lists the trapped addresses the kernel holds.
func (e *NFTables) activeTraps(now time.Time) ([]event.Decision, error) {
	var out []event.Decision
	for _, s := range e.trap.sets {
		els, err := e.dump(s)
		if err != nil {
			return nil, err
		}
		for _, el := range els {
			out = append(out, event.Decision{Target: event.AddrPrefix(el.key), Action: event.Trap, Start: now, Duration: remaining(el.timeout, el.remaining)})
		}
	}
	return out, nil
}

// repairTraps puts back the trapped addresses the kernel lost.
func (e *NFTables) repairTraps(b *nftBatch, now time.Time) (int, error) {
	n := 0
	for fam := range 2 {
		v6 := fam == 1
		k, err := e.restoreAddrs(b, e.trap.sets[fam], now, func(want func(netip.Addr, time.Time)) {
			for a, end := range e.want.traps {
				if a.Is6() == v6 {
					want(a, end)
				}
			}
		})
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// isTrapObject reports whether a repair ensure described concerns the
// trap's objects.
func isTrapObject(fixed string) bool {
	for _, name := range append([]string{nftTrapFilter, nftTrapNAT, nftTrapInput}, nftTrapSetNames[:]...) {
		if strings.HasPrefix(fixed, "set "+name+" ") || strings.HasPrefix(fixed, "chain "+name+" ") || fixed == "rules of chain "+name {
			return true
		}
	}
	return false
}
