package firewall

// Netlink requests google/nftables does not offer, or offers too slowly for
// a check that runs every few seconds: the ruleset's generation, a dump of a
// set's elements read with large buffers and without building a value per
// attribute, and the monitor that reports commits.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nlRecvBuf is the receive buffer of Rampart's own netlink sockets. The
// kernel sizes the pieces of a dump by the largest buffer the reader has
// offered (at most 32 KiB): with google/nftables' page-sized reads, a
// 100,000-element set takes 1,400 pieces, and the kernel walks the set from
// its start for each, so the dump costs 1.5 s instead of 0.2 s.
const nlRecvBuf = 64 << 10

const nftSubsys = unix.NFNL_SUBSYS_NFTABLES << 8

// dialNetlink opens a netfilter netlink socket in the configured namespace.
func (e *NFTables) dialNetlink() (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: e.cfg.NetNSFd, MessageBufferSize: nlRecvBuf})
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return c, nil
}

// nfgen is the nfgenmsg header that starts every nftables message.
func nfgen(family byte) []byte { return []byte{family, unix.NFNETLINK_V0, 0, 0} }

// getGen returns the ruleset's generation: a number the kernel increments
// at every committed transaction (one per batch) in the namespace. Expiring
// elements do not change it.
func getGen(c *netlink.Conn) (uint32, error) {
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nftSubsys | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   nfgen(unix.AF_UNSPEC),
	})
	if err != nil {
		return 0, fmt.Errorf("get ruleset generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		var gen uint32
		found := false
		walkAttrs(m.Data[4:], func(typ uint16, b []byte) {
			if typ == unix.NFTA_GEN_ID && len(b) == 4 {
				gen, found = binary.BigEndian.Uint32(b), true
			}
		})
		if found {
			return gen, nil
		}
	}
	return 0, errors.New("get ruleset generation: no generation in the answer")
}

// nftElem is one set element as dumped: its key, whether it ends an
// interval, its timeout as set (0: none) and the time it has left. An
// element of a per-port ban set has isPort, its key in port and the
// address also in key.
type nftElem struct {
	key       netip.Addr
	end       bool
	timeout   time.Duration
	remaining time.Duration
	port      portElem
	isPort    bool
}

// dumpElements calls fn for each element of set in table (family inet).
// Elements whose timeout has run out but that the kernel has not collected
// yet are left out.
func dumpElements(c *netlink.Conn, table, set string, fn func(nftElem)) error {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: append([]byte(table), 0)},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: append([]byte(set), 0)},
	})
	if err != nil {
		return err
	}
	req := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nftSubsys | unix.NFT_MSG_GETSETELEM), Flags: netlink.Request | netlink.Dump},
		Data:   append(nfgen(unix.NFPROTO_INET), attrs...),
	}
	if _, err := c.Send(req); err != nil {
		return fmt.Errorf("list set %s: %w", set, err)
	}
	for m, err := range c.ReceiveIter() {
		if err != nil {
			return fmt.Errorf("list set %s: %w", set, err)
		}
		if len(m.Data) < 4 || m.Header.Type != netlink.HeaderType(nftSubsys|unix.NFT_MSG_NEWSETELEM) {
			continue
		}
		walkAttrs(m.Data[4:], func(typ uint16, b []byte) {
			if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				return
			}
			walkAttrs(b, func(typ uint16, b []byte) {
				if typ != unix.NFTA_LIST_ELEM {
					return
				}
				if el, ok := parseElem(b); ok && !(el.timeout > 0 && el.remaining <= 0) {
					fn(el)
				}
			})
		})
	}
	return nil
}

func parseElem(b []byte) (nftElem, bool) {
	var el nftElem
	ok := false
	walkAttrs(b, func(typ uint16, b []byte) {
		switch typ {
		case unix.NFTA_SET_ELEM_KEY:
			walkAttrs(b, func(typ uint16, b []byte) {
				if typ != unix.NFTA_DATA_VALUE {
					return
				}
				if el.key, ok = netip.AddrFromSlice(b); !ok {
					el.port, el.isPort = parsePortKey(b)
					el.key, ok = el.port.addr, el.isPort
				}
			})
		case unix.NFTA_SET_ELEM_FLAGS:
			if len(b) == 4 {
				el.end = binary.BigEndian.Uint32(b)&unix.NFT_SET_ELEM_INTERVAL_END != 0
			}
		case unix.NFTA_SET_ELEM_TIMEOUT:
			if len(b) == 8 {
				el.timeout = time.Duration(binary.BigEndian.Uint64(b)) * time.Millisecond
			}
		case unix.NFTA_SET_ELEM_EXPIRATION:
			if len(b) == 8 {
				el.remaining = time.Duration(binary.BigEndian.Uint64(b)) * time.Millisecond
			}
		}
	})
	return el, ok
}

// walkAttrs calls fn for each netlink attribute in b, with the type's
// flag bits (nested, byte order) cleared. A malformed tail is ignored.
func walkAttrs(b []byte, fn func(typ uint16, data []byte)) {
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if n < 4 || n > len(b) {
			return
		}
		fn(typ, b[4:n])
		n = (n + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if n >= len(b) {
			return
		}
		b = b[n:]
	}
}
