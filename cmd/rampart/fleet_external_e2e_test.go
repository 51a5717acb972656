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

	"github.com/rampart-dev/rampart/internal/logtest"
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
	nodes := newFleetNodes(t, fn, dir)
	natsOut := make([]*logtest.Buffer, 3)
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
		out := &logtest.Buffer{}
		natsOut[i] = out
		srv.Stdout, srv.Stderr = out, out
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
		n.writeConfig("", fmt.Sprintf("servers = [%s]\npeers = [%s]\n", strings.Join(servers, ", "), strings.Join(peers, ", ")))
	}
	for _, n := range nodes {
		n.proc = startDaemon(t, n.ns, bin, n.cfg, n.socket)
	}
	logs := func() string {
		var b strings.Builder
		b.WriteString(fleetLogs(nodes))
		for i, o := range natsOut {
			fmt.Fprintf(&b, "--- nats-server %d\n%s\n", i+1, o)
		}
		return b.String()
	}
	waitReady(t, nodes, "the nodes to read the cluster's streams", logs)
	a := fn.bad[0]
	svc := fn.listen(t, 1)
	if !fn.reaches(a, svc) {
		t.Fatal("the attacker cannot reach n2 before any ban")
	}
	appendLines(t, nodes[0].log, failures(3, a, 100)...)
	waitLogged(t, 30*time.Second, "n2 and n3 to have the attacker in their kernel", func() bool {
		return nodes[1].inKernel(a) && nodes[2].inKernel(a)
	}, logs)
	if fn.reaches(a, svc) {
		t.Error("the attacker still reaches n2")
	}
}
