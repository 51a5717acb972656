package nflog

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Headers are the addresses and ports of a logged packet. For an ICMP or
// ICMPv6 port unreachable, Inner* describe the datagram it answers (whose
// destination port was closed).
type Headers struct {
	Src, Dst         netip.Addr
	Proto            uint8 // unix.IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6
	SrcPort, DstPort uint16
	// TCPFlags are a TCP segment's flags (FIN 0x01, SYN 0x02, RST 0x04,
	// ACK 0x10).
	TCPFlags uint8
	// PortUnreachable is set for ICMP destination unreachable, port
	// unreachable; InnerProto and InnerDstPort are then the answered
	// datagram's protocol and destination port.
	PortUnreachable bool
	InnerProto      uint8
	InnerDstPort    uint16
}

// ParseHeaders reads the IPv4 or IPv6 header at the start of b and the
// transport header after it. ok is false when b is too short or not an
// IP packet; an IPv6 packet with extension headers before the transport
// header is reported with Proto set to the first one and no ports.
func ParseHeaders(b []byte) (h Headers, ok bool) {
	l4, ok := parseIP(b, &h)
	if !ok {
		return h, false
	}
	switch h.Proto {
	case unix.IPPROTO_TCP:
		if len(l4) < 14 {
			return h, false
		}
		h.SrcPort, h.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		h.TCPFlags = l4[13]
	case unix.IPPROTO_UDP:
		if len(l4) < 4 {
			return h, false
		}
		h.SrcPort, h.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
	case unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6:
		if len(l4) < 8 {
			return h, false
		}
		unreach := h.Proto == unix.IPPROTO_ICMP && l4[0] == 3 && l4[1] == 3 ||
			h.Proto == unix.IPPROTO_ICMPV6 && l4[0] == 1 && l4[1] == 4
		if !unreach {
			return h, true
		}
		var inner Headers
		in, ok := parseIP(l4[8:], &inner)
		if !ok || len(in) < 4 {
			return h, true // truncated quote: the ICMP header alone
		}
		h.PortUnreachable = true
		h.InnerProto, h.InnerDstPort = inner.Proto, binary.BigEndian.Uint16(in[2:])
	}
	return h, true
}

// parseIP fills h's addresses and protocol and returns the bytes after the
// IP header.
func parseIP(b []byte, h *Headers) ([]byte, bool) {
	if len(b) < 1 {
		return nil, false
	}
	switch b[0] >> 4 {
	case 4:
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return nil, false
		}
		h.Proto = b[9]
		h.Src = netip.AddrFrom4([4]byte(b[12:16]))
		h.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		return b[ihl:], true
	case 6:
		if len(b) < 40 {
			return nil, false
		}
		h.Proto = b[6]
		h.Src = netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		h.Dst = netip.AddrFrom16([16]byte(b[24:40])).Unmap()
		return b[40:], true
	}
	return nil, false
}
