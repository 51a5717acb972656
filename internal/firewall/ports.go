package firewall

// Per-port bans, as every backend shares them: a Ban decision on one
// address with Ports drops only the traffic to those destination ports
// (event.Decision.Ports). Kernel sets hold one element per address,
// protocol and port, so a ban's ranges are expanded; MaxBanPorts bounds
// how many elements one ban may make.

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// MaxBanPorts is the most ports (summed over protocols and ranges) a
// per-port ban may name: each is an element of a kernel set per banned
// address. The configuration refuses more, and Apply fails on more.
const MaxBanPorts = 256

// portElem is one element of a per-port ban: an address, a protocol and a
// destination port.
type portElem struct {
	addr  netip.Addr
	proto event.Proto
	port  uint16
}

func comparePortElems(a, b portElem) int {
	return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.proto, b.proto), cmp.Compare(a.port, b.port))
}

// portElems expands a per-port ban into its elements; nil for a whole-host
// ban.
func (b ban) portElems() []portElem {
	var out []portElem
	for _, r := range b.ports {
		for p := int(r.First); p <= int(r.Last); p++ {
			out = append(out, portElem{addr: b.target.Addr(), proto: r.Proto, port: uint16(p)})
		}
	}
	return out
}

// checkPorts fails when a ban names more than MaxBanPorts ports.
func checkPorts(bans []ban) error {
	for _, b := range bans {
		n := 0
		for _, r := range b.ports {
			n += r.Size()
		}
		if n > MaxBanPorts {
			return fmt.Errorf("ban of %s on %d ports: at most %d per ban (ban the whole host instead)", b.target.Addr(), n, MaxBanPorts)
		}
	}
	return nil
}

// addPortBans records the per-port bans in the intent and returns each
// element with its end. An element two bans share (two jails with a port
// in common) keeps the later end: a shorter ban of one jail must not lift
// another's longer ban of that port.
func (in *intent) addPortBans(bans []ban, now time.Time) map[portElem]time.Time {
	out := map[portElem]time.Time{}
	for _, b := range bans {
		end := time.Time{}
		if b.timeout > 0 {
			end = now.Add(b.timeout)
		}
		for _, el := range b.portElems() {
			if old, ok := in.portBans[el]; ok && live(old, now, 0) && later(old, end) {
				out[el] = old
				continue
			}
			in.portBans[el] = end
			out[el] = end
		}
	}
	if len(in.portBans) > 2*in.prunedPorts+1024 {
		in.prune(now)
	}
	return out
}

// later reports whether end a is after end b (a zero end is never).
func later(a, b time.Time) bool {
	switch {
	case a.IsZero():
		return !b.IsZero()
	case b.IsZero():
		return false
	}
	return a.After(b)
}

// dropPortBans forgets the per-port bans of these addresses.
func (in *intent) dropPortBans(addrs map[netip.Addr]bool) {
	if len(addrs) == 0 {
		return
	}
	maps.DeleteFunc(in.portBans, func(el portElem, _ time.Time) bool { return addrs[el.addr] })
}

// portDecisions turns the elements of per-port bans (each with its time
// left; 0: no timeout) into decisions as of now: one per address and time
// left, the ports merged into ranges. Elements of one ban were added
// together, but the kernel counts each one's time down on its own (ipset
// in whole seconds), so times left within portGroupSlack of each other
// make one decision, with the longest of them.
func portDecisions(els map[portElem]time.Duration, now time.Time) []event.Decision {
	sorted := slices.Collect(maps.Keys(els))
	slices.SortFunc(sorted, func(a, b portElem) int {
		return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(els[a], els[b]), comparePortElems(a, b))
	})
	var out []event.Decision
	var ports []event.PortRange
	var first time.Duration
	flush := func(addr netip.Addr, left time.Duration) {
		if len(ports) > 0 {
			out = append(out, event.Decision{Target: event.AddrPrefix(addr), Action: event.Ban, Start: now,
				Duration: left, Ports: event.NormalizePorts(ports)})
		}
		ports = nil
	}
	for i, el := range sorted {
		left := els[el]
		if i > 0 {
			prev := sorted[i-1]
			if prev.addr != el.addr || (left == 0) != (first == 0) || left-first > portGroupSlack {
				flush(prev.addr, els[prev])
			}
		}
		if len(ports) == 0 {
			first = left
		}
		ports = append(ports, event.PortRange{Proto: el.proto, First: el.port, Last: el.port})
	}
	if len(sorted) > 0 {
		last := sorted[len(sorted)-1]
		flush(last.addr, els[last])
	}
	return out
}

// portGroupSlack is how far apart the times left of one ban's elements may
// be when read back.
const portGroupSlack = 2 * time.Second
