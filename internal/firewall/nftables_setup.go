package firewall

// Setting up and checking Rampart's nftables table: the probes of what the
// kernel can do, the objects Rampart wants, and the repair of a table that
// was edited by hand.

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

func (e *NFTables) tableExists(c *nftables.Conn) (bool, error) {
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == e.table.Name {
			return true, nil
		}
	}
	return false, nil
}

// probe learns whether the kernel accepts interval+timeout sets and whether
// re-adding an element updates its timeout (kernels without it keep the old
// timeout; then Apply deletes and re-adds in the same batch). It uses two
// scratch sets in Rampart's table and deletes them.
func (e *NFTables) probe(c *nftables.Conn) error {
	key := netip.MustParseAddr("192.0.2.1").AsSlice()
	end := netip.MustParseAddr("192.0.2.2").AsSlice()
	pi := &nftables.Set{Table: e.table, Name: "probe_interval", ID: 101, KeyType: nftables.TypeIPAddr, Interval: true, HasTimeout: true}
	pt := &nftables.Set{Table: e.table, Name: "probe_timeout", ID: 102, KeyType: nftables.TypeIPAddr, HasTimeout: true}
	// Leftovers of a probe interrupted by a crash.
	if sets, err := c.GetSets(e.table); err == nil {
		for _, s := range sets {
			if s.Name == pi.Name || s.Name == pt.Name {
				c.DelSet(s)
			}
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("delete old probe sets: %w", err)
		}
	}

	e.netTimeout = true
	if err := c.AddSet(pi, []nftables.SetElement{{Key: key, Timeout: time.Hour}, {Key: end, IntervalEnd: true}}); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if err := c.Flush(); err != nil {
		e.netTimeout = false
		e.log.Warn("nftables: kernel refuses interval sets with timeouts; prefix bans will expire only while rampart runs",
			"table", e.table.Name, "error", err)
	}

	if err := c.AddSet(pt, []nftables.SetElement{{Key: key, Timeout: time.Hour}}); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("probe timeout set: %w", err)
	}
	if err := c.SetAddElements(pt, []nftables.SetElement{{Key: key, Timeout: 2 * time.Hour}}); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("probe timeout update: %w", err)
	}
	els, err := c.GetSetElements(pt)
	if err != nil {
		return fmt.Errorf("probe: read elements: %w", err)
	}
	e.updatesTimeout = len(els) == 1 && els[0].Timeout == 2*time.Hour

	c.DelSet(pt)
	if e.netTimeout {
		c.DelSet(pi)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete probe sets: %w", err)
	}
	return nil
}

// defineSets fills e.sets and e.chain with the objects Rampart wants.
func (e *NFTables) defineSets() {
	for i := range numSets {
		s := &nftables.Set{
			Table:   e.table,
			Name:    nftSetNames[i],
			ID:      uint32(i + 1),
			KeyType: nftables.TypeIPAddr,
		}
		if isV6Set(i) {
			s.KeyType = nftables.TypeIP6Addr
		}
		switch i {
		case setBan4, setBan6, setCarve4, setCarve6:
			s.HasTimeout = true
		case setBanNet4, setBanNet6:
			s.Interval = true
			s.HasTimeout = e.netTimeout
		case setAllow4, setAllow6:
			s.Interval = true
		case setBanPort4, setBanPort6:
			definePortSet(s, isV6Set(i))
		}
		e.sets[i] = s
	}
	accept := nftables.ChainPolicyAccept
	e.chain = &nftables.Chain{
		Name:     nftChain,
		Table:    e.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityRaw,
		Policy:   &accept,
	}
}

func (e *NFTables) ruleExprs(r nftRule) []expr.Any {
	s := e.sets[r.set]
	proto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4) // ip saddr
	if isV6Set(r.set) {
		proto, off, n = unix.NFPROTO_IPV6, 8, 16 // ip6 saddr
	}
	xs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
	}
	if isPortSet(r.set) {
		xs = portRuleExprs(s, isV6Set(r.set))
	}
	if e.cfg.Counters {
		xs = append(xs, &expr.Counter{})
	}
	return append(xs, &expr.Verdict{Kind: r.verdict})
}

func setMatches(got, want *nftables.Set) bool {
	return got.KeyType.Bytes == want.KeyType.Bytes &&
		got.KeyType.Name == want.KeyType.Name &&
		got.Interval == want.Interval &&
		got.HasTimeout == want.HasTimeout &&
		got.Concatenation == want.Concatenation &&
		!got.IsMap && !got.Constant && !got.Anonymous
}

func chainMatches(got, want *nftables.Chain) bool {
	return got.Type == want.Type &&
		got.Hooknum != nil && *got.Hooknum == *want.Hooknum &&
		got.Priority != nil && *got.Priority == *want.Priority &&
		got.Policy != nil && *got.Policy == *want.Policy
}

// rulesMatch reports whether the chain holds exactly Rampart's rules.
func (e *NFTables) rulesMatch(rules []*nftables.Rule) bool {
	if len(rules) != len(nftRules) {
		return false
	}
	for i, r := range rules {
		want := nftRules[i]
		if c, _ := userdata.GetString(r.UserData, userdata.TypeComment); c != want.comment() {
			return false
		}
		var lookup, verdict, counter, payload bool
		for _, x := range r.Exprs {
			switch x := x.(type) {
			case *expr.Lookup:
				lookup = x.SetName == nftSetNames[want.set] && !x.Invert
			case *expr.Verdict:
				verdict = x.Kind == want.verdict
			case *expr.Counter:
				counter = true
			case *expr.Payload:
				addrLen := uint32(4)
				if isV6Set(want.set) {
					addrLen = 16
				}
				payload = payload || x.Base == expr.PayloadBaseNetworkHeader && x.Len == addrLen
			}
		}
		if !lookup || !verdict || !payload || counter != e.cfg.Counters {
			return false
		}
	}
	return true
}

// ensure makes the table hold exactly Rampart's sets, chain and rules,
// re-creating in one batch whatever is missing or was changed, and returns
// a description of each repair. Elements of intact sets are kept.
func (e *NFTables) ensure(c *nftables.Conn) ([]string, error) {
	var fixed []string
	exists, err := e.tableExists(c)
	if err != nil {
		return nil, err
	}
	have := map[string]*nftables.Set{}
	var chain *nftables.Chain
	var rules []*nftables.Rule
	if !exists {
		fixed = append(fixed, "table (missing)")
	} else {
		sets, err := c.GetSets(e.table)
		if err != nil {
			return nil, fmt.Errorf("list sets: %w", err)
		}
		for _, s := range sets {
			have[s.Name] = s
		}
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return nil, fmt.Errorf("list chains: %w", err)
		}
		for _, ch := range chains {
			if ch.Table != nil && ch.Table.Name == e.table.Name && ch.Name == nftChain {
				chain = ch
			}
		}
		if chain != nil {
			rules, err = c.GetRules(e.table, e.chain)
			if err != nil {
				return nil, fmt.Errorf("list rules: %w", err)
			}
		}
	}

	var delSets, addSets []*nftables.Set
	for _, want := range e.sets {
		got, ok := have[want.Name]
		switch {
		case !ok:
			addSets = append(addSets, want)
			if exists {
				fixed = append(fixed, "set "+want.Name+" (missing)")
			}
		case !setMatches(got, want):
			delSets = append(delSets, got)
			addSets = append(addSets, want)
			fixed = append(fixed, "set "+want.Name+" (wrong type or flags; its elements are lost)")
		}
	}
	delChain, addChain, flushChain := false, false, false
	switch {
	case chain == nil:
		addChain = true
		if exists {
			fixed = append(fixed, "chain "+nftChain+" (missing)")
		}
	case !chainMatches(chain, e.chain):
		delChain, addChain = true, true
		fixed = append(fixed, "chain "+nftChain+" (wrong type, hook, priority or policy)")
	case len(delSets) > 0 || !e.rulesMatch(rules):
		// Rules referencing a set must go before the set can be deleted.
		flushChain = true
		if !e.rulesMatch(rules) {
			fixed = append(fixed, "rules of chain "+nftChain)
		}
	}
	if !exists {
		c.AddTable(e.table)
	}
	if delChain {
		c.DelChain(chain) // its rules go with it
	}
	if flushChain {
		c.FlushChain(e.chain)
	}
	for _, s := range delSets {
		c.DelSet(s)
	}
	for _, s := range addSets {
		if err := c.AddSet(s, nil); err != nil {
			return nil, fmt.Errorf("add set %s: %w", s.Name, err)
		}
	}
	if addChain {
		c.AddChain(e.chain)
	}
	trapFixed, err := e.ensureTrap(c, exists, have, len(delSets) > 0)
	if err != nil {
		return nil, err
	}
	fixed = append(fixed, trapFixed...)
	if addChain || flushChain {
		for _, r := range nftRules {
			c.AddRule(&nftables.Rule{
				Table:    e.table,
				Chain:    e.chain,
				Exprs:    e.ruleExprs(r),
				UserData: userdata.AppendString(nil, userdata.TypeComment, r.comment()),
			})
		}
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("repair %s: %w", strings.Join(fixed, ", "), err)
	}
	return fixed, nil
}
