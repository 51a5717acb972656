package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/netnstest"
)

// TestShieldsEndToEnd runs rampart with its shields in a server namespace
// in front of a real Dovecot: a flood of connections from an attacker
// namespace is cut to the limits, counted and banned, while a client in
// another namespace connects and logs in; an nmap SYN scan from another
// attacker address ends in a probe ban.
func TestShieldsEndToEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireBinary(t, "nft")
	netnstest.RequireBinary(t, "dovecot")
	netnstest.RequireBinary(t, "nmap")
	bin := rampartBinary(t)
	p := netnstest.New(t)
	peer := p.AddPeer("cli")
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const imapPort = 1143
	imap4 := netip.AddrPortFrom(p.Server4, imapPort)

	// Dovecot in the server namespace: IMAP on every address, one user.
	dc := filepath.Join(dir, "dovecot")
	dcLog := filepath.Join(dc, "dovecot.log")
	home := filepath.Join(dc, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	chown(t, home, "nobody")
	writeFile(t, filepath.Join(dc, "users"), fmt.Sprintf("alice@example.test:{PLAIN}alice-Secret-1:65534:65534::%s\n", home))
	writeFile(t, dcLog, "")
	writeFile(t, filepath.Join(dc, "dovecot.conf"), fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[2]s
protocols = imap
listen = *
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/users
}
userdb {
  driver = passwd-file
  args = %[1]s/users
}
service imap-login {
  inet_listener imap {
    port = %[3]d
  }
  inet_listener imaps {
    port = 0
  }
}
`, dc, dcLog, imapPort))
	startDovecot(t, exec.Command("ip", "netns", "exec", p.Server.Name, "dovecot", "-F", "-c", filepath.Join(dc, "dovecot.conf")), dcLog)
	waitUntil(t, 10*time.Second, "dovecot listening", func() bool {
		return p.CanConnect(peer.NS, peer.Addr4, netip.AddrPortFrom(peer.Server4, imapPort), time.Second)
	}, nil)

	// Rampart: only the imap group, on Dovecot's port, with low limits and
	// quick shield jails.
	socket := filepath.Join(dir, "ctl.sock")
	cfg := filepath.Join(dir, "rampart.toml")
	table := fmt.Sprintf("rampart_shields_%d", os.Getpid()%100000)
	writeFile(t, cfg, fmt.Sprintf(`[daemon]
state_dir = %q
socket = %q
[firewall]
backend = "nftables"
table = %q
[shields.ssh]
enabled = false
[shields.submission]
enabled = false
[shields.smtp]
enabled = false
[shields.web]
enabled = false
[shields.imap]
ports = [%d]
rate = 5
burst = 10
conns = 5
net_conns = 20
[shields.flood]
maxretry = 3
findtime = "1m"
bantime = "2m"
[shields.portscan]
maxretry = 6
findtime = "1m"
bantime = "2m"
[jail.dovecot]
filter = "dovecot"
files = [%q]
`, filepath.Join(dir, "state"), socket, table, imapPort, dcLog))
	d := startDaemon(t, p.Server, bin, cfg, socket)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rampart output:\n%s", d.out)
		}
	})
	client := daemon.NewClient(socket)
	status := func() daemon.Status {
		t.Helper()
		st, err := client.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	bannedIn := func(a netip.Addr, jail string) bool {
		for _, b := range status().Active {
			if b.IP == a.String() && b.Jail == jail {
				return true
			}
		}
		return false
	}

	// The flood: from one attacker address, 20 new connections every
	// 100ms (each held open when it gets through), until it is banned.
	flooder := p.Attacker4[0]
	var mu sync.Mutex
	held, tried := 0, 0
	var conns []net.Conn
	var wg sync.WaitGroup
	stop := make(chan struct{})
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for end := time.After(15 * time.Second); ; {
			select {
			case <-stop:
				return
			case <-end:
				return
			case <-tick.C:
			}
			for range 20 {
				wg.Add(1)
				tried++
				go func() {
					defer wg.Done()
					p.Attacker.Do(func() error {
						dl := net.Dialer{Timeout: 500 * time.Millisecond, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(flooder, 0))}
						c, err := dl.Dial("tcp", imap4.String())
						if err == nil {
							mu.Lock()
							held++
							conns = append(conns, c)
							mu.Unlock()
						}
						return nil
					})
				}()
			}
		}
	}()
	// While it runs, a user in the other namespace logs in.
	time.Sleep(time.Second) // the flood in full swing (nothing to wait for)
	reply := imapLogin(t, peer.NS, peer.Addr4, netip.AddrPortFrom(peer.Server4, imapPort), "alice@example.test", "alice-Secret-1")
	if !strings.HasPrefix(reply, "OK") {
		t.Fatalf("the user's login during the flood: %q", reply)
	}
	waitUntil(t, 15*time.Second, "the flooder banned in jail flood", func() bool { return bannedIn(flooder, "flood") }, d)
	close(stop)
	<-floodDone
	wg.Wait()
	// Closed once the ban is lifted, so that Dovecot sees them go.
	defer func() {
		client.Unban(context.Background(), flooder.String())
		for _, c := range conns {
			c.Close()
		}
	}()
	if held < 1 || held > 5 {
		t.Errorf("the flooder got %d connections through; the limit is 5 at once and they were held", held)
	}
	st := status()
	if st.Shields == nil {
		t.Fatal("status has no shields")
	}
	dropped := map[string]uint64{}
	for _, c := range st.Shields.Counters {
		dropped[c.Group+"/"+c.Kind] = c.Packets
	}
	if dropped["imap/rate"]+dropped["imap/conn"] < 100 {
		t.Errorf("shield counters %v: want the flood's excess dropped and counted (rate or conn)", dropped)
	}
	t.Logf("flood: %d tried, %d held; dropped %v; %d shield events", tried, held, dropped, st.Shields.Events)

	// The scan: nmap's SYN scan of 300 ports from another address.
	scanner := p.Attacker4[1]
	out, err := p.Attacker.Exec("nmap", "-n", "-Pn", "-sS", "-p", "1-300", "--max-retries", "0", "-e", "veth1", "-S", scanner.String(), p.Server4.String())
	if err != nil {
		t.Fatalf("nmap: %v\n%s", err, out)
	}
	waitUntil(t, 10*time.Second, "the scanner banned in jail portscan", func() bool { return bannedIn(scanner, "portscan") }, d)
	if p.CanConnect(p.Attacker, scanner, imap4, 500*time.Millisecond) {
		t.Error("the banned scanner still connects")
	}
	// The user is neither limited nor banned, and logs in again.
	if bannedIn(peer.Addr4, "flood") || bannedIn(peer.Addr4, "portscan") {
		t.Error("the user was banned")
	}
	if reply := imapLogin(t, peer.NS, peer.Addr4, netip.AddrPortFrom(peer.Server4, imapPort), "alice@example.test", "alice-Secret-1"); !strings.HasPrefix(reply, "OK") {
		t.Errorf("the user's login after the attacks: %q", reply)
	}
	st = status()
	for _, c := range st.Shields.Counters {
		if c.Kind == "scan" && c.Packets < 6 {
			t.Errorf("closed-port answers counted: %d, want at least the 6 that ban", c.Packets)
		}
	}

	// Another program flushes the ruleset: the daemon puts the shields back.
	p.Server.MustExec("nft", "flush", "ruleset")
	waitUntil(t, 15*time.Second, "the shields put back after a flush", func() bool {
		out, _ := p.Server.Exec("nft", "list", "chain", "inet", table, "shield_imap")
		return strings.Contains(out, "ct count over 5")
	}, d)
}

// imapLogin connects from src in ns and logs in; it returns the tagged
// reply ("OK …" or "NO …").
func imapLogin(t *testing.T, ns *netnstest.Namespace, src netip.Addr, dst netip.AddrPort, user, pass string) string {
	t.Helper()
	var reply string
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "* OK") {
			return fmt.Errorf("greeting %q: %v", line, err)
		}
		fmt.Fprintf(c, "a1 LOGIN %q %q\r\n", user, pass)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if rest, ok := strings.CutPrefix(line, "a1 "); ok {
				reply = strings.TrimSpace(rest)
				fmt.Fprintf(c, "a2 LOGOUT\r\n")
				return nil
			}
		}
	})
	if err != nil {
		t.Fatalf("IMAP login from %s: %v", src, err)
	}
	return reply
}
