package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/netnstest"
)

// fleetNet is a LAN in network namespaces: a bridge in its own namespace
// and, joined to it, one namespace per node and one for the attacker.
type fleetNet struct {
	lan      *netnstest.Namespace
	nodes    []*netnstest.Namespace
	addrs    []netip.Addr // the nodes'
	attacker *netnstest.Namespace
	bad      []netip.Addr // the attacker's addresses
}

func newFleetNet(t *testing.T, n int) *fleetNet {
	t.Helper()
	x := 100 + os.Getpid()%100
	f := &fleetNet{lan: netnstest.NewNamespace(t, "lan")}
	f.lan.MustExec("ip", "link", "add", "br0", "type", "bridge")
	f.lan.MustExec("ip", "link", "set", "br0", "up")
	join := func(ns *netnstest.Namespace, port string, addrs ...netip.Addr) {
		f.lan.MustExec("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns.Name)
		f.lan.MustExec("ip", "link", "set", port, "master", "br0", "up")
		for _, a := range addrs {
			ns.MustExec("ip", "addr", "add", a.String()+"/24", "dev", "eth0")
		}
		ns.MustExec("ip", "link", "set", "eth0", "up")
	}
	for i := range n {
		ns := netnstest.NewNamespace(t, fmt.Sprintf("n%d", i+1))
		a := netip.MustParseAddr(fmt.Sprintf("10.%d.0.%d", x, i+1))
		join(ns, fmt.Sprintf("p%d", i+1), a)
		f.nodes, f.addrs = append(f.nodes, ns), append(f.addrs, a)
	}
	f.attacker = netnstest.NewNamespace(t, "atk")
	for i := range 8 {
		f.bad = append(f.bad, netip.MustParseAddr(fmt.Sprintf("10.%d.0.%d", x, 100+i)))
	}
	join(f.attacker, "patk", f.bad...)
	return f
}

// listen starts a TCP listener on port 2222 of node i (the service the
// attacker tries), closed in t.Cleanup.
func (f *fleetNet) listen(t *testing.T, i int) netip.AddrPort {
	t.Helper()
	ap := netip.AddrPortFrom(f.addrs[i], 2222)
	var l net.Listener
	if err := f.nodes[i].Do(func() (err error) { l, err = net.Listen("tcp", ap.String()); return err }); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return ap
}

// reaches reports whether src (an attacker address) connects to dst.
func (f *fleetNet) reaches(src netip.Addr, dst netip.AddrPort) bool {
	ok := false
	f.attacker.Do(func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 400 * time.Millisecond}
		c, err := d.Dial("tcp", dst.String())
		if err == nil {
			ok = true
			c.Close()
		}
		return nil
	})
	return ok
}

// fleetNode is one node's files.
type fleetNode struct {
	name, dir, cfg, socket, log, pub string
	ns                               *netnstest.Namespace
	proc                             *proc
	client                           *daemon.Client
}

func (n *fleetNode) status(t *testing.T) daemon.Status {
	st, err := n.client.Status(context.Background())
	if err != nil {
		return daemon.Status{}
	}
	return st
}

// bans returns the node's active bans: target → origin.
func (n *fleetNode) bans(t *testing.T) map[string]string {
	m := map[string]string{}
	for _, b := range n.status(t).Active {
		m[b.IP] = b.Origin
	}
	return m
}

// inKernel reports whether addr is in the node's nftables ban set.
func (n *fleetNode) inKernel(addr netip.Addr) bool {
	out, err := n.ns.Exec("nft", "list", "set", "inet", "rampart", "ban4")
	return err == nil && strings.Contains(out, addr.String())
}

// newFleetNodes makes a node in each of fn's namespaces, below dir: its
// directory, NKey seed (node.nk), log and client; its configuration is
// the test's to write.
func newFleetNodes(t *testing.T, fn *fleetNet, dir string) []*fleetNode {
	t.Helper()
	nodes := make([]*fleetNode, len(fn.nodes))
	for i := range nodes {
		n := &fleetNode{name: fmt.Sprintf("n%d", i+1), dir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), ns: fn.nodes[i]}
		os.MkdirAll(n.dir, 0o700)
		n.socket, n.log, n.cfg = filepath.Join(n.dir, "ctl.sock"), filepath.Join(n.dir, "auth.log"), filepath.Join(n.dir, "rampart.toml")
		kp, _ := nkeys.CreateUser()
		seed, _ := kp.Seed()
		n.pub, _ = kp.PublicKey()
		os.WriteFile(filepath.Join(n.dir, "node.nk"), seed, 0o600)
		appendLines(t, n.log, "Nov 22 00:00:00 srv sshd[1]: Server listening on 0.0.0.0 port 22.")
		n.client = daemon.NewClient(n.socket)
		nodes[i] = n
	}
	return nodes
}

// writeConfig writes the node's rampart.toml: head (more tables, or ""),
// then sshd on its log, banning in nftables, and [fleet] with the node's
// name and seed and the keys in fleet.
func (n *fleetNode) writeConfig(head, fleet string) {
	os.WriteFile(n.cfg, []byte(fmt.Sprintf(`%s
[daemon]
state_dir = %q
socket = %q
[firewall]
backend = "nftables"
[prefixes]
enabled = false
[jail.sshd]
filter = "sshd"
files = [%q]
maxretry = 3
bantime = "1h"
[fleet]
enabled = true
name = %q
seed_file = %q
%s`, head, filepath.Join(n.dir, "state"), n.socket, n.log, n.name, filepath.Join(n.dir, "node.nk"), fleet)), 0o644)
}

// ready reports whether the node reads the fleet's streams and its log.
func (n *fleetNode) ready(t *testing.T) bool {
	st := n.status(t)
	return st.Fleet != nil && st.Fleet.Streams && len(st.Sources) == 1 && st.Sources[0].Lines > 0
}

// fleetLogs is the nodes' output, for a failure.
func fleetLogs(nodes []*fleetNode) string {
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "--- %s\n%s\n", n.name, n.proc.out)
	}
	return b.String()
}

// waitLogged waits until cond holds, at most d; past it the test fails
// with logs().
func waitLogged(t *testing.T, d time.Duration, what string, cond func() bool, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady waits until every node is ready, a line added to each log
// while it waits.
func waitReady(t *testing.T, nodes []*fleetNode, what string, logs func() string) {
	t.Helper()
	waitLogged(t, 90*time.Second, what, func() bool {
		ok := true
		for _, n := range nodes {
			appendLines(t, n.log, time.Now().Format(time.Stamp)+" srv CRON[9]: pam_unix(cron:session): session closed for user root")
			ok = n.ready(t) && ok
		}
		return ok
	}, logs)
}

// TestFleetEndToEnd runs three `rampart run` in three network namespaces,
// their embedded NATS servers clustered over a bridge, nftables in each
// namespace, and an attacker namespace on the same LAN:
//   - one node is attacked; the other two have the attacker in their
//     kernel set, and drop it, before it tries them;
//   - a node with the attacker's address allowlisted never bans it;
//   - a node killed (SIGKILL) and restarted gets the bans decided while
//     it was down;
//   - a node cut off the LAN keeps banning alone; when the link is back,
//     its bans reach the others and theirs reach it.
func TestFleetEndToEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireBinary(t, "nft")
	bin := rampartBinary(t)
	fn := newFleetNet(t, 3)
	dir := t.TempDir()
	secret := filepath.Join(dir, "cluster.secret")
	os.WriteFile(secret, []byte("fleet-test-secret-0123456789\n"), 0o600)
	nodes := newFleetNodes(t, fn, dir)
	allowedOnN3 := fn.bad[1]
	for i, n := range nodes {
		var peers, routes []string
		for j, o := range nodes {
			if j != i {
				peers = append(peers, fmt.Sprintf("{ name = %q, key = %q, trust = \"ban\" }", o.name, o.pub))
				routes = append(routes, fmt.Sprintf("%q", netip.AddrPortFrom(fn.addrs[j], 6222)))
			}
		}
		allow := ""
		if i == 2 {
			allow = fmt.Sprintf("[allow]\nentries = [%q]\n", allowedOnN3)
		}
		n.writeConfig(allow, fmt.Sprintf("cluster_listen = %q\nroutes = [%s]\ncluster_secret_file = %q\npeers = [%s]\n",
			netip.AddrPortFrom(fn.addrs[i], 6222).String(), strings.Join(routes, ", "), secret, strings.Join(peers, ", ")))
	}
	start := func(n *fleetNode) {
		n.proc = startDaemon(t, n.ns, bin, n.cfg, n.socket)
	}
	for _, n := range nodes {
		start(n)
	}
	logs := func() string { return fleetLogs(nodes) }
	wait := func(d time.Duration, what string, cond func() bool) {
		t.Helper()
		waitLogged(t, d, what, cond, logs)
	}
	waitReady(t, nodes, "the fleet to form", logs)
	svc := []netip.AddrPort{fn.listen(t, 0), fn.listen(t, 1), fn.listen(t, 2)}

	// One node attacked; the others drop the attacker before it tries them.
	a := fn.bad[0]
	for i := range nodes {
		if !fn.reaches(a, svc[i]) {
			t.Fatalf("%s cannot reach %s before any ban", a, nodes[i].name)
		}
	}
	at := time.Now()
	appendLines(t, nodes[0].log, failures(3, a, 100)...)
	wait(30*time.Second, "n2 and n3 to have the attacker in their kernel", func() bool {
		return nodes[1].inKernel(a) && nodes[2].inKernel(a)
	})
	t.Logf("attacker in n2's and n3's kernel %v after its third failure on n1 was written", time.Since(at).Round(time.Millisecond))
	for i := range nodes {
		if fn.reaches(a, svc[i]) {
			t.Errorf("%s still reaches %s", a, nodes[i].name)
		}
	}
	if o := nodes[1].bans(t)[a.String()]; o != "fleet:n1" {
		t.Errorf("n2's ban of %s has origin %q, want fleet:n1", a, o)
	}
	if fn.reaches(fn.bad[7], svc[1]) == false {
		t.Error("an innocent address cannot reach n2")
	}

	// An address allowlisted on n3 is banned by n1 and n2, never by n3.
	appendLines(t, nodes[0].log, failures(3, allowedOnN3, 200)...)
	wait(30*time.Second, "n2 to ban the address n3 allowlists", func() bool { return nodes[1].inKernel(allowedOnN3) })
	wait(10*time.Second, "n3 to refuse it", func() bool {
		st := nodes[2].status(t)
		return st.Fleet != nil && st.Fleet.Refused > 0
	})
	if nodes[2].inKernel(allowedOnN3) || nodes[2].bans(t)[allowedOnN3.String()] != "" || !fn.reaches(allowedOnN3, svc[2]) {
		t.Errorf("n3 banned its allowlisted %s on a peer's word", allowedOnN3)
	}

	// n3 killed; a ban decided meanwhile reaches it when it is back.
	nodes[2].proc.cmd.Process.Signal(syscall.SIGKILL)
	<-nodes[2].proc.done
	c := fn.bad[2]
	appendLines(t, nodes[0].log, failures(3, c, 300)...)
	wait(30*time.Second, "n2 to ban "+c.String(), func() bool { return nodes[1].inKernel(c) })
	start(nodes[2])
	wait(60*time.Second, "the restarted n3 to replay "+c.String(), func() bool { return nodes[2].inKernel(c) })
	if !nodes[2].inKernel(a) {
		t.Error("the restarted n3 lost the earlier ban")
	}

	// n2 cut off: it bans alone; the fleet goes on without it; healed,
	// everything converges.
	fn.lan.MustExec("ip", "link", "set", "p2", "down")
	d, e := fn.bad[3], fn.bad[4]
	appendLines(t, nodes[1].log, failures(3, d, 400)...)
	appendLines(t, nodes[0].log, failures(3, e, 500)...)
	wait(30*time.Second, "n2 to ban "+d.String()+" alone", func() bool { return nodes[1].inKernel(d) })
	wait(30*time.Second, "n3 to get n1's ban of "+e.String()+" without n2", func() bool { return nodes[2].inKernel(e) })
	if nodes[1].inKernel(e) || nodes[0].inKernel(d) {
		t.Fatal("a ban crossed the partition")
	}
	fn.lan.MustExec("ip", "link", "set", "p2", "up")
	healed := time.Now()
	wait(120*time.Second, "the fleet to converge after the partition", func() bool {
		return nodes[0].inKernel(d) && nodes[2].inKernel(d) && nodes[1].inKernel(e)
	})
	t.Logf("converged %v after the link came back", time.Since(healed).Round(time.Millisecond))
	for _, n := range nodes {
		if st := n.status(t); st.Fleet == nil || st.Fleet.Rejected != 0 {
			t.Errorf("%s: fleet status %+v", n.name, st.Fleet)
		}
	}
}
