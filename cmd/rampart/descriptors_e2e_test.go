package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/daemon"
)

// TestIdlePeersLeaveDescriptors: a daemon limited to 512 descriptors gets
// 600 idle connections on its Postfix policy port (TCP, so any local user
// may open them). They used to take every descriptor: the control socket
// refused clients and a rotated log could not be reopened. Now the
// listeners hold at most their budget, the rest are refused and counted,
// and status, the log follower and a rotated log keep working.
func TestIdlePeersLeaveDescriptors(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("skipping: needs prlimit (util-linux)")
	}
	bin := rampartBinary(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "auth.log")
	socket := filepath.Join(dir, "ctl.sock")
	port := freePorts(t, 1)[0]
	cfg := filepath.Join(dir, "rampart.toml")
	writeFile(t, logPath, "")
	writeFile(t, cfg, fmt.Sprintf(`[daemon]
state_dir = %q
socket = %q
[firewall]
backend = "log"
[postfix_policy]
listen = "127.0.0.1:%d"
jail = "sshd"
[jail.sshd]
filter = "sshd"
files = [%q]
maxretry = 3
`, filepath.Join(dir, "state"), socket, port, logPath))
	cmd := exec.Command(prlimit, "--nofile=512:512", "--", bin, "run", "--config", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	p := startCommand(t, cmd, socket)
	c := daemon.NewClient(socket)
	waitUntil(t, 10*time.Second, "the policy server up", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, p)
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for range 600 {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("dial %d: %v", len(idle), err)
		}
		idle = append(idle, conn)
	}
	var st daemon.Status
	waitUntil(t, 10*time.Second, "the connections over the budget refused", func() bool {
		st, err = c.Status(context.Background())
		return err == nil && st.Policy != nil && st.Policy.Postfix.Refused+uint64(st.Policy.Postfix.Open) >= 600 && st.Policy.Postfix.Open > 0
	}, p)
	t.Logf("descriptors %+v; postfix policy: %d open, %d refused", st.Descriptors, st.Policy.Postfix.Open, st.Policy.Postfix.Refused)
	if st.Descriptors.Limit != 512 || st.Descriptors.Used > st.Descriptors.Peers || st.Policy.Postfix.Open > st.Descriptors.Peers {
		t.Fatalf("descriptors %+v, postfix %+v", st.Descriptors, *st.Policy.Postfix)
	}
	// The log is still read, and a rotated one reopened.
	appendLines(t, logPath, failures(3, netip.MustParseAddr("192.0.2.10"), 100)...)
	waitUntil(t, 10*time.Second, "a ban from the log", func() bool { return banned(c, "192.0.2.10") }, p)
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	appendLines(t, logPath, failures(3, netip.MustParseAddr("192.0.2.11"), 200)...)
	waitUntil(t, 15*time.Second, "a ban from the rotated log", func() bool { return banned(c, "192.0.2.11") }, p)
	// And the control socket answers each client.
	for range 20 {
		if _, err := c.Status(context.Background()); err != nil {
			t.Fatalf("status: %v", err)
		}
	}
}

func banned(c *daemon.Client, ip string) bool {
	st, err := c.Status(context.Background())
	if err != nil {
		return false
	}
	for _, b := range st.Active {
		if b.IP == ip {
			return true
		}
	}
	return false
}
