package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/netnstest"
)

// TestTrapEndToEnd runs the trap as docs/trap.md describes it, with
// Debian's Postfix and Dovecot in a server namespace and attackers in
// another, behind Rampart's real nftables redirect:
//
//   - a user name that does not exist, tried from three addresses, becomes
//     a trap account; a real user's name, tried as often, does not;
//   - an attacker brute-forcing SMTP AUTH on the submission port (swaks)
//     is trapped instead of banned: the same port now reaches the decoy,
//     which greets, lists its capabilities and refuses a wrong password in
//     the real Postfix's words, accepts a common password on the trap
//     account (235) and "queues" its message (250 … queued as); the
//     quarantine holds it with its envelope; its IMAP login "works" too;
//     every other port of it is dropped;
//   - nothing leaves: the next hop Postfix would relay to is a real
//     listener that receives nothing, no connection leaves the server's
//     namespace, Postfix's queue is empty and Postfix never saw the
//     trapped attacker again;
//   - a real user on another address logs in to the real server and
//     sends as before.
func TestTrapEndToEnd(t *testing.T) {
	requireMailTools(t)
	netnstest.RequireBinary(t, "nft")
	p := netnstest.New(t)
	// Attackers rotate over addresses in networks of their own, so that no
	// /24 collects three bad addresses (a prefix ban is a ban, not a trap).
	var atk []netip.Addr
	for i := 1; i <= 6; i++ {
		a := netip.MustParseAddr(fmt.Sprintf("10.80.%d.2", i))
		p.Attacker.MustExec("ip", "addr", "add", a.String()+"/32", "dev", "veth1")
		atk = append(atk, a)
	}
	p.Server.MustExec("ip", "route", "add", "10.80.0.0/16", "dev", "veth0")

	// The next hop: Postfix relays everything it would send out to this
	// listener, in the server's namespace. It must never see a connection.
	var sinkConns atomic.Int64
	var sink net.Listener
	if err := p.Server.Do(func() (err error) { sink, err = net.Listen("tcp", "127.0.0.1:25"); return err }); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			sinkConns.Add(1)
			c.Write([]byte("220 sink ESMTP\r\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { sink.Close() })
	// Every connection leaving the server's namespace is counted.
	egress := filepath.Join(t.TempDir(), "egress.nft")
	writeFile(t, egress, `table inet e2e_egress {
	chain out {
		type filter hook output priority 0; policy accept;
		oifname != "lo" ct state new counter
	}
}
`)
	p.Server.MustExec("nft", "-f", egress)

	const trapSMTP, trapIMAP = 10587, 10143
	table := fmt.Sprintf("rampart_trap_%d", time.Now().UnixNano()%100000)
	l := startMailLab(t, labOptions{
		ns: p.Server, clients: p.Attacker, host: p.Server4,
		firewall: func(*mailLab) string { return fmt.Sprintf("backend = \"nftables\"\ntable = %q", table) },
		extra: func(l *mailLab) string {
			return fmt.Sprintf(`
[trap]
enabled = true
postfix_config = %q
listeners = [
  { port = %d, listen = ":%d", protocol = "submission" },
  { port = %d, listen = ":%d", protocol = "imap" },
]
`, l.postfixConf, l.submission, trapSMTP, l.imap, trapIMAP)
		},
		// Dovecot says "unknown user" only when asked to.
		dovecot: "auth_verbose = yes\n",
		postfix: "relayhost = [127.0.0.1]:25\n",
	})
	// Rampart started before Postfix's configuration was written: once
	// more, so that the decoy reads it with postconf, as on a server.
	l.restartRampart(t)
	if !strings.Contains(l.rampart.out.String(), "trap: on") {
		t.Fatalf("the trap is not on:\n%s", l.rampart.out)
	}
	server := func(port int) netip.AddrPort { return netip.AddrPortFrom(p.Server4, uint16(port)) }

	t.Run("learn", func(t *testing.T) {
		// A name that does not exist, and bob, who does, each tried from
		// three addresses: sales becomes a trap account, bob never.
		for _, a := range atk[:3] {
			for _, user := range []string{"sales@example.test", "bob@example.test"} {
				rs := l.smtpAuth(t, a, user, "Winter-"+a.String())
				if r, ok := reply(rs, "AUTH"); !ok || r.Code != 535 {
					t.Fatalf("%s as %s: %v", a, user, rs)
				}
			}
			l.caughtUp(t)
		}
		waitUntil(t, 10*time.Second, "sales@example.test a trap account", func() bool {
			as, err := l.client.TrapAccounts(context.Background())
			return err == nil && len(as) == 1 && as[0].User == "sales@example.test"
		}, l.rampart)
		for _, a := range atk[:3] {
			if b, ok := l.bannedBy(t, a); ok {
				t.Fatalf("%s banned after two failures: %+v", a, b)
			}
		}
	})

	attacker := atk[3]
	var real []string // the real Postfix's answers to the attacker
	t.Run("trapped", func(t *testing.T) {
		real = rawSMTP(t, p, attacker, server(l.submission), "EHLO client.example.net", "AUTH PLAIN "+plainAuth("sales@example.test", "not-it"))
		for i := 1; i <= 8; i++ {
			if b, ok := l.bannedBy(t, attacker); ok {
				if b.Action != "trap" || b.Scenario != "ip-failures" {
					t.Fatalf("%s: %+v, want a trap", attacker, b)
				}
				t.Logf("%s trapped after %d more failures: %s (%s)", attacker, i-1, b.Scenario, b.Reason)
				break
			}
			rs := l.smtpAuth(t, attacker, "sales@example.test", fmt.Sprintf("Guess-%d!", i))
			if r, ok := reply(rs, "AUTH"); !ok || r.Code != 535 {
				t.Fatalf("guess %d: %v", i, rs)
			}
			l.caughtUp(t)
		}
		if b, ok := l.bannedBy(t, attacker); !ok || b.Action != "trap" {
			t.Fatalf("%s never trapped: %+v", attacker, l.status(t).Active)
		}
		waitUntil(t, 5*time.Second, "the trap set holding the attacker", func() bool {
			out, _ := p.Server.Exec("nft", "list", "set", "inet", table, "trap4")
			return strings.Contains(out, attacker.String())
		}, l.rampart)
		seen := strings.Count(readFile(l.postfixLog), "connect from unknown["+attacker.String()+"]")

		// The decoy answers as the real server did.
		decoy := rawSMTP(t, p, attacker, server(l.submission), "EHLO client.example.net", "AUTH PLAIN "+plainAuth("sales@example.test", "not-it"))
		t.Logf("real Postfix:\n  %s\ndecoy:\n  %s", strings.Join(real, "\n  "), strings.Join(decoy, "\n  "))
		if strings.Join(decoy, "\n") != strings.Join(real, "\n") {
			t.Errorf("the decoy's answers differ from the real Postfix's")
		}
		// A common password on the tried name works; the mail is "queued".
		rs := l.smtpAuth(t, attacker, "sales@example.test", "123456",
			"--from", "sales@example.test", "--to", "victim@external.example",
			"--header", "Subject: your invoice", "--body", "Pay here: http://spam.example/pay?id=7")
		t.Logf("trapped attacker with a common password: %v", rs)
		if r, ok := reply(rs, "AUTH"); !ok || r.Code != 235 {
			t.Fatalf("AUTH: %v", rs)
		}
		last := rs[len(rs)-2] // the answer to the message, before QUIT's
		if last.Code != 250 || !regexp.MustCompile(`^2\.0\.0 Ok: queued as [0-9A-F]{10,12}$`).MatchString(last.Text) {
			t.Fatalf("message: %v", rs)
		}
		queueID := strings.TrimPrefix(last.Text, "2.0.0 Ok: queued as ")

		// IMAP too: the trap account works, the INBOX is empty.
		if ans := rawIMAP(t, p, attacker, server(l.imap), `LOGIN "sales@example.test" "123456"`, "SELECT INBOX"); !strings.Contains(ans, "* 0 EXISTS") || !strings.Contains(ans, "a2 OK") {
			t.Fatalf("IMAP: %s", ans)
		}
		// Every other port of it is dropped.
		if p.CanConnect(p.Attacker, attacker, server(l.smtp), 300*time.Millisecond) {
			t.Errorf("the trapped attacker reaches port %d", l.smtp)
		}
		if now := strings.Count(readFile(l.postfixLog), "connect from unknown["+attacker.String()+"]"); now != seen {
			t.Errorf("the real Postfix saw the trapped attacker again (%d connections, %d before)", now, seen)
		}

		// The quarantine holds it, with its envelope.
		ms, err := l.client.TrapMessages(context.Background(), 0)
		if err != nil || len(ms) != 1 {
			t.Fatalf("quarantine: %v %+v", err, ms)
		}
		m, err := l.client.TrapMessage(context.Background(), ms[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if m.QueueID != queueID || m.Client != attacker || m.Account != "sales@example.test" || m.MailFrom != "sales@example.test" ||
			strings.Join(m.RcptTo, ",") != "victim@external.example" || m.Port != l.submission || !strings.Contains(string(m.Raw), "http://spam.example/pay?id=7") {
			t.Fatalf("quarantined %+v\n%s", m, m.Raw)
		}
		out, err := exec.Command(l.bin, "trap", "show", strconv.FormatInt(m.ID, 10), "--socket", l.socket).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Links (not opened):\n  http://spam.example/pay?id=7") || !strings.Contains(string(out), "Envelope to:   victim@external.example") {
			t.Errorf("rampart trap show: %v\n%s", err, out)
		}
		t.Logf("rampart trap show:\n%s", out)
	})

	t.Run("nothing-left", func(t *testing.T) {
		if n := sinkConns.Load(); n != 0 {
			t.Errorf("the next hop received %d connections", n)
		}
		out := p.Server.MustExec("nft", "list", "table", "inet", "e2e_egress")
		if m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out); m == nil || m[1] != "0" {
			t.Errorf("connections left the server's namespace:\n%s", out)
		}
		q, err := l.command("postqueue", "-c", l.postfixConf, "-p").CombinedOutput()
		if err != nil || !strings.Contains(string(q), "Mail queue is empty") {
			t.Errorf("Postfix's queue: %v\n%s", err, q)
		}
	})

	t.Run("real-user", func(t *testing.T) {
		user := atk[4]
		rs := l.smtpAuth(t, user, "carol@example.test", mailUsers["carol@example.test"], "--to", "bob@example.test")
		if r, ok := reply(rs, "AUTH"); !ok || r.Code != 235 {
			t.Fatalf("carol: %v", rs)
		}
		if last := rs[len(rs)-2]; last.Code != 250 || !strings.Contains(last.Text, "queued as") {
			t.Fatalf("carol's message: %v", rs)
		}
		l.logged(t, l.postfixLog, "sasl_username=carol@example.test")
		if b, ok := l.bannedBy(t, user); ok {
			t.Fatalf("carol's address %s: %+v", user, b)
		}
	})
	st := l.status(t)
	if st.Trap == nil || st.Trap.Messages != 1 || st.Trap.Logins != 2 || st.Trap.Accounts != 1 {
		t.Errorf("trap status %+v", st.Trap)
	}
	out, _ := exec.Command(l.bin, "status", "--socket", l.socket).CombinedOutput()
	t.Logf("rampart status:\n%s", out)
}

func plainAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

// rawSMTP runs one SMTP session from src in the attacker namespace and
// returns every reply line: the greeting, then those to each command.
func rawSMTP(t *testing.T, p *netnstest.Pair, src netip.Addr, dst netip.AddrPort, cmds ...string) []string {
	t.Helper()
	var lines []string
	err := dialFrom(p, src, dst, func(c net.Conn, br *bufio.Reader) error {
		read := func() error {
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return err
				}
				line = strings.TrimRight(line, "\r\n")
				lines = append(lines, line)
				if len(line) < 4 || line[3] != '-' {
					return nil
				}
			}
		}
		if err := read(); err != nil {
			return err
		}
		for _, cmd := range append(cmds, "QUIT") {
			fmt.Fprintf(c, "%s\r\n", cmd)
			if err := read(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("SMTP from %s to %s: %v (got %q)", src, dst, err, lines)
	}
	return lines
}

// rawIMAP runs tagged IMAP commands from src and returns the transcript.
func rawIMAP(t *testing.T, p *netnstest.Pair, src netip.Addr, dst netip.AddrPort, cmds ...string) string {
	t.Helper()
	var b strings.Builder
	err := dialFrom(p, src, dst, func(c net.Conn, br *bufio.Reader) error {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return err
		}
		for i, cmd := range cmds {
			tag := fmt.Sprintf("a%d", i+1)
			fmt.Fprintf(c, "%s %s\r\n", tag, cmd)
			for {
				line, err := br.ReadString('\n')
				b.WriteString(line)
				if err != nil {
					return err
				}
				if strings.HasPrefix(line, tag+" ") {
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("IMAP from %s: %v\n%s", src, err, b.String())
	}
	return b.String()
}

// dialFrom connects from src in the attacker namespace to dst and runs
// talk on the connection.
func dialFrom(p *netnstest.Pair, src netip.Addr, dst netip.AddrPort, talk func(net.Conn, *bufio.Reader) error) error {
	return p.Attacker.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		return talk(c, bufio.NewReader(c))
	})
}
