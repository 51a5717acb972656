package firewall

// Carve-outs and keeping the kernel in step with what the IPSet enforcer was
// told.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// ipsetFullEvery is how many Reconcile calls pass between two comparisons
// of every member; the calls in between compare member counts only.
const ipsetFullEvery = 12

// Carve adds or refreshes carve-outs (see CarveOut and NFTables.Carve)
// through one `ipset -exist restore`: re-adding a member sets its timeout
// anew. An invalid address, or an IPv6 one with NoIPv6, fails the call
// before anything runs. Partial failure as for Apply.
func (e *IPSet) Carve(ctx context.Context, cs []CarveOut) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.begin(ctx); err != nil {
		return fmt.Errorf("ipset carve: %w", err)
	}
	now := e.now()
	carves, err := carvesFrom(cs, now)
	if err != nil {
		return fmt.Errorf("ipset carve: %w", err)
	}
	var b bytes.Buffer
	for _, co := range carves {
		f, ok := e.familyOf(co.addr)
		if !ok {
			return fmt.Errorf("ipset carve: cannot carve out %s without IPv6", co.addr)
		}
		fmt.Fprintf(&b, "add %s %s timeout %d\n", f.carve, co.addr, ipsetTimeout(co.timeout))
	}
	e.want.addCarves(carves, now)
	if _, err := e.restore(ctx, b.Bytes()); err != nil {
		return fmt.Errorf("ipset carve %d addresses: %w", len(carves), err)
	}
	return nil
}

// Uncarve ends the carve-outs of these addresses in one `ipset -exist
// restore`; addresses not carved out are not an error.
func (e *IPSet) Uncarve(ctx context.Context, addrs []netip.Addr) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.begin(ctx); err != nil {
		return fmt.Errorf("ipset uncarve: %w", err)
	}
	as, err := normalizeAddrs(addrs)
	if err != nil {
		return fmt.Errorf("ipset uncarve: %w", err)
	}
	var b bytes.Buffer
	for _, a := range as {
		delete(e.want.carves, a)
		if f, ok := e.familyOf(a); ok {
			fmt.Fprintf(&b, "del %s %s\n", f.carve, a)
		}
	}
	if _, err := e.restore(ctx, b.Bytes()); err != nil {
		return fmt.Errorf("ipset uncarve %d addresses: %w", len(as), err)
	}
	return nil
}

// CarveOuts returns the members of the carve sets, sorted by address, with
// Until computed from their time left (zero: no timeout).
func (e *IPSet) CarveOuts(ctx context.Context) ([]CarveOut, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.begin(ctx); err != nil {
		return nil, fmt.Errorf("ipset carve-outs: %w", err)
	}
	now := e.now()
	m := map[netip.Addr]time.Time{}
	for _, f := range e.cfg.families() {
		ds, err := e.save(ctx, f.carve, now)
		if err != nil {
			return nil, fmt.Errorf("ipset carve-outs: %w", err)
		}
		for _, d := range ds {
			m[d.Target.Addr()] = time.Time{}
			if d.Duration > 0 {
				m[d.Target.Addr()] = now.Add(d.Duration)
			}
		}
	}
	return liveCarves(m, now), nil
}

func (e *IPSet) save(ctx context.Context, set string, now time.Time) ([]event.Decision, error) {
	out, err := e.cfg.Run(ctx, nil, e.cfg.IPSet, "save", set)
	if err != nil {
		return nil, fmt.Errorf("save %s: %w", set, err)
	}
	return parseIPSetSave(out, set, now)
}

// Stats returns the enforcer's counters.
func (e *IPSet) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats
	st.CarvedOut = e.want.carvedOut(e.now())
	return st
}

// Reconcile makes the kernel hold again what the enforcer was told: the
// bans applied and neither revoked nor ended, the carve-outs, the
// allowlist. Missing sets are created, Rampart's chain and the jump to it
// rewritten when changed (an iptables-restore of a firewall manager), and
// missing members put back in one `ipset restore`, then the repair is
// logged and counted (see Stats). Members someone else added stay.
//
// ipset has no generation to watch, so each call runs `ipset list -t` and
// the iptables checks (five short processes) and compares member counts
// with the intent; the members themselves (`ipset save`) only when a set
// holds fewer than it should, and on every twelfth call. That also puts
// back bans whose timeout ipset had to cut to 24.8 days.
func (e *IPSet) Reconcile(ctx context.Context) (Repair, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.begin(ctx); err != nil {
		return Repair{}, err
	}
	e.passes++
	full := e.passes%ipsetFullEvery == 1
	counts, err := e.counts(ctx)
	if err != nil {
		return Repair{}, fmt.Errorf("ipset reconcile: %w", err)
	}
	var rep Repair
	for _, f := range e.cfg.families() {
		for _, set := range []string{f.ban, f.bannet, f.carve, f.allow, f.banport} {
			if _, ok := counts[set]; !ok {
				rep.Fixed = append(rep.Fixed, "set "+set+" (missing)")
			}
		}
	}
	if len(rep.Fixed) > 0 {
		// The rules name the sets: create them first.
		if _, err := e.restore(ctx, nil); err != nil {
			return rep, fmt.Errorf("ipset reconcile: create sets: %w", err)
		}
	}
	fixed, err := e.ensureRules(ctx, false)
	rep.Fixed = append(rep.Fixed, fixed...)
	if err != nil {
		return rep, fmt.Errorf("ipset reconcile: %w", err)
	}
	now := e.now()
	e.want.prune(now)
	// What each set should hold, as restore lines.
	want := map[string]map[string]int64{}
	for _, f := range e.cfg.families() {
		for _, set := range []string{f.ban, f.bannet, f.carve} {
			want[set] = map[string]int64{}
		}
	}
	for t, end := range e.want.bans.all() {
		if set, ok := e.setFor(t); ok && live(end, now, reconcileSlack) {
			want[set][ipsetMember(t)] = endSecs(end, now)
		}
	}
	for a, end := range e.want.carves {
		if f, ok := e.familyOf(a); ok && live(end, now, reconcileSlack) {
			want[f.carve][a.String()] = endSecs(end, now)
		}
	}
	wantPorts := map[string]map[portElem]int64{}
	for el, end := range e.want.portBans {
		if f, ok := e.familyOf(el.addr); ok && live(end, now, reconcileSlack) {
			if wantPorts[f.banport] == nil {
				wantPorts[f.banport] = map[portElem]int64{}
			}
			wantPorts[f.banport][el] = endSecs(end, now)
		}
	}
	var b bytes.Buffer
	for _, f := range e.cfg.families() {
		for _, set := range []string{f.ban, f.bannet, f.carve} {
			n, ok := counts[set]
			if !full && ok && n >= len(want[set]) {
				continue
			}
			have := map[string]bool{}
			if ok {
				ds, err := e.save(ctx, set, now)
				if err != nil {
					return rep, fmt.Errorf("ipset reconcile: %w", err)
				}
				for _, d := range ds {
					have[ipsetMember(d.Target)] = true
				}
			}
			for m, secs := range want[set] {
				if !have[m] {
					fmt.Fprintf(&b, "add %s %s timeout %d\n", set, m, secs)
					if set == f.carve {
						rep.CarveOuts++
					} else {
						rep.Bans++
					}
				}
			}
		}
		if n, ok := counts[f.banport]; full || !ok || n < len(wantPorts[f.banport]) {
			have := map[portElem]time.Duration{}
			if ok {
				if have, err = e.savePorts(ctx, f.banport); err != nil {
					return rep, fmt.Errorf("ipset reconcile: %w", err)
				}
			}
			for el, secs := range wantPorts[f.banport] {
				if _, held := have[el]; !held {
					fmt.Fprintf(&b, "add %s %s timeout %d\n", f.banport, ipsetPortMember(el), secs)
					rep.Bans++
				}
			}
		}
		if e.want.allowSet {
			var mine []netip.Prefix
			for _, p := range e.want.allow {
				if p.Addr().Is6() == f.v6 {
					mine = append(mine, p)
				}
			}
			if n, ok := counts[f.allow]; !ok || n != len(mine) || (full && !e.allowHolds(ctx, f.allow, mine, now)) {
				rep.AllowEntries += e.writeAllow(&b, f, mine)
			}
		}
	}
	if b.Len() > 0 || len(rep.Fixed) > 0 {
		if _, err := e.restore(ctx, b.Bytes()); err != nil {
			return rep, fmt.Errorf("ipset reconcile: put back %s: %w", rep, err)
		}
	}
	e.stats.note(e.log, "ipset", slog.String("prefix", e.cfg.Prefix), rep)
	return rep, nil
}

// allowHolds reports whether the allow set holds exactly ps.
func (e *IPSet) allowHolds(ctx context.Context, set string, ps []netip.Prefix, now time.Time) bool {
	ds, err := e.save(ctx, set, now)
	if err != nil || len(ds) != len(ps) {
		return false
	}
	have := map[netip.Prefix]bool{}
	for _, d := range ds {
		have[d.Target] = true
	}
	for _, p := range ps {
		if !have[p] {
			return false
		}
	}
	return true
}

// endSecs is the ipset timeout for an entry ending at end (0: none).
func endSecs(end, now time.Time) int64 {
	if end.IsZero() {
		return 0
	}
	return ipsetTimeout(end.Sub(now))
}

// counts returns the number of members of each of Rampart's sets that
// exists, from `ipset list -t`.
func (e *IPSet) counts(ctx context.Context) (map[string]int, error) {
	out, err := e.cfg.Run(ctx, nil, e.cfg.IPSet, "list", "-t")
	if err != nil {
		return nil, fmt.Errorf("ipset list: %w", err)
	}
	return parseIPSetTerse(out, e.cfg.Prefix)
}

// parseIPSetTerse reads `ipset list -t`: the member count of every set
// whose name starts with prefix.
func parseIPSetTerse(out []byte, prefix string) (map[string]int, error) {
	counts := map[string]int{}
	name := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			name = v
		case "Number of entries":
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("ipset list: set %s: bad count %q", name, v)
			}
			counts[name] = n
		}
	}
	return counts, sc.Err()
}
