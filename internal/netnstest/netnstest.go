// Package netnstest gives tests a private network to firewall: a "server"
// and an "attacker" network namespace joined by a veth pair, with IPv4 and
// IPv6 addresses, TCP listeners in the server namespace and connection
// checks from the attacker's addresses. Everything is created fresh for one
// test and deleted in t.Cleanup, so tests never touch the host's own
// interfaces or firewall.
//
// It is imported only from tests (firewall's and the daemon's end-to-end
// tests). The tests need root and the ip binary; RequireRoot and
// RequireBinary skip with the reason elsewhere.
package netnstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: needs root to create network namespaces and firewall rules (CI runs it as root)")
	}
}

// RequireBinary skips the test unless name is on PATH.
func RequireBinary(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		tb.Skipf("skipping: needs the %s binary on PATH (CI installs it)", name)
	}
}

// seq makes namespace names and address blocks unique within the process;
// the pid makes names unique across concurrent test binaries.
var seq atomic.Uint32

// Namespace is one named network namespace created for a test.
type Namespace struct {
	Name string // as for `ip netns exec NAME`
	Path string // /run/netns/NAME
	tb   testing.TB
	fd   int
}

// NewNamespace creates a fresh named network namespace with its loopback up
// and deletes it in tb.Cleanup. It skips unless root and ip are available.
func NewNamespace(tb testing.TB, role string) *Namespace {
	tb.Helper()
	RequireRoot(tb)
	RequireBinary(tb, "ip")
	name := fmt.Sprintf("rpt%d-%d-%s", os.Getpid()%100000, seq.Add(1), role)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &Namespace{Name: name, Path: "/run/netns/" + name, tb: tb, fd: -1}
	tb.Cleanup(func() {
		if ns.fd >= 0 {
			unix.Close(ns.fd)
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	// No duplicate address detection: link-local addresses would otherwise
	// stay tentative (unusable) for a second or two on every new link.
	err := ns.Do(func() error {
		for _, f := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/accept_dad", []byte("0"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("netns %s: disable IPv6 DAD: %v", name, err)
	}
	ns.MustExec("ip", "link", "set", "lo", "up")
	return ns
}

// Fd returns an open file descriptor of the namespace, for
// nftables.WithNetNSFd; it stays open until the test ends.
func (ns *Namespace) Fd() int {
	ns.tb.Helper()
	if ns.fd < 0 {
		fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ns.tb.Fatalf("open %s: %v", ns.Path, err)
		}
		ns.fd = fd
	}
	return ns.fd
}

// Exec runs argv inside the namespace (`ip netns exec NAME argv...`) and
// returns its combined output.
func (ns *Namespace) Exec(argv ...string) (string, error) {
	args := append([]string{"netns", "exec", ns.Name}, argv...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s: %w: %s", ns.Name, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// MustExec is Exec that fails the test on error.
func (ns *Namespace) MustExec(argv ...string) string {
	ns.tb.Helper()
	out, err := ns.Exec(argv...)
	if err != nil {
		ns.tb.Fatal(err)
	}
	return out
}

// Runner returns a command runner that runs each command inside the
// namespace via `ip netns exec`; its signature matches firewall.Runner.
func (ns *Namespace) Runner() func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	return func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		argv := append([]string{"netns", "exec", ns.Name, name}, args...)
		cmd := exec.CommandContext(ctx, "ip", argv...)
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return stdout.Bytes(), fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return stdout.Bytes(), nil
	}
}

// Do runs f on an OS thread switched into the namespace, so sockets f
// creates belong to it; the thread switches back before it is reused.
func (ns *Namespace) Do(f func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own netns: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open %s: %w", ns.Path, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns.Name, err)
	}
	ferr := f()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime ends it with this goroutine
		// rather than reuse a thread in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("setns back: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Pair is a server and an attacker namespace joined by a veth pair.
//
// Addresses (X is unique per Pair within the test binary):
//
//	server   10.77.X.1/24, fd00:77:X::1/64 on veth0; services 10.78.X.1, fd00:78:X::1 on lo
//	attacker 10.77.X.2, .3, .4 /24 and fd00:77:X::2, ::3, ::4 /64 on veth1
type Pair struct {
	Server, Attacker *Namespace
	Server4          netip.Addr   // the server's IPv4 on the veth
	Server6          netip.Addr   // the server's IPv6 on the veth
	Service4         netip.Addr   // another server IPv4 (on lo), a DNAT target
	Service6         netip.Addr   // another server IPv6 (on lo), a DNAT target
	Attacker4        []netip.Addr // the attacker's IPv4 addresses
	Attacker6        []netip.Addr // the attacker's IPv6 addresses

	tb testing.TB
	wg sync.WaitGroup
}

// New creates a Pair, waits until both ends can talk over IPv4 and IPv6, and
// deletes everything in tb.Cleanup. It skips unless root and ip are there.
func New(tb testing.TB) *Pair {
	tb.Helper()
	srv := NewNamespace(tb, "srv")
	atk := NewNamespace(tb, "atk")
	x := seq.Add(1) % 250
	p := &Pair{
		Server: srv, Attacker: atk, tb: tb,
		Server4:  netip.MustParseAddr(fmt.Sprintf("10.77.%d.1", x)),
		Server6:  netip.MustParseAddr(fmt.Sprintf("fd00:77:%x::1", x)),
		Service4: netip.MustParseAddr(fmt.Sprintf("10.78.%d.1", x)),
		Service6: netip.MustParseAddr(fmt.Sprintf("fd00:78:%x::1", x)),
	}
	for i := 2; i <= 4; i++ {
		p.Attacker4 = append(p.Attacker4, netip.MustParseAddr(fmt.Sprintf("10.77.%d.%d", x, i)))
		p.Attacker6 = append(p.Attacker6, netip.MustParseAddr(fmt.Sprintf("fd00:77:%x::%d", x, i)))
	}
	// Created inside the server namespace with its peer moved straight into
	// the attacker's: the host namespace never sees either end.
	srv.MustExec("ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", atk.Name)
	srv.MustExec("ip", "addr", "add", p.Server4.String()+"/24", "dev", "veth0")
	srv.MustExec("ip", "addr", "add", p.Server6.String()+"/64", "dev", "veth0", "nodad")
	srv.MustExec("ip", "addr", "add", p.Service4.String()+"/32", "dev", "lo")
	srv.MustExec("ip", "addr", "add", p.Service6.String()+"/128", "dev", "lo", "nodad")
	for _, a := range p.Attacker4 {
		atk.MustExec("ip", "addr", "add", a.String()+"/24", "dev", "veth1")
	}
	for _, a := range p.Attacker6 {
		atk.MustExec("ip", "addr", "add", a.String()+"/64", "dev", "veth1", "nodad")
	}
	srv.MustExec("ip", "link", "set", "veth0", "up")
	atk.MustExec("ip", "link", "set", "veth1", "up")
	// Permanent neighbour entries: no ARP or neighbour discovery delays a
	// first SYN, so a connection that does not complete quickly was dropped.
	srvMAC, atkMAC := linkAddr(tb, srv, "veth0"), linkAddr(tb, atk, "veth1")
	for _, a := range append(slices.Clone(p.Attacker4), p.Attacker6...) {
		srv.MustExec("ip", "neigh", "replace", a.String(), "lladdr", atkMAC, "dev", "veth0", "nud", "permanent")
	}
	for _, a := range []netip.Addr{p.Server4, p.Server6} {
		atk.MustExec("ip", "neigh", "replace", a.String(), "lladdr", srvMAC, "dev", "veth1", "nud", "permanent")
	}
	tb.Cleanup(p.wg.Wait) // runs after the listeners' own cleanups close them

	deadline := time.Now().Add(10 * time.Second)
	for _, ns := range []*Namespace{srv, atk} {
		for {
			link, _ := ns.Exec("ip", "link", "show", "up")
			tent, _ := ns.Exec("ip", "-6", "addr", "show", "tentative")
			if strings.Contains(link, "LOWER_UP") && strings.TrimSpace(tent) == "" {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("netns %s: veth not up or IPv6 still tentative:\n%s\n%s", ns.Name, link, tent)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return p
}

// linkAddr returns the MAC address of dev in ns.
func linkAddr(tb testing.TB, ns *Namespace, dev string) string {
	tb.Helper()
	f := strings.Fields(ns.MustExec("ip", "-br", "link", "show", "dev", dev))
	if len(f) < 3 {
		tb.Fatalf("netns %s: no link address for %s: %v", ns.Name, dev, f)
	}
	return f[2]
}

// Listen starts a TCP listener on addr inside the server namespace that
// accepts connections and closes them at once. Port 0 picks a free port;
// the actual address is returned. The listener is closed, and its goroutine
// waited for, when the test ends.
func (p *Pair) Listen(addr netip.AddrPort) netip.AddrPort {
	p.tb.Helper()
	var l net.Listener
	err := p.Server.Do(func() error {
		var err error
		l, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		p.tb.Fatalf("listen on %s in %s: %v", addr, p.Server.Name, err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	p.tb.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// CanConnect reports whether a TCP connection from src (an address of ns) to
// dst completes within timeout.
func (p *Pair) CanConnect(ns *Namespace, src netip.Addr, dst netip.AddrPort, timeout time.Duration) bool {
	p.tb.Helper()
	var ok bool
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return nil
		}
		ok = true
		return c.Close()
	})
	if err != nil {
		p.tb.Fatalf("connect from %s in %s: %v", src, ns.Name, err)
	}
	return ok
}

// PublishDNAT makes the server namespace forward TCP to pub (an address of
// the server's veth) to the listener at to, the way Docker publishes a
// container port: a nat prerouting DNAT rule (nft table "netnstest_dnat",
// not Rampart's). It needs the nft binary and skips without it.
func (p *Pair) PublishDNAT(pub, to netip.AddrPort) {
	p.tb.Helper()
	RequireBinary(p.tb, "nft")
	fam := "ip"
	dst := to.String()
	if pub.Addr().Is6() {
		fam = "ip6"
	}
	rules := fmt.Sprintf(`table inet netnstest_dnat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		%[1]s daddr %[2]s tcp dport %[3]d dnat %[1]s to %[4]s
	}
}
`, fam, pub.Addr(), pub.Port(), dst)
	f, err := os.CreateTemp(p.tb.TempDir(), "dnat-*.nft")
	if err != nil {
		p.tb.Fatal(err)
	}
	if _, err := f.WriteString(rules); err != nil {
		p.tb.Fatal(err)
	}
	f.Close()
	p.Server.MustExec("nft", "-f", f.Name())
}

// Peer is another client namespace joined to the server by a veth pair of
// its own (a second network: the server's side is Server4, the peer's
// Addr4), for a legitimate client kept apart from the attacker.
type Peer struct {
	NS      *Namespace
	Server4 netip.Addr // the server's address on this link
	Addr4   netip.Addr // the peer's address
}

// AddPeer creates a Peer namespace (deleted in tb.Cleanup), with addresses
// 10.79.X.1 (server) and 10.79.X.2 (peer) on a /24 of its own.
func (p *Pair) AddPeer(role string) *Peer {
	p.tb.Helper()
	ns := NewNamespace(p.tb, role)
	x := seq.Add(1) % 250
	pr := &Peer{NS: ns,
		Server4: netip.MustParseAddr(fmt.Sprintf("10.79.%d.1", x)),
		Addr4:   netip.MustParseAddr(fmt.Sprintf("10.79.%d.2", x))}
	dev := fmt.Sprintf("vp%d", x)
	p.Server.MustExec("ip", "link", "add", dev, "type", "veth", "peer", "name", "veth1", "netns", ns.Name)
	p.Server.MustExec("ip", "addr", "add", pr.Server4.String()+"/24", "dev", dev)
	ns.MustExec("ip", "addr", "add", pr.Addr4.String()+"/24", "dev", "veth1")
	p.Server.MustExec("ip", "link", "set", dev, "up")
	ns.MustExec("ip", "link", "set", "veth1", "up")
	p.Server.MustExec("ip", "neigh", "replace", pr.Addr4.String(), "lladdr", linkAddr(p.tb, ns, "veth1"), "dev", dev, "nud", "permanent")
	ns.MustExec("ip", "neigh", "replace", pr.Server4.String(), "lladdr", linkAddr(p.tb, p.Server, dev), "dev", "veth1", "nud", "permanent")
	deadline := time.Now().Add(10 * time.Second)
	for {
		link, _ := ns.Exec("ip", "link", "show", "veth1")
		if strings.Contains(link, "LOWER_UP") {
			break
		}
		if time.Now().After(deadline) {
			p.tb.Fatalf("netns %s: veth not up:\n%s", ns.Name, link)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return pr
}
