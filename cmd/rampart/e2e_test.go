package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/logtest"
	"github.com/rampart-dev/rampart/internal/netnstest"
)

// binDir holds the binaries the tests build (20 MB each); TestMain removes
// it when the tests are done.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rampart-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(os.Stderr, "removing the test binaries: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

// buildOnce builds the rampart binary for tests that run it as a process.
var buildOnce = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "rampart")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func rampartBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// proc is a `rampart run` started inside a namespace.
type proc struct {
	cmd  *exec.Cmd
	out  *logtest.Buffer
	done chan error
}

func startDaemon(t *testing.T, ns *netnstest.Namespace, bin, cfg, socket string) *proc {
	t.Helper()
	return startCommand(t, exec.Command("ip", "netns", "exec", ns.Name, bin, "run", "--config", cfg), socket)
}

// startCommand starts cmd, a `rampart run` however wrapped, and waits
// until it answers on its control socket; t.Cleanup stops it.
func startCommand(t *testing.T, cmd *exec.Cmd, socket string) *proc {
	t.Helper()
	p := &proc{cmd: cmd, out: &logtest.Buffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	c := daemon.NewClient(socket)
	waitUntil(t, 10*time.Second, "daemon up", func() bool {
		_, err := c.Status(context.Background())
		return err == nil
	}, p)
	return p
}

func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("daemon did not stop on SIGTERM\n%s", p.out)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool, p *proc) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			logs := ""
			if p != nil {
				logs = p.out.String()
			}
			t.Fatalf("timed out waiting for %s\ndaemon output:\n%s", what, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		fmt.Fprintln(f, l)
	}
}

func failures(n int, addr netip.Addr, pid int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s srv sshd[%d]: Failed password for root from %s port %d ssh2",
			time.Now().Format(time.Stamp), pid+i, addr, 40000+i))
	}
	return out
}

// TestDaemonEndToEnd runs `rampart run` in a server namespace following a
// log file, and proves with TCP connects from an attacker namespace that
// bans are enforced in the kernel as the design promises.
func TestDaemonEndToEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireBinary(t, "nft")
	bin := rampartBinary(t)
	p := netnstest.New(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "auth.log")
	socket := filepath.Join(dir, "ctl.sock")
	table := fmt.Sprintf("rampart_e2e_%d", os.Getpid()%100000)
	appendLines(t, logPath, "Nov 22 00:00:00 srv sshd[1]: Server listening on 0.0.0.0 port 22.")
	cfg := filepath.Join(dir, "rampart.toml")
	const banTime = 8 * time.Second
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q
[firewall]
backend = "nftables"
table = %q
[allow]
entries = [%q]
[jail.sshd]
filter = "sshd"
files = [%q]
maxretry = 3
bantime = "%ds"
`, filepath.Join(dir, "state"), socket, table, p.Attacker4[1], logPath, int(banTime/time.Second))), 0o644)

	port4 := p.Listen(netip.AddrPortFrom(p.Server4, 0))
	port6 := p.Listen(netip.AddrPortFrom(p.Server6, 0))
	published := netip.AddrPortFrom(p.Server4, 8080)
	p.PublishDNAT(published, p.Listen(netip.AddrPortFrom(p.Service4, 0)))
	bad4, allowed4, other4 := p.Attacker4[0], p.Attacker4[1], p.Attacker4[2]
	bad6, other6 := p.Attacker6[0], p.Attacker6[1]
	can := func(src netip.Addr, dst netip.AddrPort) bool {
		return p.CanConnect(p.Attacker, src, dst, 300*time.Millisecond)
	}
	for _, src := range []netip.Addr{bad4, allowed4, other4} {
		if !can(src, port4) || !can(src, published) {
			t.Fatalf("%s cannot connect before any ban", src)
		}
	}

	d1 := startDaemon(t, p.Server, bin, cfg, socket)
	client := daemon.NewClient(socket)
	// A log is followed from its end: wait until the daemon reads it (a
	// line no filter matches) before writing failures.
	waitUntil(t, 10*time.Second, "daemon reading the log", func() bool {
		appendLines(t, logPath, time.Now().Format(time.Stamp)+" srv CRON[9]: pam_unix(cron:session): session closed for user root")
		st, err := client.Status(context.Background())
		return err == nil && len(st.Sources) == 1 && st.Sources[0].Lines > 0
	}, d1)

	// (a) three failures ban the attacker; (b) the allowlisted address in
	// the same /24 keeps connecting, though it failed as often.
	banned := time.Now()
	appendLines(t, logPath, append(failures(3, bad4, 100), failures(5, allowed4, 200)...)...)
	waitUntil(t, 5*time.Second, "attacker dropped", func() bool { return !can(bad4, port4) }, d1)
	t.Logf("IPv4 attacker dropped %v after its third failure was written", time.Since(banned).Round(time.Millisecond))
	if !can(allowed4, port4) {
		t.Fatalf("allowlisted %s was dropped\n%s", allowed4, d1.out)
	}
	if !can(other4, port4) {
		t.Fatalf("innocent %s was dropped", other4)
	}
	// (e) a DNAT-published port (Docker style) is covered too.
	if can(bad4, published) {
		t.Fatal("banned attacker reaches the DNAT-published port")
	}
	if !can(other4, published) {
		t.Fatal("innocent address cannot reach the published port")
	}
	// (f) IPv6 works the same.
	appendLines(t, logPath, failures(3, bad6, 300)...)
	waitUntil(t, 5*time.Second, "IPv6 attacker dropped", func() bool { return !can(bad6, port6) }, d1)
	if !can(other6, port6) {
		t.Fatal("innocent IPv6 address dropped")
	}

	// (d) restart: active bans are back, old lines are not counted again.
	d1.stop(t)
	if can(bad4, port4) {
		t.Fatal("ban lifted when the daemon stopped")
	}
	d2 := startDaemon(t, p.Server, bin, cfg, socket)
	st, err := client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	active := map[string]bool{}
	for _, b := range st.Active {
		active[b.IP] = true
	}
	if !active[bad4.String()] || !active[bad6.String()] || len(st.Active) != 2 {
		t.Fatalf("after restart active bans = %+v, want %s and %s", st.Active, bad4, bad6)
	}
	if st.Engine.Events != 0 || len(st.Sources) != 1 || st.Sources[0].Lines != 0 {
		t.Fatalf("after restart old lines were read again: %d events, sources %+v", st.Engine.Events, st.Sources)
	}
	appendLines(t, logPath, failures(2, other4, 400)...)
	waitUntil(t, 5*time.Second, "new lines read after restart", func() bool {
		st, err := client.Status(context.Background())
		return err == nil && st.Engine.Events == 2
	}, d2)
	if !can(other4, port4) {
		t.Fatal("two failures (below maxretry 3) banned an address: old lines were counted again")
	}

	// (c) with the daemon stopped, the kernel lifts the ban on time.
	d2.stop(t)
	if can(bad4, port4) {
		t.Fatal("ban gone too early")
	}
	waitUntil(t, banTime+3*time.Second, "ban expiry in the kernel", func() bool { return can(bad4, port4) }, nil)
	if early := banTime - 1500*time.Millisecond; time.Since(banned) < early {
		t.Fatalf("ban expired after %v, before its %v", time.Since(banned), banTime)
	}

	// --flush removes Rampart's table and nothing else.
	out, err := exec.Command("ip", "netns", "exec", p.Server.Name, bin, "run", "--config", cfg, "--flush").CombinedOutput()
	if err != nil {
		t.Fatalf("flush: %v\n%s", err, out)
	}
	tables := p.Server.MustExec("nft", "list", "tables")
	if strings.Contains(tables, table) || !strings.Contains(tables, "netnstest_dnat") {
		t.Fatalf("after --flush the tables are:\n%s", tables)
	}
}
