package trap_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/trap"
)

// BenchmarkHeldSessions holds 10,000 trapped SMTP sessions at once, each
// logged in and in the middle of a message (EHLO, AUTH, MAIL, RCPT done),
// and reports what they cost the trap: Go heap and stacks per held
// session (kernel socket buffers not included) and the rate at which
// sessions were opened and walked to that point. The clients run in a
// process of their own (this test binary, as TestHeldSessionsClients), so
// that neither their memory nor their descriptors count. Run it alone:
//
//	go test -run '^$' -bench HeldSessions -benchtime 1x ./internal/trap
func BenchmarkHeldSessions(b *testing.B) {
	const n = 10_000
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < n+1000 {
		lim.Cur = min(lim.Max, n+1000)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		if lim.Cur < n+1000 {
			b.Skipf("skipping: needs %d descriptors (RLIMIT_NOFILE hard limit %d)", n+1000, lim.Max)
		}
	}
	acc := trap.NewAccounts(trap.AccountsConfig{Addresses: 1, Max: 10, TTL: time.Hour, Passwords: trap.DefaultPasswords()}, nil, nil)
	acc.Observe(fuzzUnknown("admin"))
	srv := trap.NewServer(trap.Config{Hostname: "mail.example.test", MaxSessions: 2 * n, MaxPerAddr: 2 * n}, acc, nil, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l, trap.ListenerConfig{Port: 587, Auth: true})
	defer srv.Close()
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		cmd := exec.Command(os.Args[0], "-test.run=^TestHeldSessionsClients$")
		cmd.Env = append(os.Environ(), "RAMPART_TRAP_CLIENTS="+l.Addr().String(), fmt.Sprintf("RAMPART_TRAP_SESSIONS=%d", n))
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "held ") {
			b.Fatalf("clients: %q, %v", line, err)
		}
		var held int
		var secs float64
		fmt.Sscanf(line, "held %d in %gs", &held, &secs)
		if active := srv.Stats().Active.Load(); held != n || active != n {
			b.Fatalf("clients hold %d sessions, the trap %d; want %d", held, active, n)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		used := float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)
		b.ReportMetric(used/n, "B/session")
		b.ReportMetric(float64(n)/secs, "sessions/s")
		b.ReportMetric(float64(after.HeapInuse+after.StackInuse)/(1<<20), "MiB-held")
		b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
		stdin.Close()
		cmd.Wait()
		deadline := time.Now().Add(30 * time.Second)
		for srv.Stats().Active.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestHeldSessionsClients is BenchmarkHeldSessions' client process; it does
// nothing in a normal test run. It walks RAMPART_TRAP_SESSIONS sessions to
// the middle of a message, 64 opening at a time as a botnet's would,
// prints "held N in Ss", and holds them until its standard input closes.
func TestHeldSessionsClients(t *testing.T) {
	addr := os.Getenv("RAMPART_TRAP_CLIENTS")
	if addr == "" {
		t.Skip("the client half of BenchmarkHeldSessions")
	}
	n, _ := strconv.Atoi(os.Getenv("RAMPART_TRAP_SESSIONS"))
	script := "EHLO client.example\r\nAUTH PLAIN AGFkbWluADEyMzQ1Ng==\r\nMAIL FROM:<a@spam.example>\r\nRCPT TO:<v@victim.example>\r\n"
	want := []string{"220 ", "250 CHUNKING", "235 ", "250 2.1.0", "250 2.1.5"}
	start := time.Now()
	sem := make(chan struct{}, 64)
	out := make(chan net.Conn, n)
	errs := make(chan error, n)
	for range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			c, err := hold(addr, script, want)
			if err != nil {
				errs <- err
				return
			}
			out <- c
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("%d sessions held; first error: %v", len(out), err)
	}
	fmt.Printf("held %d in %gs\n", len(out), took.Seconds())
	io.Copy(io.Discard, os.Stdin)
	close(out)
	for c := range out {
		c.Close()
	}
}

// hold walks one session through script and leaves it open.
func hold(addr, script string, want []string) (net.Conn, error) {
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReaderSize(c, 512)
	if _, err := c.Write([]byte(script)); err != nil {
		c.Close()
		return nil, err
	}
	for _, w := range want {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("waiting for %q: %w", w, err)
			}
			if len(line) >= 4 && line[3] == '-' {
				continue
			}
			if !strings.HasPrefix(line, w) {
				c.Close()
				return nil, fmt.Errorf("got %q, want %q", line, w)
			}
			break
		}
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
