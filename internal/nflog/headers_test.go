package nflog

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func ipv4(proto byte, src, dst string, l4 []byte) []byte {
	b := make([]byte, 20, 20+len(l4))
	b[0] = 0x45
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, l4...)
}

func ipv6(next byte, src, dst string, l4 []byte) []byte {
	b := make([]byte, 40, 40+len(l4))
	b[0] = 0x60
	b[6] = next
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, l4...)
}

func tcp(sport, dport uint16, flags byte) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12], b[13] = 0x50, flags
	return b
}

func udp(sport, dport uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	return b
}

func TestParseHeaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want Headers
		ok   bool
	}{
		{"tcp syn", ipv4(unix.IPPROTO_TCP, "192.0.2.7", "198.51.100.1", tcp(40000, 22, 0x02)),
			Headers{Src: netip.MustParseAddr("192.0.2.7"), Dst: netip.MustParseAddr("198.51.100.1"), Proto: unix.IPPROTO_TCP, SrcPort: 40000, DstPort: 22, TCPFlags: 0x02}, true},
		{"tcp reset, ipv6", ipv6(unix.IPPROTO_TCP, "2001:db8::1", "2001:db8::7", tcp(23, 40000, 0x14)),
			Headers{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::7"), Proto: unix.IPPROTO_TCP, SrcPort: 23, DstPort: 40000, TCPFlags: 0x14}, true},
		{"port unreachable", ipv4(unix.IPPROTO_ICMP, "198.51.100.1", "192.0.2.7",
			append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, ipv4(unix.IPPROTO_UDP, "192.0.2.7", "198.51.100.1", udp(5000, 161))...)),
			Headers{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("192.0.2.7"), Proto: unix.IPPROTO_ICMP,
				PortUnreachable: true, InnerProto: unix.IPPROTO_UDP, InnerDstPort: 161}, true},
		{"port unreachable, ipv6", ipv6(unix.IPPROTO_ICMPV6, "2001:db8::1", "2001:db8::7",
			append([]byte{1, 4, 0, 0, 0, 0, 0, 0}, ipv6(unix.IPPROTO_UDP, "2001:db8::7", "2001:db8::1", udp(5000, 53))...)),
			Headers{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::7"), Proto: unix.IPPROTO_ICMPV6,
				PortUnreachable: true, InnerProto: unix.IPPROTO_UDP, InnerDstPort: 53}, true},
		{"echo request", ipv4(unix.IPPROTO_ICMP, "192.0.2.7", "198.51.100.1", []byte{8, 0, 0, 0, 0, 0, 0, 0}),
			Headers{Src: netip.MustParseAddr("192.0.2.7"), Dst: netip.MustParseAddr("198.51.100.1"), Proto: unix.IPPROTO_ICMP}, true},
		{"truncated tcp", ipv4(unix.IPPROTO_TCP, "192.0.2.7", "198.51.100.1", []byte{1, 2, 3}), Headers{}, false},
		{"short ip", []byte{0x45, 0, 0}, Headers{}, false},
		{"not ip", []byte{0x15, 0, 0, 0}, Headers{}, false},
		{"empty", nil, Headers{}, false},
	} {
		got, ok := ParseHeaders(tc.in)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseHeaders(f *testing.F) {
	f.Add(ipv4(unix.IPPROTO_TCP, "192.0.2.7", "198.51.100.1", tcp(40000, 22, 0x02)))
	f.Add(ipv6(unix.IPPROTO_ICMPV6, "2001:db8::1", "2001:db8::7", append([]byte{1, 4, 0, 0, 0, 0, 0, 0}, ipv6(unix.IPPROTO_UDP, "2001:db8::7", "2001:db8::1", udp(5000, 53))...)))
	f.Add(ipv4(unix.IPPROTO_ICMP, "198.51.100.1", "192.0.2.7", []byte{3, 3, 0, 0, 0, 0, 0, 0, 0x4f}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := ParseHeaders(b)
		if ok && !h.Src.IsValid() {
			t.Fatalf("ok without a source address: %+v", h)
		}
	})
}

func TestParseMessage(t *testing.T) {
	attr := func(typ uint16, v []byte) []byte {
		b := make([]byte, 4, 4+len(v)+3)
		binary.NativeEndian.PutUint16(b, uint16(4+len(v)))
		binary.NativeEndian.PutUint16(b[2:], typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	pkt := ipv4(unix.IPPROTO_TCP, "192.0.2.7", "198.51.100.1", tcp(40000, 22, 0x02))
	msg := append([]byte{unix.NFPROTO_IPV4, 0, 0, 7}, attr(attrPrefix, []byte("rampart portscan\x00"))...)
	msg = append(msg, attr(attrPayload, pkt)...)
	p, ok := parseMessage(msg)
	if !ok || p.Prefix != "rampart portscan" || p.Family != unix.NFPROTO_IPV4 || string(p.Payload) != string(pkt) {
		t.Fatalf("got %+v, %v", p, ok)
	}
	if _, ok := parseMessage(append([]byte{2, 0, 0, 0}, attr(attrPrefix, []byte("x\x00"))...)); ok {
		t.Error("a message without payload parsed")
	}
}
