package firewall

// Per-port bans in the IPSet backend: a set rampart-banport4 (hash:ip,port,
// timeout 0) per family, members "192.0.2.1,tcp:22", matched by
//
//	-A RAMPART -m set --match-set rampart-banport4 src,dst -j DROP
//
// right after the address bans (see wantRules).

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// ipsetPortMember is an element as ipset writes it: "ADDR,PROTO:PORT".
func ipsetPortMember(el portElem) string {
	return el.addr.String() + "," + el.proto.String() + ":" + strconv.Itoa(int(el.port))
}

// parseIPSetPortMember reads ipsetPortMember's form.
func parseIPSetPortMember(s string) (portElem, bool) {
	i := strings.LastIndexByte(s, ',')
	if i < 0 {
		return portElem{}, false
	}
	a, err := netip.ParseAddr(s[:i])
	if err != nil {
		return portElem{}, false
	}
	proto, port, ok := strings.Cut(s[i+1:], ":")
	if !ok {
		return portElem{}, false
	}
	p, err := event.ParseProto(proto)
	if err != nil {
		return portElem{}, false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return portElem{}, false
	}
	return portElem{addr: a.Unmap(), proto: p, port: uint16(n)}, true
}

// parseIPSetPorts reads the "add SET MEMBER [timeout N]" lines of `ipset
// save` of a per-port set: each element with its time left (0: none).
func parseIPSetPorts(save []byte, set string) (map[portElem]time.Duration, error) {
	out := map[portElem]time.Duration{}
	err := scanIPSetSave(save, set, func(member string, left time.Duration) error {
		el, ok := parseIPSetPortMember(member)
		if !ok {
			return fmt.Errorf("%s: bad member %q", set, member)
		}
		out[el] = left
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// savePorts lists the members of a per-port set.
func (e *IPSet) savePorts(ctx context.Context, set string) (map[portElem]time.Duration, error) {
	out, err := e.cfg.Run(ctx, nil, e.cfg.IPSet, "save", set)
	if err != nil {
		return nil, fmt.Errorf("save %s: %w", set, err)
	}
	return parseIPSetPorts(out, set)
}

// writePorts writes the restore lines that add per-port ban elements with
// their ends; an IPv6 element without IPv6 is an error.
func (e *IPSet) writePorts(b *bytes.Buffer, ends map[portElem]time.Time, now time.Time) error {
	for el, end := range ends {
		f, ok := e.familyOf(el.addr)
		if !ok {
			return fmt.Errorf("cannot ban %s without IPv6", el.addr)
		}
		fmt.Fprintf(b, "add %s %s timeout %d\n", f.banport, ipsetPortMember(el), endSecs(end, now))
	}
	return nil
}

// dropPorts writes the restore lines that delete every per-port ban of
// these addresses the sets hold.
func (e *IPSet) dropPorts(ctx context.Context, b *bytes.Buffer, addrs map[netip.Addr]bool) error {
	if len(addrs) == 0 {
		return nil
	}
	for _, f := range e.cfg.families() {
		els, err := e.savePorts(ctx, f.banport)
		if err != nil {
			return err
		}
		for el := range els {
			if addrs[el.addr] {
				fmt.Fprintf(b, "del %s %s\n", f.banport, ipsetPortMember(el))
			}
		}
	}
	return nil
}

// activePorts lists the per-port bans the sets hold.
func (e *IPSet) activePorts(ctx context.Context, now time.Time) ([]event.Decision, error) {
	all := map[portElem]time.Duration{}
	for _, f := range e.cfg.families() {
		els, err := e.savePorts(ctx, f.banport)
		if err != nil {
			return nil, err
		}
		for el, left := range els {
			all[el] = left
		}
	}
	return portDecisions(all, now), nil
}
