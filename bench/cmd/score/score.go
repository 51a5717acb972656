package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

// Attempt is one line of attacksim's truth.jsonl.
type Attempt struct {
	Time     time.Time `json:"time"`
	IP       string    `json:"ip"`
	Role     string    `json:"role"`
	Scenario string    `json:"scenario"`
	Service  string    `json:"service"`
	User     string    `json:"user"`
	Result   string    `json:"result"`

	addr netip.Addr
}

// Ban is one decision of `rampart replay --json` (or f2b_replay.py, which
// writes the same format).
type Ban struct {
	Target   netip.Prefix
	Start    time.Time
	End      time.Time // zero: never expires
	Scenario string    // the tool's scenario (rampart) or jail (fail2ban)
	// Allow marks a carve-out ("action": "allow"): the address (a /32 or
	// /128) stays reachable inside prefix bans while it is in force;
	// address bans still hold it.
	Allow bool
}

// during reports whether the carve-out c lasts through all of b.
func (c Ban) during(b Ban) bool {
	return !c.Start.After(b.Start) && (c.End.IsZero() || (!b.End.IsZero() && !c.End.Before(b.End)))
}

// covers reports whether the ban was in force when an attempt made at t
// began. The ban must have started before t: a ban stamped with the very
// second of the attempt is the one that attempt (or another in the same
// second) triggered, and the attempt had already been checked by then.
func (b Ban) covers(t time.Time) bool {
	return b.Start.Before(t) && (b.End.IsZero() || t.Before(b.End))
}

type decisionJSON struct {
	IP     string `json:"ip"`
	Action string `json:"action"` // "ban" (or absent) or "allow"

	Time      time.Time `json:"time"`
	DurationS int64     `json:"duration_s"`
	Scenario  string    `json:"scenario"`
	Reason    string    `json:"reason"`
}

// readTruth reads truth.jsonl.
func readTruth(r io.Reader) ([]Attempt, error) {
	var out []Attempt
	err := eachLine(r, func(n int, line []byte) error {
		var a Attempt
		if err := json.Unmarshal(line, &a); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		addr, err := netip.ParseAddr(a.IP)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if a.Role != "attacker" && a.Role != "legit" {
			return fmt.Errorf("line %d: role %q is neither attacker nor legit", n, a.Role)
		}
		a.addr = addr.Unmap()
		out = append(out, a)
		return nil
	})
	return out, err
}

// readBans reads a decisions file: one JSON object per line, "ip" an
// address or a CIDR prefix, "duration_s" 0 for a ban without end.
func readBans(r io.Reader) ([]Ban, error) {
	var out []Ban
	err := eachLine(r, func(n int, line []byte) error {
		var d decisionJSON
		if err := json.Unmarshal(line, &d); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		p, err := parseTarget(d.IP)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if d.Time.IsZero() {
			return fmt.Errorf("line %d: no time", n)
		}
		b := Ban{Target: p, Start: d.Time, Scenario: d.Scenario}
		switch d.Action {
		case "", "ban":
		case "allow":
			if !p.IsSingleIP() {
				return fmt.Errorf("line %d: a carve-out of %s, not of one address", n, p)
			}
			b.Allow = true
		default:
			return fmt.Errorf("line %d: unknown action %q", n, d.Action)
		}
		if d.DurationS > 0 {
			b.End = d.Time.Add(time.Duration(d.DurationS) * time.Second)
		}
		out = append(out, b)
		return nil
	})
	return out, err
}

func parseTarget(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func eachLine(r io.Reader, f func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		if err := f(n, line); err != nil {
			return err
		}
	}
	return sc.Err()
}

// index finds the bans whose target holds an address: one map lookup per
// prefix length in use.
type index struct {
	byTarget map[netip.Prefix][]Ban
	carved   map[netip.Addr][]Ban // carve-outs by address
	bits4    []int                // prefix lengths of IPv4 targets, longest first
	bits6    []int
}

func newIndex(bans []Ban) *index {
	ix := &index{byTarget: map[netip.Prefix][]Ban{}, carved: map[netip.Addr][]Ban{}}
	seen := map[[2]int]bool{}
	for _, b := range bans {
		if b.Allow {
			ix.carved[b.Target.Addr()] = append(ix.carved[b.Target.Addr()], b)
			continue
		}
		ix.byTarget[b.Target] = append(ix.byTarget[b.Target], b)
		fam := 6
		if b.Target.Addr().Is4() {
			fam = 4
		}
		if k := [2]int{fam, b.Target.Bits()}; !seen[k] {
			seen[k] = true
			if fam == 4 {
				ix.bits4 = append(ix.bits4, b.Target.Bits())
			} else {
				ix.bits6 = append(ix.bits6, b.Target.Bits())
			}
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(ix.bits4)))
	sort.Sort(sort.Reverse(sort.IntSlice(ix.bits6)))
	return ix
}

// holding calls f for every ban whose target holds a, until f returns false.
func (ix *index) holding(a netip.Addr, f func(Ban) bool) {
	bits := ix.bits6
	if a.Is4() {
		bits = ix.bits4
	}
	for _, n := range bits {
		p, err := a.Prefix(n)
		if err != nil {
			continue
		}
		for _, b := range ix.byTarget[p] {
			if !f(b) {
				return
			}
		}
	}
}

// covered reports whether a ban held a and was in force at t: an address
// ban, or a prefix ban while no carve-out of a was.
func (ix *index) covered(a netip.Addr, t time.Time) bool {
	hit := false
	ix.holding(a, func(b Ban) bool {
		hit = b.covers(t) && (b.Target.IsSingleIP() || !ix.carvedAt(a, t))
		return !hit
	})
	return hit
}

func (ix *index) carvedAt(a netip.Addr, t time.Time) bool {
	for _, c := range ix.carved[a] {
		if !t.Before(c.Start) && (c.End.IsZero() || t.Before(c.End)) {
			return true
		}
	}
	return false
}

// everBanned reports whether any ban ever held a: an address ban, or a
// prefix ban that a carve-out of a did not cover from start to end.
func (ix *index) everBanned(a netip.Addr) bool {
	hit := false
	ix.holding(a, func(b Ban) bool {
		hit = b.Target.IsSingleIP() || !slices.ContainsFunc(ix.carved[a], func(c Ban) bool { return c.during(b) })
		return !hit
	})
	return hit
}

// grace is how long after the first attempt of a scenario its attempts
// stop counting as "the first minutes" in Score.After.
const grace = 10 * time.Minute

// Score is one scenario's result against one set of decisions.
type Score struct {
	Scenario string
	Role     string
	Attempts int
	// Through counts attempts not covered by a ban in force when they
	// began: for attackers, attempts that got through; for legitimate
	// users, attempts that were not blocked.
	Through int
	// After counts the attempts made at least grace after the scenario's
	// first one; AfterThrough those of them not covered.
	After, AfterThrough int
	// Addresses counts the distinct addresses of the scenario; Banned
	// those held by any ban at any moment.
	Addresses, Banned int
	BannedList        []string // the banned addresses (legitimate scenarios only)
	// Bans counts the decisions whose target holds at least one address
	// of the scenario; ByRule breaks them down by the tool's scenario.
	Bans   int
	ByRule map[string]int
}

// Blocked is the number of attempts a ban covered.
func (s Score) Blocked() int { return s.Attempts - s.Through }

// score scores every scenario of truth against bans, in the order the
// scenarios first appear in truth (attackers first).
func score(truth []Attempt, bans []Ban) []Score {
	ix := newIndex(bans)
	byName := map[string]*Score{}
	var order []string
	first := map[string]time.Time{}
	for _, a := range truth {
		if _, ok := byName[a.Scenario]; !ok {
			byName[a.Scenario] = &Score{Scenario: a.Scenario, Role: a.Role, ByRule: map[string]int{}}
			order = append(order, a.Scenario)
		}
		if f, ok := first[a.Scenario]; !ok || a.Time.Before(f) {
			first[a.Scenario] = a.Time
		}
	}
	addrs := map[string]map[netip.Addr]bool{}
	for _, a := range truth {
		s := byName[a.Scenario]
		s.Attempts++
		late := !a.Time.Before(first[a.Scenario].Add(grace))
		if late {
			s.After++
		}
		if !ix.covered(a.addr, a.Time) {
			s.Through++
			if late {
				s.AfterThrough++
			}
		}
		if addrs[a.Scenario] == nil {
			addrs[a.Scenario] = map[netip.Addr]bool{}
		}
		addrs[a.Scenario][a.addr] = true
	}
	// Which scenarios' addresses each ban holds.
	owners := map[netip.Addr][]string{}
	for _, name := range order {
		for a := range addrs[name] {
			owners[a] = append(owners[a], name)
		}
	}
	var all []netip.Addr
	for a := range owners {
		all = append(all, a)
	}
	slices.SortFunc(all, netip.Addr.Compare)
	for _, b := range bans {
		if b.Allow {
			continue
		}
		hit := map[string]bool{}
		if b.Target.IsSingleIP() {
			for _, n := range owners[b.Target.Addr()] {
				hit[n] = true
			}
		} else {
			// The addresses inside the prefix are contiguous in sorted order.
			i, _ := slices.BinarySearchFunc(all, b.Target.Masked().Addr(), netip.Addr.Compare)
			for ; i < len(all) && b.Target.Contains(all[i]); i++ {
				for _, n := range owners[all[i]] {
					hit[n] = true
				}
			}
		}
		for n := range hit {
			byName[n].Bans++
			byName[n].ByRule[b.Scenario]++
		}
	}
	out := make([]Score, 0, len(order))
	for _, name := range order {
		s := byName[name]
		s.Addresses = len(addrs[name])
		for a := range addrs[name] {
			if ix.everBanned(a) {
				s.Banned++
				if s.Role == "legit" {
					s.BannedList = append(s.BannedList, a.String())
				}
			}
		}
		slices.Sort(s.BannedList)
		out = append(out, *s)
	}
	slices.SortStableFunc(out, func(a, b Score) int { return cmp.Compare(roleRank(a.Role), roleRank(b.Role)) })
	return out
}

func roleRank(r string) int {
	if r == "attacker" {
		return 0
	}
	return 1
}
