package firewall

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// CarveOut is an address that prefix bans do not cover, until Until (zero:
// until Uncarve): a known-good client or a delivering mail relay inside a
// banned /24 keeps working. A ban on the address itself still drops it.
type CarveOut struct {
	Addr  netip.Addr
	Until time.Time
}

// carveOut is one CarveOut reduced to what a kernel set holds.
type carveOut struct {
	addr    netip.Addr    // normalized
	timeout time.Duration // remaining time; 0 means no timeout
	until   time.Time     // zero for none
}

// normalizeAddr returns a in the form every backend stores: unmapped, no
// zone. An invalid address is an error.
func normalizeAddr(a netip.Addr) (netip.Addr, error) {
	if !a.IsValid() {
		return netip.Addr{}, fmt.Errorf("invalid address %q", a.String())
	}
	return a.Unmap().WithZone(""), nil
}

// carvesFrom turns carve-outs into kernel entries as of now, with the
// semantics shared by every backend's Carve: addresses are normalized and
// an invalid one fails the whole call before anything changes; an entry
// whose Until has passed is skipped; a zero Until means no timeout; when an
// address appears twice, the later entry wins.
func carvesFrom(cs []CarveOut, now time.Time) ([]carveOut, error) {
	idx := make(map[netip.Addr]int, len(cs))
	out := make([]carveOut, 0, len(cs))
	for _, c := range cs {
		a, err := normalizeAddr(c.Addr)
		if err != nil {
			return nil, fmt.Errorf("carve-out: %w", err)
		}
		co := carveOut{addr: a, until: c.Until}
		if !c.Until.IsZero() {
			co.timeout = c.Until.Sub(now)
			if co.timeout <= 0 {
				continue
			}
			co.timeout = max(co.timeout, time.Millisecond)
		}
		if i, ok := idx[a]; ok {
			out[i] = co
			continue
		}
		idx[a] = len(out)
		out = append(out, co)
	}
	return out, nil
}

// normalizeAddrs normalizes every address and drops duplicates.
func normalizeAddrs(as []netip.Addr) ([]netip.Addr, error) {
	return normalizeAll(as, normalizeAddr)
}

// Repair says what one check of the kernel found missing and put back.
type Repair struct {
	// Fixed names the objects re-created: "table", "set ban4 (missing)",
	// "rules of chain prerouting", ...
	Fixed []string
	// Bans, CarveOuts, AllowEntries and Traps count the entries put back.
	Bans, CarveOuts, AllowEntries, Traps int
}

// Empty reports whether nothing was repaired.
func (r Repair) Empty() bool {
	return len(r.Fixed) == 0 && r.entries() == 0
}

func (r Repair) entries() int { return r.Bans + r.CarveOuts + r.AllowEntries + r.Traps }

func (r Repair) String() string {
	var parts []string
	if len(r.Fixed) > 0 {
		parts = append(parts, strings.Join(r.Fixed, ", "))
	}
	for _, x := range []struct {
		n    int
		what string
	}{{r.Bans, "bans"}, {r.CarveOuts, "carve-outs"}, {r.AllowEntries, "allowlist entries"}, {r.Traps, "trapped addresses"}} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", x.n, x.what))
		}
	}
	return strings.Join(parts, "; ")
}

// note counts a repair that changed anything and logs it, once, as a
// warning of backend's naming what was put back.
func (st *Stats) note(log *slog.Logger, backend string, where slog.Attr, rep Repair) {
	if rep.Empty() {
		return
	}
	st.Repairs++
	st.Restored += uint64(rep.entries())
	log.LogAttrs(context.Background(), slog.LevelWarn, backend+": the kernel had lost part of rampart's state; restored",
		where, slog.String("repaired", rep.String()),
		slog.Int("bans", rep.Bans), slog.Int("carve_outs", rep.CarveOuts), slog.Int("allow_entries", rep.AllowEntries))
}

// Stats are an enforcer's counters. Reading them touches no kernel state.
type Stats struct {
	// CarvedOut counts the carve-outs in force (as given to Carve, not yet
	// ended or uncarved).
	CarvedOut int `json:"carved_out"`
	// Repairs counts the times the kernel was found to have lost some of
	// Rampart's state (a flushed ruleset, a deleted set, removed elements)
	// and was repaired; Restored counts the entries put back.
	Repairs  uint64 `json:"repairs"`
	Restored uint64 `json:"restored"`
}

// intent is what a kernel backend has been told to hold: the bans applied
// and not revoked, the carve-outs, the allowlist. Reconcile compares the
// kernel with it. Ended entries are pruned lazily.
type intent struct {
	bans     banMap                   // target → end; zero: no timeout
	carves   map[netip.Addr]time.Time // address → end; zero: no timeout
	traps    map[netip.Addr]time.Time // trapped address → end; zero: no timeout
	portBans map[portElem]time.Time   // per-port ban element → end; zero: no timeout (ports.go)
	allow    []netip.Prefix           // normalized; nil before the first SetAllow
	allowSet bool
	// sizes after the last prune, so that pruning costs O(1) per entry added
	prunedBans, prunedCarves, prunedPorts int
}

func newIntent() intent {
	return intent{bans: newBanMap(), carves: map[netip.Addr]time.Time{}, traps: map[netip.Addr]time.Time{},
		portBans: map[portElem]time.Time{}}
}

// live reports whether an entry ending at end is still to be held at now.
// An entry about to end (within slack) is not worth putting back: the
// kernel would time it out at once, and the clocks round differently.
func live(end, now time.Time, slack time.Duration) bool {
	return end.IsZero() || end.Sub(now) > slack
}

// reconcileSlack is how close to its end an entry is left out of a repair.
const reconcileSlack = time.Second

// addBans records the whole-host bans among bans (addPortBans records
// the others).
func (in *intent) addBans(bans []ban, now time.Time) {
	for _, b := range bans {
		if len(b.ports) > 0 {
			continue
		}
		end := time.Time{}
		if b.timeout > 0 {
			end = now.Add(b.timeout)
		}
		in.bans.set(b.target, end)
	}
	if in.bans.len() > 2*in.prunedBans+1024 {
		in.prune(now)
	}
}

func (in *intent) addTraps(traps []ban, now time.Time) {
	for _, t := range traps {
		end := time.Time{}
		if t.timeout > 0 {
			end = now.Add(t.timeout)
		}
		in.traps[t.target.Addr()] = end
	}
}

func (in *intent) addCarves(cs []carveOut, now time.Time) {
	for _, c := range cs {
		in.carves[c.addr] = c.until
	}
	if len(in.carves) > 2*in.prunedCarves+1024 {
		in.prune(now)
	}
}

// prune forgets the entries that have ended.
func (in *intent) prune(now time.Time) {
	in.bans.deleteFunc(func(_ netip.Prefix, end time.Time) bool { return !live(end, now, 0) })
	maps.DeleteFunc(in.carves, func(_ netip.Addr, end time.Time) bool { return !live(end, now, 0) })
	maps.DeleteFunc(in.traps, func(_ netip.Addr, end time.Time) bool { return !live(end, now, 0) })
	maps.DeleteFunc(in.portBans, func(_ portElem, end time.Time) bool { return !live(end, now, 0) })
	in.prunedBans, in.prunedCarves, in.prunedPorts = in.bans.len(), len(in.carves), len(in.portBans)
}

// carvedOut counts the carve-outs in force at now.
func (in *intent) carvedOut(now time.Time) int {
	n := 0
	for _, end := range in.carves {
		if live(end, now, 0) {
			n++
		}
	}
	return n
}

// liveCarves returns the carve-outs in force at now, sorted by address.
func liveCarves(m map[netip.Addr]time.Time, now time.Time) []CarveOut {
	out := make([]CarveOut, 0, len(m))
	for a, end := range m {
		if live(end, now, 0) {
			out = append(out, CarveOut{Addr: a, Until: end})
		}
	}
	slices.SortFunc(out, func(x, y CarveOut) int { return x.Addr.Compare(y.Addr) })
	return out
}
