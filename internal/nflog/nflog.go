// Package nflog reads the packets the kernel sends to an NFLOG group
// (nftables `log group N`) over netfilter netlink, and parses the headers
// Rampart's shields need from them.
//
// It speaks the nfnetlink_log protocol itself on top of
// github.com/mdlayher/netlink: bind a group, ask for the first bytes of
// each packet, read packet messages. One socket per group and network
// namespace can be bound; a second Open of the same group fails with
// EBUSY until the first closes.
package nflog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nfnetlink_log's message types, commands and attributes
// (linux/netfilter/nfnetlink_log.h); x/sys/unix lacks them.
const (
	msgPacket = 0 // NFULNL_MSG_PACKET
	msgConfig = 1 // NFULNL_MSG_CONFIG

	cfgCmd  = 1 // NFULA_CFG_CMD
	cfgMode = 2 // NFULA_CFG_MODE

	cmdBind   = 1 // NFULNL_CFG_CMD_BIND
	cmdUnbind = 2 // NFULNL_CFG_CMD_UNBIND

	copyPacket = 2 // NFULNL_COPY_PACKET

	attrPayload = 9  // NFULA_PAYLOAD
	attrPrefix  = 10 // NFULA_PREFIX
)

const subsys = unix.NFNL_SUBSYS_ULOG << 8

// Packet is one logged packet.
type Packet struct {
	// Family is the packet's protocol family: unix.NFPROTO_IPV4 or
	// unix.NFPROTO_IPV6.
	Family uint8
	// Prefix is the log rule's prefix.
	Prefix string
	// Payload starts at the network header; the log rule's snaplen and the
	// reader's CopyRange bound it. It is only valid during the callback.
	Payload []byte
}

// Config configures Open.
type Config struct {
	Group uint16
	// NetNSFd, when not zero, is an open network namespace to read in
	// (tests); zero is the process's own.
	NetNSFd int
	// CopyRange is how many bytes of each packet the kernel copies; 0
	// means 256, enough for every header Rampart reads.
	CopyRange uint32
}

// Reader reads one NFLOG group.
type Reader struct {
	nl       *netlink.Conn
	group    uint16
	received atomic.Uint64
	lost     atomic.Uint64
}

// Open binds the group. It fails when the kernel has no nfnetlink_log or
// the group is bound by another socket of the namespace (EBUSY).
func Open(cfg Config) (*Reader, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cfg.NetNSFd})
	if err != nil {
		return nil, fmt.Errorf("nflog: %w", err)
	}
	if raw, err := nl.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			// Room for bursts; beyond it the kernel drops and says ENOBUFS.
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
		})
	}
	r := &Reader{nl: nl, group: cfg.Group}
	cr := cfg.CopyRange
	if cr == 0 {
		cr = 256
	}
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, cr)
	mode[4] = copyPacket
	for _, step := range []struct {
		what string
		typ  uint16
		data []byte
	}{
		{"bind group", cfgCmd, []byte{cmdBind}},
		{"set copy mode", cfgMode, mode},
	} {
		if err := r.config(step.typ, step.data); err != nil {
			nl.Close()
			return nil, fmt.Errorf("nflog group %d: %s: %w", cfg.Group, step.what, err)
		}
	}
	return r, nil
}

func (r *Reader) config(typ uint16, data []byte) error {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: typ, Data: data}})
	if err != nil {
		return err
	}
	hdr := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(hdr[2:], r.group)
	_, err = r.nl.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(subsys | msgConfig), Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(hdr, attrs...),
	})
	return err
}

// Run calls fn for each packet logged to the group until ctx ends, then
// returns nil; it returns an error when reading fails otherwise. Packets
// the kernel dropped because they came faster than they were read are
// counted (Lost), not an error. fn must not keep Payload.
func (r *Reader) Run(ctx context.Context, fn func(Packet)) error {
	stop := context.AfterFunc(ctx, func() { r.nl.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		msgs, err := r.nl.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				r.lost.Add(1)
				continue
			}
			return fmt.Errorf("nflog group %d: %w", r.group, err)
		}
		for _, m := range msgs {
			if uint16(m.Header.Type) != subsys|msgPacket || len(m.Data) < 4 {
				continue
			}
			p, ok := parseMessage(m.Data)
			if !ok {
				continue
			}
			r.received.Add(1)
			fn(p)
		}
	}
}

// parseMessage reads a packet message: the nfgenmsg header, then
// attributes. A malformed attribute list ends the reading.
func parseMessage(b []byte) (Packet, bool) {
	p := Packet{Family: b[0]}
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return p, false
	}
	ok := false
	for ad.Next() {
		switch ad.Type() {
		case attrPayload:
			p.Payload, ok = ad.Bytes(), true
		case attrPrefix:
			v := ad.Bytes()
			if i := bytes.IndexByte(v, 0); i >= 0 {
				v = v[:i]
			}
			p.Prefix = string(v)
		}
	}
	return p, ok && ad.Err() == nil
}

// Received counts the packets read; Lost counts the times the kernel
// dropped packets because the socket's buffer was full.
func (r *Reader) Received() uint64 { return r.received.Load() }

// Lost counts the overflows of the socket's buffer (each lost one or more
// packets).
func (r *Reader) Lost() uint64 { return r.lost.Load() }

// Close unbinds the group and closes the socket. Run returns an error if
// it is still reading; cancel its context first.
func (r *Reader) Close() error {
	r.config(cfgCmd, []byte{cmdUnbind})
	return r.nl.Close()
}
