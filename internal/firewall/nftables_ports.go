package firewall

// Per-port bans in Rampart's nftables table, declared here and nowhere
// else (the set indexes and the chain's rule order are in nftables.go's
// tables):
//
//	set banport4   type ipv4_addr . inet_proto . inet_service; flags timeout
//	set banport6   type ipv6_addr . inet_proto . inet_service; flags timeout
//	chain prerouting (Rampart's base chain), after the address bans:
//	  meta nfproto ipv4 ip saddr . meta l4proto . th dport @banport4 drop
//	  meta nfproto ipv6 ip6 saddr . meta l4proto . th dport @banport6 drop
//
// One element per address, protocol and port, each with its own kernel
// timeout. Like an address ban, a per-port ban beats the address's
// carve-out; the allowlist beats it. Packets without a transport header
// (non-first fragments) never match: their first fragment was dropped.

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/rampart-dev/rampart/internal/event"
)

// isPortSet reports whether set index i is a per-port ban set.
func isPortSet(i int) bool { return i == setBanPort4 || i == setBanPort6 }

// portSetType is the key type of a per-port ban set of the family.
func portSetType(v6 bool) nftables.SetDatatype {
	addr := nftables.TypeIPAddr
	if v6 {
		addr = nftables.TypeIP6Addr
	}
	return nftables.MustConcatSetType(addr, nftables.TypeInetProto, nftables.TypeInetService)
}

// definePortSet makes s, a set of defineSets, a per-port ban set.
func definePortSet(s *nftables.Set, v6 bool) {
	s.KeyType = portSetType(v6)
	s.Concatenation = true
	s.HasTimeout = true
}

// The 32-bit registers a concatenation is loaded into, one after another
// (NFT_REG32_00 and on): the address takes one (IPv4) or four (IPv6), the
// protocol and the port one each, zero-padded.
const nftReg32 = 8

// portRuleExprs matches saddr . l4proto . dport against the set.
func portRuleExprs(s *nftables.Set, v6 bool) []expr.Any {
	proto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if v6 {
		proto, off, n = unix.NFPROTO_IPV6, 8, 16
	}
	reg := uint32(nftReg32)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg + n/4},
		&expr.Payload{DestRegister: reg + n/4 + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID},
	}
}

// portKey is an element's key as the kernel holds it: the address, then
// the protocol and the port (big-endian), each padded to 4 bytes.
func portKey(el portElem) []byte {
	k := el.addr.AsSlice()
	k = append(k, byte(el.proto), 0, 0, 0)
	k = binary.BigEndian.AppendUint16(k, el.port)
	return append(k, 0, 0)
}

// parsePortKey reads a key portKey wrote (12 or 24 bytes).
func parsePortKey(b []byte) (portElem, bool) {
	if len(b) != 12 && len(b) != 24 {
		return portElem{}, false
	}
	n := len(b) - 8
	a, ok := netip.AddrFromSlice(b[:n])
	if !ok {
		return portElem{}, false
	}
	return portElem{addr: a, proto: event.Proto(b[n]), port: binary.BigEndian.Uint16(b[n+4 : n+6])}, true
}

// portFamily is the index of the family's per-port set among e.sets.
func portFamily(a netip.Addr) int {
	if a.Is6() {
		return setBanPort6
	}
	return setBanPort4
}

// addPorts adds per-port ban elements, each with the end it should have,
// to the batch.
func (e *NFTables) addPorts(b *nftBatch, ends map[portElem]time.Time, now time.Time) {
	var els [numSets][]nftables.SetElement
	for el, end := range ends {
		i := portFamily(el.addr)
		els[i] = append(els[i], nftables.SetElement{Key: portKey(el), Timeout: timeoutAt(end, now)})
	}
	for i, els := range els {
		if len(els) == 0 {
			continue
		}
		if !e.updatesTimeout {
			b.destroy(e.sets[i], els)
		}
		b.add(e.sets[i], els)
	}
}

// dropPorts deletes from the batch every per-port ban of these addresses
// that the kernel holds, present or not by the time the batch runs.
func (e *NFTables) dropPorts(b *nftBatch, addrs map[netip.Addr]bool) error {
	fams := map[int]bool{}
	for a := range addrs {
		fams[portFamily(a)] = true
	}
	for i := range fams {
		var els []nftables.SetElement
		err := e.each(e.sets[i], func(el nftElem) {
			if el.isPort && addrs[el.port.addr] {
				els = append(els, nftables.SetElement{Key: portKey(el.port)})
			}
		})
		if err != nil {
			return err
		}
		if len(els) > 0 {
			b.destroy(e.sets[i], els)
		}
	}
	return nil
}

// activePorts lists the per-port bans the kernel holds.
func (e *NFTables) activePorts(now time.Time) ([]event.Decision, error) {
	left := map[portElem]time.Duration{}
	for _, i := range []int{setBanPort4, setBanPort6} {
		err := e.each(e.sets[i], func(el nftElem) {
			if el.isPort {
				left[el.port] = remaining(el.timeout, el.remaining)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return portDecisions(left, now), nil
}

// repairPorts puts back the per-port ban elements the kernel lost.
func (e *NFTables) repairPorts(b *nftBatch, now time.Time) (int, error) {
	if len(e.want.portBans) == 0 {
		return 0, nil
	}
	have := map[portElem]bool{}
	for _, i := range []int{setBanPort4, setBanPort6} {
		err := e.each(e.sets[i], func(el nftElem) {
			if el.isPort {
				have[el.port] = true
			}
		})
		if err != nil {
			return 0, err
		}
	}
	missing := map[portElem]time.Time{}
	for el, end := range e.want.portBans {
		if !have[el] && live(end, now, reconcileSlack) {
			missing[el] = end
		}
	}
	e.addPorts(b, missing, now)
	return len(missing), nil
}
