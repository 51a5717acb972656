package trap_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/postfixaudit"
	"github.com/rampart-dev/rampart/internal/trap"
)

// TestEHLOPostfix: for each service configuration, the listener the
// daemon derives from postconf's answer (daemon.SMTPTrapListener) makes
// the trap answer as the real Postfix does, byte for byte: the greeting,
// EHLO before and inside TLS, AUTH, VRFY, MAIL's and RCPT's parameters
// and size, relaying, postmaster, BDAT. Dovecot's auth service is a
// stand-in that sends the handshake Dovecot 2.3 sends for auth_mechanisms
// = plain login cram-md5 anonymous external and fails every login; the
// decoy reads the same socket.
func TestEHLOPostfix(t *testing.T) {
	tlsConfig, certFile, keyFile := writeCert(t, t.TempDir())
	socket := fakeDovecot(t)
	cases := []struct{ name, protocol, opts string }{
		{"Debian's submission", "submission", "-o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes -o smtpd_tls_auth_only=yes " +
			"-o smtpd_reject_unlisted_recipient=no -o smtpd_relay_restrictions= -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject"},
		{"port 25 with Debian's main.cf", "smtp", "-o smtpd_tls_security_level=may"},
		{"smtpd_discard_ehlo_keywords=silent-discard,dsn", "smtp", "-o smtpd_tls_security_level=may -o smtpd_discard_ehlo_keywords=silent-discard,dsn"},
		{"message_size_limit=0, no TLS", "smtp", "-o message_size_limit=0"},
		{"broken_sasl_auth_clients=yes", "smtp", "-o smtpd_tls_security_level=may -o smtpd_sasl_auth_enable=yes -o broken_sasl_auth_clients=yes"},
		{"noplaintext before TLS", "submission", "-o smtpd_tls_security_level=may -o smtpd_sasl_auth_enable=yes " +
			"-o smtpd_sasl_security_options=noanonymous,noplaintext -o smtpd_sasl_tls_security_options=noanonymous"},
		{"a mechanism filter, no SMTPUTF8, no VRFY, more discarded", "smtp", "-o smtpd_tls_security_level=may -o smtpd_sasl_auth_enable=yes " +
			"-o smtpd_sasl_mechanism_filter=login,cram-md5 -o smtputf8_enable=no -o disable_vrfy_command=yes " +
			"-o {smtpd_discard_ehlo_keywords=chunking, starttls, pipelining} -o smtpd_recipient_limit=5 -o message_size_limit=1000"},
	}
	ports := freePorts(t, len(cases))
	var services []string
	for i, c := range cases {
		services = append(services, fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd %s", ports[i], c.opts))
	}
	services = append(services, "tlsmgr unix - - n 1000? 1 tlsmgr") // STARTTLS needs it
	etc := startPostfix(t, fmt.Sprintf("mydestination = $myhostname, localhost\nsmtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n"+
		"smtpd_sasl_type = dovecot\nsmtpd_sasl_path = %s\n", certFile, keyFile, socket), services)
	conf, err := postfixaudit.Read(context.Background(), etc, postfixaudit.Postconf)
	if err != nil {
		t.Fatal(err)
	}
	mechs, err := postfixaudit.ReadDovecotAuth(context.Background(), socket)
	if err != nil {
		t.Fatal(err)
	}
	script := []string{
		"EHLO client.example", "STARTTLS", "EHLO client.example",
		"AUTH XFOO", "AUTH PLAIN " + plain("nobody@example.test", "guess"), "VRFY",
		"MAIL FROM:<a@sender.example> RET=FULL", "RSET",
		"MAIL FROM:<a@sender.example> SMTPUTF8", "RSET",
		"MAIL FROM:<a@sender.example> SIZE=20000000",
		"MAIL FROM:<a@sender.example>", "RSET", // a refused SIZE= holds until the transaction ends
		"MAIL FROM:<a@sender.example>",
		"RCPT TO:<x@remote.example>", "RCPT TO:<postmaster>", "RCPT TO:<PostMaster@mail.example.test>",
		"RCPT TO:<postmaster@localhost> NOTIFY=NEVER", "RCPT TO:<postmaster@example.test>",
		"RSET", "BDAT 0 LAST",
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "127.0.0.1:" + strconv.Itoa(ports[i])
			var svc *postfixaudit.Service
			for j := range conf.Services {
				if conf.Services[j].Name == name {
					svc = &conf.Services[j]
				}
			}
			if svc == nil {
				t.Fatal("no such service in postconf -M")
			}
			lc := daemon.SMTPTrapListener(conf, c.protocol, 25, svc, map[string][]postfixaudit.DovecotMech{socket: mechs})
			want := converse(t, name, script)
			l := newLab(t, trap.Config{TLS: tlsConfig, Banner: conf.Main["smtpd_banner"]}, lc)
			got := converse(t, l.addr, script)
			for k := range want {
				if k >= len(got) || got[k] != want[k] {
					t.Fatalf("listener %+v\nafter %q:\n trap %q\nreal  %q", lc, append([]string{"(connect)"}, script...)[k], got[k:], want[k:])
				}
			}
			if len(got) != len(want) {
				t.Fatalf("trap %q\nreal %q", got, want)
			}
		})
	}
}

// converse sends the script's lines one at a time and returns the
// greeting and each reply; STARTTLS is followed by the handshake when the
// server agrees. It stops where the server hangs up.
func converse(t *testing.T, addr string, script []string) []string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	c := &client{t: t, c: conn, br: bufio.NewReader(conn)}
	out := []string{c.read()}
	for _, line := range script {
		r := c.cmd("%s", line)
		out = append(out, r)
		if r == "EOF" {
			break
		}
		if line == "STARTTLS" && strings.HasPrefix(r, "220 ") {
			tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			c.c, c.br = tc, bufio.NewReader(tc)
		}
	}
	return out
}

// fakeDovecot serves Dovecot's auth protocol on a unix socket Postfix's
// smtpd (user postfix) can reach: Dovecot 2.3's handshake for
// auth_mechanisms = plain login cram-md5 anonymous external, and FAIL,
// with no reason, to every AUTH.
func fakeDovecot(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rampart-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "auth")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
	t.Cleanup(func() { l.Close(); os.RemoveAll(dir) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprint(c, "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nMECH\tCRAM-MD5\tdictionary\tactive\n"+
					"MECH\tANONYMOUS\tanonymous\nMECH\tEXTERNAL\nSPID\t4242\nCUID\t1\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n")
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if f := strings.Split(sc.Text(), "\t"); f[0] == "AUTH" && len(f) > 1 {
						fmt.Fprintf(c, "FAIL\t%s\n", f[1])
					}
				}
			}()
		}
	}()
	return path
}
