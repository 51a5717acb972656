// Command fleetbench measures a Rampart fleet of three `rampart run`
// processes, each in a network namespace of its own with nftables, their
// embedded NATS servers clustered over a bridge, for bench/fleet.sh:
//
//   - propagation: a ban made by hand on node 1 (its control socket), to
//     the moment `nft monitor` in nodes 2 and 3 shows it added to their
//     kernel sets; -probes times, one at a time; p50 and p99;
//   - throughput: a fourth node (the loader, trusted by the three) shares
//     -bans bans as fast as the fleet takes them; decisions/s until every
//     node's firewall has applied them all;
//   - memory: each node's resident set and Go heap with those bans in
//     force, 10 s and 70 s after the last was applied.
//
// It needs root, nft and ip; it creates and deletes its namespaces itself.
// `fleetbench load` is the loader, run by fleetbench inside node 1's
// namespace.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/fleet"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "load" {
		if err := load(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "fleetbench load:", err)
			os.Exit(1)
		}
		return
	}
	bin := flag.String("rampart", "bench/out/fleet/rampart", "the rampart `binary`")
	probes := flag.Int("probes", 200, "bans timed one at a time")
	bans := flag.Int("bans", 1_000_000, "bans the loader shares (0: no throughput and memory run)")
	out := flag.String("o", "bench/out/fleet/live", "working `dir`ectory")
	flag.Parse()
	if err := run(*bin, *out, *probes, *bans); err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		os.Exit(1)
	}
}

func sh(args ...string) error {
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

type node struct {
	name, dir, ns, socket, pub string
	addr                       netip.Addr
	cmd                        *exec.Cmd
	client                     *daemon.Client
}

func run(bin, out string, probes, nbans int) error {
	bin, _ = filepath.Abs(bin)
	out, _ = filepath.Abs(out)
	os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	tag := strconv.Itoa(os.Getpid() % 10000)
	lan := "fb" + tag + "-lan"
	var cleanup []func()
	defer func() {
		for _, f := range slices.Backward(cleanup) {
			f()
		}
	}()
	if err := sh("ip", "netns", "add", lan); err != nil {
		return err
	}
	cleanup = append(cleanup, func() { sh("ip", "netns", "del", lan) })
	in := func(ns string, args ...string) error {
		return sh(append([]string{"ip", "netns", "exec", ns}, args...)...)
	}
	in(lan, "ip", "link", "add", "br0", "type", "bridge")
	in(lan, "ip", "link", "set", "br0", "up")
	loaderKP, _ := nkeys.CreateUser()
	loaderPub, _ := loaderKP.PublicKey()
	loaderSeed, _ := loaderKP.Seed()
	os.WriteFile(filepath.Join(out, "loader.nk"), loaderSeed, 0o600)
	secret := filepath.Join(out, "cluster.secret")
	os.WriteFile(secret, []byte("fleet-bench-secret-0123456789\n"), 0o600)
	nodes := make([]*node, 3)
	for i := range nodes {
		n := &node{name: fmt.Sprintf("n%d", i+1), ns: fmt.Sprintf("fb%s-n%d", tag, i+1), dir: filepath.Join(out, fmt.Sprintf("n%d", i+1)),
			addr: netip.MustParseAddr(fmt.Sprintf("10.231.0.%d", i+1))}
		os.MkdirAll(n.dir, 0o700)
		n.socket = filepath.Join(n.dir, "ctl.sock")
		kp, _ := nkeys.CreateUser()
		seed, _ := kp.Seed()
		n.pub, _ = kp.PublicKey()
		os.WriteFile(filepath.Join(n.dir, "node.nk"), seed, 0o600)
		os.WriteFile(filepath.Join(n.dir, "auth.log"), nil, 0o644)
		if err := sh("ip", "netns", "add", n.ns); err != nil {
			return err
		}
		ns := n.ns
		cleanup = append(cleanup, func() { sh("ip", "netns", "del", ns) })
		in(n.ns, "ip", "link", "set", "lo", "up")
		port := fmt.Sprintf("p%d", i+1)
		if err := in(lan, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", n.ns); err != nil {
			return err
		}
		in(lan, "ip", "link", "set", port, "master", "br0", "up")
		in(n.ns, "ip", "addr", "add", n.addr.String()+"/24", "dev", "eth0")
		in(n.ns, "ip", "link", "set", "eth0", "up")
		n.client = daemon.NewClient(n.socket)
		nodes[i] = n
	}
	for i, n := range nodes {
		peers := []string{fmt.Sprintf("{ name = \"loader\", key = %q }", loaderPub)}
		var routes []string
		for j, o := range nodes {
			if j != i {
				peers = append(peers, fmt.Sprintf("{ name = %q, key = %q }", o.name, o.pub))
				routes = append(routes, fmt.Sprintf("%q", netip.AddrPortFrom(o.addr, 6222)))
			}
		}
		listen := ""
		if i == 0 {
			listen = `listen = "127.0.0.1:4222"`
		}
		cfg := fmt.Sprintf(`[daemon]
state_dir = %q
socket = %q
max_tracked = 3000000
log_level = "warn"
[firewall]
backend = "nftables"
[jail.sshd]
filter = "sshd"
files = [%q]
[fleet]
enabled = true
name = %q
seed_file = %q
%s
cluster_listen = %q
routes = [%s]
cluster_secret_file = %q
max_store = 8589934592
peers = [%s]
`, filepath.Join(n.dir, "state"), n.socket, filepath.Join(n.dir, "auth.log"), n.name, filepath.Join(n.dir, "node.nk"), listen,
			netip.AddrPortFrom(n.addr, 6222), strings.Join(routes, ", "), secret, strings.Join(peers, ", "))
		path := filepath.Join(n.dir, "rampart.toml")
		os.WriteFile(path, []byte(cfg), 0o644)
		logf, _ := os.Create(filepath.Join(n.dir, "rampart.log"))
		n.cmd = exec.Command("ip", "netns", "exec", n.ns, bin, "run", "--config", path)
		n.cmd.Stdout, n.cmd.Stderr = logf, logf
		if err := n.cmd.Start(); err != nil {
			return err
		}
		c := n.cmd
		cleanup = append(cleanup, func() { c.Process.Signal(syscall.SIGTERM); c.Wait(); logf.Close() })
	}
	ctx := context.Background()
	if err := waitFor(120*time.Second, "the fleet to form", func() bool {
		for _, n := range nodes {
			st, err := n.client.Status(ctx)
			if err != nil || st.Fleet == nil || !st.Fleet.Streams {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	fmt.Println("fleet formed")

	// Propagation: nft monitor in nodes 2 and 3.
	seen := &seenSet{at: map[netip.Addr][]time.Time{}}
	for _, n := range nodes[1:] {
		stop, err := monitor(n.ns, seen)
		if err != nil {
			return err
		}
		cleanup = append(cleanup, stop)
	}
	time.Sleep(500 * time.Millisecond) // the monitors are listening
	var lat []time.Duration
	for i := range probes {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		t0 := time.Now()
		if _, err := nodes[0].client.Ban(ctx, daemon.BanRequest{IP: a.String(), DurationS: 3600}); err != nil {
			return err
		}
		if err := waitFor(10*time.Second, "probe "+a.String(), func() bool { return len(seen.get(a)) >= 2 }); err != nil {
			return err
		}
		for _, t := range seen.get(a) {
			lat = append(lat, t.Sub(t0))
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		fmt.Printf("propagation, manual ban on n1 to the kernel sets of n2 and n3: %d samples, p50 %s, p99 %s, max %s\n",
			len(lat), lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)*99/100].Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	}
	if nbans == 0 {
		return nil
	}

	// Throughput and memory.
	before := make([]float64, 3)
	for i, n := range nodes {
		before[i] = metric(n.socket, "rampart_firewall_applied_total")
	}
	self, _ := os.Executable()
	loader := exec.Command("ip", "netns", "exec", nodes[0].ns, self, "load", "-seed", filepath.Join(out, "loader.nk"), "-n", strconv.Itoa(nbans))
	loader.Stdout, loader.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	if err := loader.Start(); err != nil {
		return err
	}
	done := make([]time.Duration, 3)
	err := waitFor(60*time.Minute, "every node to apply the loader's bans", func() bool {
		all := true
		for i, n := range nodes {
			if done[i] != 0 {
				continue
			}
			if metric(n.socket, "rampart_firewall_applied_total")-before[i] >= float64(nbans) {
				done[i] = time.Since(start)
				fmt.Printf("%s applied %d bans in %s (%.0f/s)\n", n.name, nbans, done[i].Round(time.Millisecond), float64(nbans)/done[i].Seconds())
			} else {
				all = false
			}
		}
		if !all {
			time.Sleep(2 * time.Second)
		}
		return all
	})
	loader.Wait()
	if err != nil {
		return err
	}
	slowest := slices.Max(done)
	fmt.Printf("throughput: %d bans shared by the loader in every node's kernel after %s: %.0f decisions/s through the fleet\n",
		nbans, slowest.Round(time.Millisecond), float64(nbans)/slowest.Seconds())
	// The store and the consumers settle; then again a minute later, once
	// the runtime has had time to return freed pages.
	for _, wait := range []time.Duration{10 * time.Second, time.Minute} {
		time.Sleep(wait)
		fmt.Printf("after %s:\n", wait)
		for _, n := range nodes {
			pid := n.cmd.Process.Pid // `ip netns exec` execs rampart: the same pid
			rss := procKB(pid, "VmRSS")
			hwm := procKB(pid, "VmHWM")
			js := dirSize(filepath.Join(n.dir, "state", "fleet"))
			db := dirSize(filepath.Join(n.dir, "state")) - js
			fmt.Printf("%s: RSS %d MiB (peak %d MiB), Go heap in use %.0f MiB (next GC at %.0f MiB), JetStream files %d MiB, SQLite store %d MiB, active bans %.0f\n",
				n.name, rss>>10, hwm>>10, metric(n.socket, "go_memstats_heap_inuse_bytes")/(1<<20), metric(n.socket, "go_memstats_next_gc_bytes")/(1<<20),
				js>>20, db>>20, metric(n.socket, "rampart_engine_active_bans"))
		}
	}
	return nil
}

// load is the loader node: it shares n bans under its own key.
func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	seed := fs.String("seed", "", "the loader's NKey seed file")
	n := fs.Int("n", 1000, "bans to share")
	url := fs.String("url", "nats://127.0.0.1:4222", "a server's client URL")
	fs.Parse(args)
	b, err := os.ReadFile(*seed)
	if err != nil {
		return err
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return err
	}
	node, err := fleet.New(fleet.Options{Name: "loader", Key: kp, URLs: []string{*url}, Replicas: 3, Outbox: 200_000})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); node.Run(ctx) }()
	now := time.Now()
	start := time.Now()
	for i := 0; i < *n; {
		for node.Stats().Queued > 100_000 {
			time.Sleep(20 * time.Millisecond)
		}
		batch := make([]fleet.Message, 0, 10_000)
		for ; i < *n && len(batch) < cap(batch); i++ {
			a := netip.AddrFrom4([4]byte{100, 64 + byte(i>>16&0x3f), byte(i >> 8), byte(i)})
			if i >= 1<<22 {
				a = netip.AddrFrom4([4]byte{44, byte(i >> 16), byte(i >> 8), byte(i)})
			}
			batch = append(batch, fleet.FromDecision(event.Decision{Target: event.AddrPrefix(a), Action: event.Ban, Start: now, Duration: 2 * time.Hour, Scenario: "bench"}))
		}
		node.Publish(batch...)
	}
	for node.Stats().Published < uint64(*n) {
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("loader: %d bans published in %s (%.0f/s)\n", *n, time.Since(start).Round(time.Millisecond), float64(*n)/time.Since(start).Seconds())
	cancel()
	wg.Wait()
	return nil
}

type seenSet struct {
	mu sync.Mutex
	at map[netip.Addr][]time.Time
}

func (s *seenSet) add(a netip.Addr, t time.Time) {
	s.mu.Lock()
	s.at[a] = append(s.at[a], t)
	s.mu.Unlock()
}

func (s *seenSet) get(a netip.Addr) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.at[a])
}

var addElement = regexp.MustCompile(`^add element inet rampart ban4 \{ (.*) \}`)

// monitor runs `nft monitor` in ns and records when each address of
// Rampart's ban4 set is added.
func monitor(ns string, s *seenSet) (func(), error) {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "monitor")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			now := time.Now()
			if m := addElement.FindStringSubmatch(line); m != nil {
				for _, f := range strings.FieldsFunc(m[1], func(r rune) bool { return r == ' ' || r == ',' }) {
					if a, err := netip.ParseAddr(f); err == nil {
						s.add(a, now)
					}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }, nil
}

func waitFor(d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// metric reads one value of the daemon's /metrics over its socket.
func metric(socket, name string) float64 {
	c := http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := c.Get("http://rampart/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

func procKB(pid int, key string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
