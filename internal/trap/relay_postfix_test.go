package trap_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/postfixaudit"
	"github.com/rampart-dev/rampart/internal/trap"
)

// TestRelayDeniedPostfix: for each set of restrictions, the refusal
// postfixaudit derives from postconf's answer, served by the trap, equals
// the real Postfix's reply to the same RCPT TO byte for byte, and where
// it cannot be derived ("") the real reply indeed names something the
// trap's format cannot (the client). One Postfix serves every set, each
// on a loopback port of its own, to a client outside mynetworks.
func TestRelayDeniedPostfix(t *testing.T) {
	cases := []struct {
		name, opts string // the service's -o options
		real       string // the real reply, when the derivation gives ""
	}{
		{"main.cf: Debian's defer_unauth_destination", "", ""},
		{"Debian's submission", "-o smtpd_relay_restrictions= -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject", ""},
		{"submission through $mua_*", "-o smtpd_relay_restrictions= -o smtpd_recipient_restrictions=$mua_recipient_restrictions", ""},
		{"reject_unauth_destination, relay_domains_reject_code 550", "-o smtpd_relay_restrictions=permit_mynetworks,reject_unauth_destination -o relay_domains_reject_code=550", ""},
		{"soft_bounce", "-o smtpd_relay_restrictions=reject -o soft_bounce=yes", ""},
		{"defer", "-o smtpd_relay_restrictions=permit_mynetworks,defer", ""},
		{"reject_code 450", "-o smtpd_relay_restrictions=reject -o reject_code=450", ""},
		{"recipient restrictions first", "-o smtpd_relay_before_recipient_restrictions=no -o smtpd_recipient_restrictions=reject", ""},
		{"relay restrictions first", "-o smtpd_recipient_restrictions=reject", ""},
		{"warn_if_reject", "-o {smtpd_relay_restrictions=warn_if_reject, reject, reject_unlisted_recipient, reject_unauth_destination}", ""},
		{"a restriction class", "-o smtpd_relay_restrictions=mua_only", ""},
		{"reject_unauth_destination among the client restrictions", "-o smtpd_client_restrictions=permit_mynetworks,reject_unauth_destination", ""},
		{"client restrictions", "-o smtpd_client_restrictions=permit_sasl_authenticated,reject", "554 5.7.1 <unknown[127.0.0.1]>: Client host rejected: Access denied"},
		{"sender restrictions", "-o smtpd_sender_restrictions=reject", "554 5.7.1 <a@sender.example>: Sender address rejected: Access denied"},
		{"HELO restrictions", "-o smtpd_helo_restrictions=reject", "554 5.7.1 <client.example>: Helo command rejected: Access denied"},
	}
	ports := freePorts(t, len(cases))
	var services []string
	for i, c := range cases {
		services = append(services, fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd %s", ports[i], c.opts))
	}
	etc := startPostfix(t, "smtpd_restriction_classes = mua_only\nmua_only = permit_sasl_authenticated, reject\n"+
		"mua_recipient_restrictions = permit_sasl_authenticated, defer_unauth_destination\n", services)
	conf, err := postfixaudit.Read(context.Background(), etc, postfixaudit.Postconf)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s *postfixaudit.Service
			for j := range conf.Services {
				if conf.Services[j].Name == "127.0.0.1:"+strconv.Itoa(ports[i]) {
					s = &conf.Services[j]
				}
			}
			if s == nil {
				t.Fatal("no such service in postconf -M")
			}
			format := conf.RelayDenied(s)
			want := rcptReply(t, "127.0.0.1:"+strconv.Itoa(ports[i]))
			switch {
			case format == "" && want != c.real:
				t.Fatalf("derived nothing; the real reply is %q, the test expected %q", want, c.real)
			case format == "":
				return
			}
			l := newLab(t, trap.Config{}, trap.ListenerConfig{Port: 25, RelayDenied: format})
			if got := rcptReply(t, l.addr); got != want {
				t.Fatalf("trap %q (from %q), real Postfix %q", got, format, want)
			}
		})
	}
}

// rcptReply is a server's reply to a recipient at a remote domain from a
// client that has not logged in.
func rcptReply(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := &client{t: t, c: conn, br: bufio.NewReader(conn)}
	if got := c.read(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting %q", got)
	}
	c.cmd("EHLO client.example")
	if got := c.cmd("MAIL FROM:<a@sender.example>"); got != "250 2.1.0 Ok" {
		t.Fatalf("MAIL: %q", got)
	}
	return c.cmd("RCPT TO:<x@remote.example>")
}

// startPostfix runs Debian's Postfix for the test: its own configuration
// (main.cf with mainExtra, master.cf with services and the internal ones),
// queue and data directories, listening on loopback only, with no local
// domains and mynetworks that holds no loopback address. It returns the
// configuration directory. Postfix starts as root.
func startPostfix(t *testing.T, mainExtra string, services []string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: Postfix starts as root")
	}
	if _, err := exec.LookPath("postfix"); err != nil {
		t.Skip("skipping: needs Postfix (Debian's postfix package; scripts/test installs it)")
	}
	u, err := user.Lookup("postfix")
	if err != nil {
		t.Skipf("skipping: no postfix user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	dir, err := os.MkdirTemp("", "rampart-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	etc, spool, data := filepath.Join(dir, "etc"), filepath.Join(dir, "spool"), filepath.Join(dir, "data")
	for _, d := range []string{etc, spool, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, uid, -1); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %s
data_directory = %s
mail_owner = postfix
maillog_file_prefixes = %s
maillog_file = %s
myhostname = mail.example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 192.0.2.0/24
alias_maps =
alias_database =
smtpd_peername_lookup = no
smtpd_tls_security_level = none
smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination
`, spool, data, dir, filepath.Join(dir, "postfix.log")) + mainExtra
	master := strings.Join(services, "\n") + `
postlog   unix-dgram n  -       n       -       1       postlogd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
`
	if err := os.WriteFile(filepath.Join(etc, "main.cf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "master.cf"), []byte(master), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("postfix", "-c", etc, "stop").Run()
		// Wait for the master to go (its pid file names it) before
		// removing its directories.
		if b, err := os.ReadFile(filepath.Join(spool, "pid", "master.pid")); err == nil {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			for i := 0; pid > 0 && i < 100 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "postfix.log")); err == nil {
				t.Logf("postfix.log:\n%s", b)
			}
		}
		os.RemoveAll(dir)
	})
	if out, err := exec.Command("postfix", "-c", etc, "start").CombinedOutput(); err != nil {
		t.Fatalf("postfix start: %v\n%s", err, out)
	}
	return etc
}

// freePorts returns n loopback ports that are free now, below the
// kernel's ephemeral range: a port bind(0) hands out may be handed to a
// test running alongside before Postfix binds it.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			low, _ = strconv.Atoi(f[0])
		}
	}
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n && tries < 10000; tries++ {
		p := 10000 + rand.IntN(low-10000)
		if seen[p] {
			continue
		}
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	if len(ports) < n {
		t.Fatalf("found %d free ports of %d", len(ports), n)
	}
	return ports
}
