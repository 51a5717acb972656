package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/netnstest"
)

// natsServerBinary builds nats-server from the module Rampart embeds
// (Debian 12's nats-server 2.9 predates per-message TTLs, which the
// streams use).
func natsServerBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "nats-server")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("building nats-server: %v\n%s", err, out)
	}
	return bin
}

// TestFleetExternalCluster runs three nats-server processes clustered over
// three namespaces, each with a `rampart run` beside it that uses the
// cluster ([fleet] servers) instead of its embedded server: the attacked
// node's ban reaches the other two nodes' kernels.
func TestFleetExternalCluster(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireBinary(t, "nft")
	bin := rampartBinary(t)
	nats := natsServerBinary(t)
	fn := newFleetNet(t, 3)
	dir := t.TempDir()
	nodes := make([]*fleetNode, 3)
	natsOut := make([]*syncBuffer, 3)
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
	var users []string
	for _, n := range nodes {
		users = append(users, fmt.Sprintf("{ nkey: %s }", n.pub))
	}
	const secret = "external-cluster-secret-0123456789"
	for i, n := range nodes {
		var routes, servers, peers []string
		servers = append(servers, fmt.Sprintf("%q", "nats://"+netip.AddrPortFrom(fn.addrs[i], 4222).String()))
		for j, o := range nodes {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://rampart:%s@%s", secret, netip.AddrPortFrom(fn.addrs[j], 6222)))
				servers = append(servers, fmt.Sprintf("%q", "nats://"+netip.AddrPortFrom(fn.addrs[j], 4222).String()))
				peers = append(peers, fmt.Sprintf("{ name = %q, key = %q }", o.name, o.pub))
			}
		}
		ncfg := filepath.Join(n.dir, "nats.conf")
		os.WriteFile(ncfg, []byte(fmt.Sprintf(`server_name: %s
listen: %s
jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 2GB }
authorization { users: [ %s ] }
cluster {
  name: rampart
  listen: %s
  authorization { user: rampart, password: %s }
  routes: [ %s ]
}
`, n.name, netip.AddrPortFrom(fn.addrs[i], 4222), filepath.Join(n.dir, "js"), strings.Join(users, ", "),
			netip.AddrPortFrom(fn.addrs[i], 6222), secret, strings.Join(routes, ", "))), 0o644)
		srv := exec.Command("ip", "netns", "exec", n.ns.Name, nats, "-c", ncfg)
		out := &syncBuffer{}
		natsOut[i] = out
		srv.Stdout, srv.Stderr = out, out
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
		os.WriteFile(n.cfg, []byte(fmt.Sprintf(`
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
servers = [%s]
peers = [%s]
`, filepath.Join(n.dir, "state"), n.socket, n.log, n.name, filepath.Join(n.dir, "node.nk"), strings.Join(servers, ", "), strings.Join(peers, ", "))), 0o644)
	}
	for _, n := range nodes {
		n.proc = startDaemon(t, n.ns, bin, n.cfg, n.socket)
	}
	logs := func() string {
		var b strings.Builder
		for _, n := range nodes {
			fmt.Fprintf(&b, "--- %s\n%s\n", n.name, n.proc.out)
		}
		for i, o := range natsOut {
			fmt.Fprintf(&b, "--- nats-server %d\n%s\n", i+1, o)
		}
		return b.String()
	}
	wait := func(d time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait(90*time.Second, "the nodes to read the cluster's streams", func() bool {
		ok := true
		for _, n := range nodes {
			appendLines(t, n.log, time.Now().Format(time.Stamp)+" srv CRON[9]: pam_unix(cron:session): session closed for user root")
			st := n.status(t)
			ok = ok && st.Fleet != nil && st.Fleet.Streams && len(st.Sources) == 1 && st.Sources[0].Lines > 0
		}
		return ok
	})
	a := fn.bad[0]
	svc := fn.listen(t, 1)
	if !fn.reaches(a, svc) {
		t.Fatal("the attacker cannot reach n2 before any ban")
	}
	appendLines(t, nodes[0].log, failures(3, a, 100)...)
	wait(30*time.Second, "n2 and n3 to have the attacker in their kernel", func() bool {
		return nodes[1].inKernel(a) && nodes[2].inKernel(a)
	})
	if fn.reaches(a, svc) {
		t.Error("the attacker still reaches n2")
	}
}
