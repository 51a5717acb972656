package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// seenSet records when each address first appeared in a watched kernel
// set. Observers add to it from their reading goroutine, stamping each
// element on arrival; the measuring loop waits on it.
type seenSet struct {
	mu    sync.Mutex
	at    map[netip.Addr]time.Time
	table string // only elements of this nftables table count
	wake  chan struct{}
	err   error // the observer failed; nothing more will arrive
}

func newSeenSet(table string) *seenSet {
	return &seenSet{at: make(map[netip.Addr]time.Time), table: table, wake: make(chan struct{}, 1)}
}

func (s *seenSet) add(table string, addrs []netip.Addr, t time.Time) {
	s.mu.Lock()
	if table != s.table {
		s.mu.Unlock()
		return
	}
	for _, a := range addrs {
		if _, ok := s.at[a]; !ok {
			s.at[a] = t
		}
	}
	s.mu.Unlock()
	s.notify()
}

func (s *seenSet) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.notify()
}

func (s *seenSet) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// get returns when a was first seen.
func (s *seenSet) get(a netip.Addr) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[a]
	return t, ok
}

// count returns how many addresses have been seen, and the observer's error.
func (s *seenSet) count() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.at), s.err
}

// wait blocks until cond (called with the lock held) holds, the observer
// fails, the deadline passes or ctx ends.
func (s *seenSet) wait(ctx context.Context, deadline time.Time, cond func() bool) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		s.mu.Lock()
		ok, err := cond(), s.err
		s.mu.Unlock()
		if ok {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-s.wake:
		case <-t.C:
			return errors.New("timed out")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// observeNetlink subscribes to the nftables multicast group of the current
// network namespace (the kernel's own change notifications, which `nft
// monitor` prints) and records every element added to a set of the table.
// A notification is sent when the transaction that adds the element
// commits, so its arrival is the moment the address is in the kernel set.
func observeNetlink(ctx context.Context, s *seenSet) (stop func(), err error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	// Room for a burst of 100,000 notifications without ENOBUFS.
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 512<<20)
		})
	}
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		c.Close()
		return nil, fmt.Errorf("netlink: join nftables group: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msgs, err := c.Receive()
			now := time.Now()
			if err != nil {
				if ctx.Err() == nil {
					s.fail(fmt.Errorf("netlink receive: %w", err))
				}
				return
			}
			for _, m := range msgs {
				if m.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM) {
					continue
				}
				table, addrs, err := parseNewSetElem(m.Data)
				if err != nil {
					s.fail(err)
					return
				}
				s.add(table, addrs, now)
			}
		}
	}()
	return func() { c.Close(); <-done }, nil
}

// parseNewSetElem decodes an NFT_MSG_NEWSETELEM notification: the table's
// name and the keys of the elements that are addresses.
func parseNewSetElem(b []byte) (string, []netip.Addr, error) {
	if len(b) < 4 { // struct nfgenmsg
		return "", nil, errors.New("short nftables message")
	}
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return "", nil, err
	}
	var table string
	var addrs []netip.Addr
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_LIST_TABLE:
			table = ad.String()
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					if list.Type() != unix.NFTA_LIST_ELEM {
						continue
					}
					list.Nested(func(elem *netlink.AttributeDecoder) error {
						for elem.Next() {
							if elem.Type() != unix.NFTA_SET_ELEM_KEY {
								continue
							}
							elem.Nested(func(key *netlink.AttributeDecoder) error {
								for key.Next() {
									if key.Type() == unix.NFTA_DATA_VALUE {
										if a, ok := netip.AddrFromSlice(key.Bytes()); ok {
											addrs = append(addrs, a.Unmap())
										}
									}
								}
								return nil
							})
						}
						return nil
					})
				}
				return nil
			})
		}
	}
	return table, addrs, ad.Err()
}

// nftAddElement matches `nft monitor` lines such as
// "add element inet f2b-table addr-set-sshd { 198.18.0.10 }".
var nftAddElement = regexp.MustCompile(`^add element \S+ (\S+) \S+ \{ (.*) \}`)

// observeNFTMonitor runs `nft monitor` and records the addresses of each
// "add element" line of the table, stamped when the line is read.
func observeNFTMonitor(ctx context.Context, s *seenSet) (stop func(), err error) {
	cmd := exec.CommandContext(ctx, "nft", "monitor")
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("nft monitor: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			now := time.Now()
			if m := nftAddElement.FindStringSubmatch(line); m != nil {
				var addrs []netip.Addr
				for f := range strings.FieldsSeq(strings.ReplaceAll(m[2], ",", " ")) {
					if a, err := netip.ParseAddr(f); err == nil {
						addrs = append(addrs, a)
					}
				}
				s.add(m[1], addrs, now)
			}
			if err != nil {
				if err != io.EOF || ctx.Err() == nil {
					s.fail(fmt.Errorf("nft monitor: %v", err))
				}
				return
			}
		}
	}()
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		cmd.Wait()
	}, nil
}

// probeObserver proves the observer is listening before the measurement
// starts: it adds an element to a scratch table of the namespace (through
// the nft binary), waits to see it, then deletes the table.
func probeObserver(ctx context.Context, s *seenSet, probeTable string) error {
	probe := netip.MustParseAddr("192.0.2.255")
	s.mu.Lock()
	saved := s.table
	s.table = probeTable // count only the probe's table meanwhile
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.table = saved
		delete(s.at, probe)
		s.mu.Unlock()
	}()
	script := fmt.Sprintf("add table inet %[1]s\nadd set inet %[1]s s { type ipv4_addr; }\nadd element inet %[1]s s { %[2]s }\n", probeTable, probe)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft probe: %v: %s", err, out)
	}
	defer exec.Command("nft", "delete", "table", "inet", probeTable).Run()
	return s.wait(ctx, time.Now().Add(5*time.Second), func() bool { _, ok := s.at[probe]; return ok })
}
