// Command fleetsim replays attacksim's logs through several Rampart
// pipelines that share their bans, hot user names and suspect addresses as
// a fleet does, for bench/fleet.sh: the low-and-slow scenario split over
// the nodes.
//
// Each slow attacker address visits the nodes in turn: an attempt the
// simulator made at t reaches node k at t + k×stagger, so every node sees
// the address at the single-node scenario's pace (every 20–40 minutes) and
// the fleet sees it -nodes times as often. Legitimate users keep to one
// node each, the one that holds their mailbox: every address a person
// logs in from goes to their node (for a shared address, the first
// person's), other legitimate clients (relays) go by address. A node's
// bans reach the others -delay later (bench/RESULTS.md measures the real
// propagation), and go in as a peer's do in the daemon: never over an
// allowlisted or known-good address. A node's failure of an address that
// reaches -evidence failures within -evidence-window without a ban is
// shared as suspect (once per half -signal-ttl per address and node), as
// the daemon's fleet.evidence_failures does, and marks the address on the
// others for -signal-ttl. The score follows bench/cmd/score's rules: an
// attempt is covered when a ban on its node held its address from
// strictly before its second. A second score counts also the IMAP, POP3
// and SMTP AUTH attempts that Dovecot's authentication policy hook would
// have refused before the password check: policy.Judge on the attempt's
// node, asked at the start of its second.
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/logline"
	"github.com/rampart-dev/rampart/internal/policy"
)

type truth struct {
	Time     time.Time `json:"time"`
	IP       string    `json:"ip"`
	Role     string    `json:"role"`
	Scenario string    `json:"scenario"`
	Service  string    `json:"service"`
	User     string    `json:"user"`
	Login    bool      `json:"login"`
}

// item is one line on one node, or a password check Dovecot's
// authentication policy asks about before it is made.
type item struct {
	node int
	line logline.Line // line.Time is the item's time
	ask  *truth
}

// refusal is a password check the policy hook refused: its node, address
// and second.
type refusal struct {
	node int
	ip   string
	at   time.Time
}

type ban struct {
	target     netip.Prefix
	start, end time.Time // end zero: no end
}

func main() {
	dir := flag.String("dir", "bench/out/fleet", "attacksim's output `dir`ectory (auth.log, mail.log, truth.jsonl)")
	year := flag.Int("year", 2025, "year of the logs' stamps")
	nodes := flag.Int("nodes", 3, "number of nodes")
	stagger := flag.Duration("stagger", 10*time.Minute, "how long after node k an attempt reaches node k+1")
	delay := flag.Duration("delay", 100*time.Millisecond, "propagation delay of a ban or a hot user name between nodes")
	share := flag.Bool("share", true, "share bans, hot user names and suspect addresses (false: independent nodes)")
	var ev evidence
	flag.IntVar(&ev.failures, "evidence", 2, "failures of an address on a node, not banned, that share it as suspect (0: never; fleet.evidence_failures)")
	flag.DurationVar(&ev.window, "evidence-window", 12*time.Hour, "the window of -evidence (fleet.evidence_window)")
	flag.DurationVar(&ev.ttl, "signal-ttl", time.Hour, "how long a shared hot user name or suspect address holds (fleet.signal_ttl)")
	flag.Parse()
	if err := run(*dir, *year, *nodes, *stagger, *delay, *share, ev); err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

// evidence is the sharing of suspect addresses.
type evidence struct {
	failures    int
	window, ttl time.Duration
}

func run(dir string, year, n int, stagger, delay time.Duration, share bool, evc evidence) error {
	roles, err := readTruth(filepath.Join(dir, "truth.jsonl"))
	if err != nil {
		return err
	}
	scenarioOf, userOf := map[string]string{}, map[string]string{}
	for _, t := range roles {
		scenarioOf[t.IP] = t.Scenario
		if _, ok := userOf[t.IP]; !ok && t.Role == "legit" && t.Login {
			userOf[t.IP] = t.User
		}
	}
	nodeOf := func(ip string) int {
		h := fnv.New32a()
		if u, ok := userOf[ip]; ok {
			h.Write([]byte(u))
		} else {
			h.Write([]byte(ip))
		}
		return int(h.Sum32() % uint32(n))
	}
	// Where each line goes: a slow attacker's to every node, staggered; the
	// others' to their own node.
	parser := &logline.Parser{Year: year, Location: time.UTC}
	var items []item
	// Every IMAP, POP3 and SMTP AUTH password check goes through Dovecot's
	// authentication, whose policy hook (docs/integrations.md) asks
	// Rampart first; a check refused there is never made. SSH has no such
	// hook. The question comes before the lines of its second, so that an
	// attempt is never judged on its own failure.
	for i := range roles {
		t := &roles[i]
		if !t.Login || (t.Service != "dovecot" && t.Service != "postfix") {
			continue
		}
		at := t.Time.Truncate(time.Second)
		if t.Scenario == "slow" {
			for k := range n {
				items = append(items, item{node: k, line: logline.Line{Time: at.Add(time.Duration(k) * stagger)}, ask: t})
			}
			continue
		}
		items = append(items, item{node: nodeOf(t.IP), line: logline.Line{Time: at}, ask: t})
	}
	lineAddr := addrs{}
	for _, f := range []string{"auth.log", "mail.log"} {
		fh, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l, err := parser.Parse(sc.Text())
			if err != nil {
				continue
			}
			ip := lineAddr.of(l)
			if scenarioOf[ip] == "slow" {
				for k := range n {
					c := l
					c.Time = l.Time.Add(time.Duration(k) * stagger)
					items = append(items, item{node: k, line: c})
				}
				continue
			}
			items = append(items, item{node: nodeOf(ip), line: l})
		}
		fh.Close()
	}
	slices.SortStableFunc(items, func(a, b item) int { return a.line.Time.Compare(b.line.Time) })

	cfg := config.Default()
	reg, err := daemon.Filters(cfg)
	if err != nil {
		return err
	}
	type node struct {
		p    *daemon.Pipeline
		lr   *daemon.LineRouter
		bans []ban
		last time.Time
		// shared: when each address was last shared as suspect.
		shared map[netip.Addr]time.Time
	}
	ns := make([]*node, n)
	for i := range ns {
		p, err := daemon.NewReplayPipeline(context.Background(), cfg, reg, nil)
		if err != nil {
			return err
		}
		lr, err := p.Matchers(nil)
		if err != nil {
			return err
		}
		ns[i] = &node{p: p, lr: lr, shared: map[netip.Addr]time.Time{}}
	}
	type shared struct {
		due  time.Time
		from int
		d    event.Decision
		user string
		sus  netip.Addr // a suspect address
	}
	var queue []shared
	suspects := 0
	// suspect shares ev's address as the daemon does (fleetLink.suspectOf).
	suspect := func(i int, ev event.Event, ds []event.Decision) {
		if !share || n < 2 || evc.failures <= 0 || !ev.Kind.Failure() || !ev.Addr.IsValid() {
			return
		}
		a := ev.Addr.Unmap()
		for _, d := range ds {
			if d.Target.Contains(a) && d.Action == event.Ban {
				return
			}
		}
		if at, ok := ns[i].shared[a]; ok && ev.Time.Sub(at) < evc.ttl/2 {
			return
		}
		if ns[i].p.Engine.Evidence(ev, evc.window) < evc.failures {
			return
		}
		ns[i].shared[a] = ev.Time
		suspects++
		queue = append(queue, shared{due: ev.Time.Add(delay), from: i, sus: a})
	}
	record := func(i int, ds []event.Decision, user string) {
		for _, d := range ds {
			if d.Action != event.Ban {
				continue
			}
			ns[i].bans = append(ns[i].bans, ban{d.Target, d.Start, d.End()})
			if !share || d.Origin != "local" {
				continue
			}
			queue = append(queue, shared{due: d.Start.Add(delay), from: i, d: d})
			if d.Scenario == "user-spray" && user != "" {
				queue = append(queue, shared{due: d.Start.Add(delay), from: i, user: user})
			}
		}
	}
	deliver := func(now time.Time) {
		k := 0
		for _, s := range queue {
			if s.due.After(now) {
				queue[k] = s
				k++
				continue
			}
			for j, nd := range ns {
				if j == s.from {
					continue
				}
				e := nd.p.Engine
				origin := fmt.Sprintf("fleet:n%d", s.from+1)
				if s.user != "" {
					e.MarkHotUser(s.user, s.due.Add(evc.ttl), origin)
					continue
				}
				if s.sus.IsValid() {
					e.MarkEvidence(s.sus, s.due.Add(evc.ttl), origin)
					continue
				}
				d := s.d
				d.Origin, d.Start = origin, s.due
				if d.Duration > 0 {
					d.Duration = s.d.End().Sub(s.due)
					if d.Duration <= 0 {
						continue
					}
				}
				if d.Target.IsSingleIP() && e.IsKnownGood(d.Target.Addr(), s.due) {
					continue
				}
				if _, err := e.Ban(d); err == nil {
					nd.bans = append(nd.bans, ban{d.Target, d.Start, d.End()})
				}
			}
		}
		queue = queue[:k]
	}
	refused := map[refusal]bool{}
	var now time.Time
	judges := make([]policy.Judge, n)
	for i := range judges {
		judges[i] = policy.Judge{Engine: ns[i].p.Engine, Now: func() time.Time { return now }}
	}
	for _, it := range items {
		nd := ns[it.node]
		t := it.line.Time
		deliver(t)
		if it.ask != nil {
			now = t
			if ip, err := netip.ParseAddr(it.ask.IP); err == nil && judges[it.node].Judge(ip, it.ask.User, false).Outcome == policy.Reject {
				refused[refusal{it.node, it.ask.IP, t}] = true
			}
			continue
		}
		if t.Sub(nd.last) >= time.Minute {
			record(it.node, nd.p.Engine.Tick(t), "")
			nd.last = t
		}
		l := it.line
		ev, ok, ds := nd.lr.Observe(&l)
		user := ""
		if ok {
			user = ev.User
		}
		record(it.node, ds, user)
		if ok {
			suspect(it.node, ev, ds)
		}
	}
	for i, nd := range ns {
		record(i, nd.p.Engine.Tick(nd.last.Add(time.Hour)), "")
	}

	// Score: the attempts, placed as the lines were.
	covered := func(i int, ip netip.Addr, t time.Time) bool {
		for _, b := range ns[i].bans {
			if b.target.Contains(ip) && b.start.Before(t.Truncate(time.Second)) && (b.end.IsZero() || t.Before(b.end)) {
				return true
			}
		}
		return false
	}
	var first time.Time
	for _, t := range roles {
		if t.Scenario == "slow" && (first.IsZero() || t.Time.Before(first)) {
			first = t.Time
		}
	}
	byBans := tallyUp(roles, n, stagger, first, nodeOf, covered)
	withHook := tallyUp(roles, n, stagger, first, nodeOf, func(k int, ip netip.Addr, at time.Time) bool {
		return covered(k, ip, at) || refused[refusal{k, ip.String(), at.Truncate(time.Second)}]
	})
	legitHeld := map[string]bool{}
	for _, t := range roles {
		if ip, err := netip.ParseAddr(t.IP); err == nil && t.Role == "legit" {
			for _, b := range ns[nodeOf(t.IP)].bans {
				if b.target.Contains(ip) {
					legitHeld[t.IP] = true
				}
			}
		}
	}
	bans := 0
	for _, nd := range ns {
		bans += len(nd.bans)
	}
	fmt.Printf("nodes %d, share %v, stagger %s, delay %s, evidence %d within %s, signal ttl %s\n", n, share, stagger, delay, evc.failures, evc.window, evc.ttl)
	byBans.print("bans alone")
	withHook.print("bans and Dovecot's policy hook")
	fmt.Printf("legit addresses %d, held by a ban at any moment %d; bans on all nodes %d; suspect addresses shared %d\n",
		withHook.legitAddrs, len(legitHeld), bans, suspects)
	return nil
}

// tally counts the attempts through and blocked.
type tally struct {
	slowN, slowThrough, slowLate, slowLateThrough int
	// An address's first attempt in the whole fleet: no node has seen it
	// yet, so only a signal (a hot user name, a bad prefix) can stop it.
	slowLateFirst, slowLateFirstThrough int
	firstThrough                        int // addresses with any attempt through
	legitN, legitBlocked, legitAddrs    int
}

// tallyUp scores every attempt, each where fleetsim placed its lines:
// blocked says whether node k stopped an attempt from ip at at.
func tallyUp(roles []truth, n int, stagger time.Duration, first time.Time, nodeOf func(string) int, blocked func(k int, ip netip.Addr, at time.Time) bool) tally {
	var c tally
	perAddr, seenAddr, legitAddrs := map[string]int{}, map[string]bool{}, map[string]bool{}
	for _, t := range roles {
		ip, err := netip.ParseAddr(t.IP)
		if err != nil {
			continue
		}
		switch {
		case t.Scenario == "slow":
			for k := range n {
				at := t.Time.Add(time.Duration(k) * stagger)
				through := !blocked(k, ip, at)
				c.slowN++
				if through {
					c.slowThrough++
					if perAddr[t.IP]++; perAddr[t.IP] == 1 {
						c.firstThrough++
					}
				}
				fresh := !seenAddr[t.IP]
				seenAddr[t.IP] = true
				if at.Sub(first) >= 10*time.Minute {
					c.slowLate++
					if through {
						c.slowLateThrough++
					}
					if fresh {
						c.slowLateFirst++
						if through {
							c.slowLateFirstThrough++
						}
					}
				}
			}
		case t.Role == "legit":
			c.legitN++
			legitAddrs[t.IP] = true
			if blocked(nodeOf(t.IP), ip, t.Time) {
				c.legitBlocked++
			}
		}
	}
	c.legitAddrs = len(legitAddrs)
	return c
}

func (c tally) print(what string) {
	pct := func(a, b int) float64 { return 100 * float64(a) / float64(max(b, 1)) }
	fmt.Printf("%s:\n", what)
	fmt.Printf("  slow attempts %d, through %d (%.2f%%); after the first 10 min %d, through %d (%.2f%%)\n",
		c.slowN, c.slowThrough, pct(c.slowThrough, c.slowN), c.slowLate, c.slowLateThrough, pct(c.slowLateThrough, c.slowLate))
	fmt.Printf("  slow addresses through at all %d; attempts through that were not the address's first %d\n", c.firstThrough, c.slowThrough-c.firstThrough)
	fmt.Printf("  after the first 10 min: addresses' first attempts in the fleet %d, through %d (%.2f%% of the attempts); others through %d (%.2f%%)\n",
		c.slowLateFirst, c.slowLateFirstThrough, pct(c.slowLateFirstThrough, c.slowLate), c.slowLateThrough-c.slowLateFirstThrough, pct(c.slowLateThrough-c.slowLateFirstThrough, c.slowLate))
	fmt.Printf("  legit attempts %d, blocked %d\n", c.legitN, c.legitBlocked)
}

func readTruth(path string) ([]truth, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []truth
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var t truth
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, t)
	}
	slices.SortStableFunc(out, func(a, b truth) int { return cmp.Compare(a.Time.UnixNano(), b.Time.UnixNano()) })
	return out, sc.Err()
}

// addrs finds the client address of each line: the first address the
// message names ("from 1.2.3.4", "[1.2.3.4]", "rip=1.2.3.4"), or for a
// line that names none, the last one its process (program and pid) named.
type addrs map[string]string

func (a addrs) of(l logline.Line) string {
	key := l.Program + "[" + strconv.Itoa(l.PID) + "]"
	for _, f := range strings.FieldsFunc(l.Message, func(r rune) bool {
		return r == ' ' || r == '[' || r == ']' || r == ',' || r == '=' || r == '(' || r == ')'
	}) {
		if ip, err := netip.ParseAddr(f); err == nil && !ip.IsLoopback() && !ip.IsUnspecified() {
			if l.PID != 0 {
				a[key] = ip.String()
			}
			return ip.String()
		}
	}
	return a[key]
}
