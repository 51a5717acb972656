package trap_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/store"
	"github.com/rampart-dev/rampart/internal/trap"
	"github.com/rampart-dev/rampart/internal/trap/trapstore"
)

// lab is a trap on loopback with a real store and one trap account,
// "admin", learned from three addresses.
type lab struct {
	srv  *trap.Server
	acc  *trap.Accounts
	st   *store.Store
	addr string
}

func newLab(t testing.TB, cfg trap.Config, lc trap.ListenerConfig) *lab {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	acc := trap.NewAccounts(trap.AccountsConfig{Addresses: 3, Max: 100, TTL: time.Hour, Passwords: trap.DefaultPasswords(),
		RealUsers: []string{"alice@example.test"}}, trapstore.Store{Store: st}, nil)
	for i := range 3 {
		acc.Observe(event.Event{Kind: event.UnknownUser, User: "Admin", Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})})
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "mail.example.test"
	}
	srv := trap.NewServer(cfg, acc, trapstore.Store{Store: st}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l, lc) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &lab{srv: srv, acc: acc, st: st, addr: l.Addr().String()}
}

// client is a raw SMTP client: it sends lines and reads whole replies.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func (l *lab) dial(t testing.TB) (*client, string) {
	t.Helper()
	c, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	cl := &client{t: t, c: c, br: bufio.NewReader(c)}
	return cl, cl.read()
}

// read returns one reply, its lines joined with "\n".
func (c *client) read() string {
	c.t.Helper()
	var lines []string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			if len(lines) == 0 && line == "" {
				return "EOF"
			}
			c.t.Fatalf("read reply: %v (so far %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func (c *client) cmd(format string, args ...any) string {
	c.t.Helper()
	fmt.Fprintf(c.c, format+"\r\n", args...)
	return c.read()
}

func (c *client) startTLS(t testing.TB) {
	t.Helper()
	if r := c.cmd("STARTTLS"); r != "220 2.0.0 Ready to start TLS" {
		t.Fatalf("STARTTLS: %q", r)
	}
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.c, c.br = tc, bufio.NewReader(tc)
}

// envelope logs in to the trap's account admin and starts a message
// from a@b to c@d.
func (c *client) envelope() {
	c.cmd("EHLO x")
	c.cmd("AUTH PLAIN %s", plain("admin", "123456"))
	c.cmd("MAIL FROM:<a@b>")
	c.cmd("RCPT TO:<c@d>")
}

func plain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

var queuedRE = regexp.MustCompile(`^250 2\.0\.0 Ok: queued as [0-9A-F]{10,12}$`)

const postfixEHLO = "250-mail.example.test\n250-PIPELINING\n250-SIZE 10240000\n250-VRFY\n250-ETRN\n" +
	"250-AUTH PLAIN LOGIN\n250-ENHANCEDSTATUSCODES\n250-8BITMIME\n250-DSN\n250-SMTPUTF8\n250 CHUNKING"

// TestSMTPTrapSession: a trapped client sees Postfix's answers; a wrong
// password and a real user's name are refused as Postfix refuses them; a
// trap account with a common password logs in; its message is "queued"
// and kept in quarantine with its envelope.
func TestSMTPTrapSession(t *testing.T) {
	l := newLab(t, trap.Config{}, trap.ListenerConfig{Port: 587, Auth: true, RequireTLS: true})
	c, greeting := l.dial(t)
	steps := []struct{ send, want string }{
		{"", "220 mail.example.test ESMTP Postfix (Debian/GNU)"},
		{"EHLO client.example", postfixEHLO},
		{"MAIL FROM:<a@spam.example>", "250 2.1.0 Ok"},
		{"RCPT TO:<victim@example.org>", "554 5.7.1 <victim@example.org>: Relay access denied"},
		{"RSET", "250 2.0.0 Ok"},
		{"AUTH PLAIN " + plain("admin", "wrong-guess"), "535 5.7.8 Error: authentication failed: (reason unavailable)"},
		{"AUTH PLAIN " + plain("alice@example.test", "123456"), "535 5.7.8 Error: authentication failed: (reason unavailable)"},
		{"AUTH PLAIN " + plain("nobody", "123456"), "535 5.7.8 Error: authentication failed: (reason unavailable)"},
		{"AUTH PLAIN " + plain("ADMIN", "123456"), "235 2.7.0 Authentication successful"},
		{"AUTH PLAIN " + plain("admin", "123456"), "503 5.5.1 Error: already authenticated"},
		{"NOOP", "250 2.0.0 Ok"},
		{"RCPT TO:<x@example.org>", "503 5.5.1 Error: need MAIL command"},
		{"DATA", "503 5.5.1 Error: need RCPT command"},
		{"MAIL FROM:<a@spam.example> SIZE=1000", "250 2.1.0 Ok"},
		{"MAIL FROM:<b@spam.example>", "503 5.5.1 Error: nested MAIL command"},
		{"RCPT TO:<victim1@example.org>", "250 2.1.5 Ok"},
		{"RCPT TO:<victim2@example.net>", "250 2.1.5 Ok"},
		{"RCPT bogus", "501 5.5.4 Syntax: RCPT TO:<address>"},
		{"XYZZY", "500 5.5.2 Error: command not recognized"},
		{"DATA", "354 End data with <CR><LF>.<CR><LF>"},
	}
	for _, s := range steps {
		got := greeting
		if s.send != "" {
			got = c.cmd("%s", s.send)
		}
		if got != s.want {
			t.Fatalf("%q:\n got %q\nwant %q", s.send, got, s.want)
		}
	}
	fmt.Fprintf(c.c, "Subject: cheap pills\r\nFrom: a@spam.example\r\n\r\nVisit http://spam.example/x\r\n..dot-stuffed\r\n.\r\n")
	if r := c.read(); !queuedRE.MatchString(r) {
		t.Fatalf("end of data: %q", r)
	}
	if r := c.cmd("QUIT"); r != "221 2.0.0 Bye" {
		t.Fatalf("QUIT: %q", r)
	}
	ms, err := l.st.QuarantineList(context.Background(), 0)
	if err != nil || len(ms) != 1 {
		t.Fatalf("quarantine: %v, %+v", err, ms)
	}
	m, err := l.st.QuarantineGet(context.Background(), ms[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Account != "admin" || m.MailFrom != "a@spam.example" || strings.Join(m.RcptTo, ",") != "victim1@example.org,victim2@example.net" ||
		m.Helo != "client.example" || m.Port != 587 || m.TLS || m.Client != netip.MustParseAddr("127.0.0.1") ||
		!strings.Contains(string(m.Raw), "Visit http://spam.example/x\r\n.dot-stuffed\r\n") {
		t.Fatalf("quarantined %+v\n%s", m, m.Raw)
	}
	if st := l.srv.Stats(); st.Logins.Load() != 1 || st.FailedLogins.Load() != 3 || st.Messages.Load() != 1 {
		t.Errorf("stats: logins %d failed %d messages %d", st.Logins.Load(), st.FailedLogins.Load(), st.Messages.Load())
	}
}

// TestSMTPTrapBDAT: CHUNKING as Postfix answers it.
func TestSMTPTrapBDAT(t *testing.T) {
	l := newLab(t, trap.Config{}, trap.ListenerConfig{Port: 25, Auth: true})
	c, _ := l.dial(t)
	c.envelope()
	fmt.Fprint(c.c, "BDAT 7\r\nSubject")
	if got := c.read(); got != "250 2.0.0 Ok: 7 bytes" {
		t.Fatalf("first chunk: %q", got)
	}
	fmt.Fprint(c.c, "BDAT 9 LAST\r\n: hi\r\n\r\nx")
	// Postfix counts each line (record) of the message + 2: "Subject: hi", "", "x".
	if got := c.read(); !regexp.MustCompile(`^250 2\.0\.0 Ok: 18 bytes queued as [0-9A-F]{10,12}$`).MatchString(got) {
		t.Fatalf("last chunk: %q", got)
	}
	if got := c.cmd("MAIL FROM:<a@b>"); got != "250 2.1.0 Ok" {
		t.Fatalf("after BDAT LAST: %q", got)
	}
	ms, _ := l.st.QuarantineList(context.Background(), 0)
	m, _ := l.st.QuarantineGet(context.Background(), ms[0].ID)
	if string(m.Raw) != "Subject: hi\r\n\r\nx" {
		t.Fatalf("kept %q", m.Raw)
	}
}

// TestSMTPTrapLogin: AUTH LOGIN asks as Postfix asks; %u passwords work.
func TestSMTPTrapLogin(t *testing.T) {
	l := newLab(t, trap.Config{}, trap.ListenerConfig{Port: 25, Auth: true})
	c, _ := l.dial(t)
	c.cmd("EHLO x")
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, s := range []struct{ send, want string }{
		{"AUTH LOGIN", "334 VXNlcm5hbWU6"},
		{b64("admin"), "334 UGFzc3dvcmQ6"},
		{b64("admin123"), "235 2.7.0 Authentication successful"},
	} {
		if got := c.cmd("%s", s.send); got != s.want {
			t.Fatalf("%q: got %q, want %q", s.send, got, s.want)
		}
	}
	c2, _ := l.dial(t)
	c2.cmd("EHLO x")
	if got := c2.cmd("AUTH CRAM-MD5"); got != "535 5.7.8 Error: authentication failed: Invalid authentication mechanism" {
		t.Fatalf("unknown mechanism: %q", got)
	}
}

func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mail.example.test"},
		DNSNames: []string{"mail.example.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestSMTPTrapSTARTTLS: submission as Postfix runs it with
// smtpd_tls_security_level = encrypt: nothing but EHLO, NOOP and STARTTLS
// before TLS; AUTH offered only inside it; no new EHLO needed after it
// (smtpd_helo_required = no), though clients send one.
func TestSMTPTrapSTARTTLS(t *testing.T) {
	cfg := trap.Config{TLS: selfSigned(t)}
	l := newLab(t, cfg, trap.ListenerConfig{Port: 587, Auth: true, RequireTLS: true})
	c, _ := l.dial(t)
	ehlo := c.cmd("EHLO x")
	if !strings.Contains(ehlo, "250-STARTTLS") || strings.Contains(ehlo, "AUTH") {
		t.Fatalf("EHLO before TLS: %q", ehlo)
	}
	for _, cmd := range []string{"AUTH PLAIN " + plain("admin", "123456"), "MAIL FROM:<a@b>"} {
		if got := c.cmd("%s", cmd); got != "530 5.7.0 Must issue a STARTTLS command first" {
			t.Fatalf("%s before TLS: %q", cmd, got)
		}
	}
	c.startTLS(t)
	if got := c.cmd("MAIL FROM:<a@b>"); got != "250 2.1.0 Ok" {
		t.Fatalf("MAIL right after STARTTLS: %q", got)
	}
	c.cmd("RSET")
	ehlo = c.cmd("EHLO x")
	if strings.Contains(ehlo, "STARTTLS") || !strings.Contains(ehlo, "250-AUTH PLAIN LOGIN") {
		t.Fatalf("EHLO in TLS: %q", ehlo)
	}
	if got := c.cmd("STARTTLS"); got != "554 5.5.1 Error: TLS already active" {
		t.Fatalf("STARTTLS twice: %q", got)
	}
	for _, s := range []struct{ send, want string }{
		{"AUTH PLAIN " + plain("admin", "password"), "235 2.7.0 Authentication successful"},
		{"MAIL FROM:<a@b>", "250 2.1.0 Ok"},
		{"RCPT TO:<c@d>", "250 2.1.5 Ok"},
		{"DATA", "354 End data with <CR><LF>.<CR><LF>"},
	} {
		if got := c.cmd("%s", s.send); got != s.want {
			t.Fatalf("%q: got %q, want %q", s.send, got, s.want)
		}
	}
	if got := c.cmd("hello\r\n."); !queuedRE.MatchString(got) {
		t.Fatalf("queued: %q", got)
	}
	ms, _ := l.st.QuarantineList(context.Background(), 0)
	if len(ms) != 1 || !ms[0].TLS {
		t.Fatalf("quarantined over TLS: %+v", ms)
	}
}

// TestSMTPTrapImplicitTLS: port 465 speaks TLS from the first byte.
func TestSMTPTrapImplicitTLS(t *testing.T) {
	l := newLab(t, trap.Config{TLS: selfSigned(t)}, trap.ListenerConfig{Port: 465, Auth: true, ImplicitTLS: true})
	raw, err := tls.Dial("tcp", l.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := &client{t: t, c: raw, br: bufio.NewReader(raw)}
	if g := c.read(); g != "220 mail.example.test ESMTP Postfix (Debian/GNU)" {
		t.Fatalf("greeting %q", g)
	}
	if e := c.cmd("EHLO x"); strings.Contains(e, "STARTTLS") || !strings.Contains(e, "AUTH PLAIN LOGIN") {
		t.Fatalf("EHLO %q", e)
	}
	if got := c.cmd("AUTH PLAIN %s", plain("admin", "qwerty")); got != "235 2.7.0 Authentication successful" {
		t.Fatalf("AUTH %q", got)
	}
}

// TestSMTPTrapLimits: beyond its limits the trap answers like a busy
// Postfix, never with an error that gives it away.
func TestSMTPTrapLimits(t *testing.T) {
	l := newLab(t, trap.Config{MaxPerAddr: 2, MaxRecipients: 2, MaxMessages: 1}, trap.ListenerConfig{Port: 25, Auth: true})
	c, _ := l.dial(t)
	c2, _ := l.dial(t)
	c3, err := net.Dial("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	c3.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c3)
	if got := string(b); got != "421 4.7.0 mail.example.test Error: too many connections from 127.0.0.1\r\n" {
		t.Fatalf("third connection from one address: %q", got)
	}
	c.cmd("EHLO x")
	c.cmd("AUTH PLAIN %s", plain("admin", "123456"))
	c.cmd("MAIL FROM:<a@b>")
	c.cmd("RCPT TO:<1@x>")
	c.cmd("RCPT TO:<2@x>")
	if got := c.cmd("RCPT TO:<3@x>"); got != "452 4.5.3 Error: too many recipients" {
		t.Fatalf("third recipient: %q", got)
	}
	c.cmd("DATA")
	if got := c.cmd("x\r\n."); !queuedRE.MatchString(got) {
		t.Fatalf("first message: %q", got)
	}
	if got := c.cmd("MAIL FROM:<a@b>"); got != "450 4.7.1 Error: too much mail from 127.0.0.1" {
		t.Fatalf("second message: %q", got)
	}
	// A full quarantine: refused as by a full disk.
	c2.cmd("QUIT")
	l.srv.SetUsage(1 << 40)
	c4, _ := l.dial(t)
	c4.cmd("EHLO x")
	c4.cmd("AUTH PLAIN %s", plain("admin", "123456"))
	if got := c4.cmd("MAIL FROM:<a@b>"); got != "452 4.3.1 Insufficient system storage" {
		t.Fatalf("quarantine full: %q", got)
	}
}

// TestSMTPTrapHugeData: a client sending 100 MB of DATA is cut off just
// past the size limit, with Postfix's answer, not read to its end.
func TestSMTPTrapHugeData(t *testing.T) {
	l := newLab(t, trap.Config{MaxMessageBytes: 1 << 20}, trap.ListenerConfig{Port: 25, Auth: true})
	c, _ := l.dial(t)
	c.envelope()
	if r := c.cmd("DATA"); !strings.HasPrefix(r, "354") {
		t.Fatal(r)
	}
	sent := make(chan int64, 1)
	go func() {
		line := []byte(strings.Repeat("x", 998) + "\r\n")
		var n int64
		for n < 100<<20 {
			w, err := c.c.Write(line)
			n += int64(w)
			if err != nil {
				break
			}
		}
		sent <- n
	}()
	if r := c.read(); r != "552 5.3.4 Message size exceeds fixed limit" {
		t.Fatalf("reply %q", r)
	}
	if r := c.read(); r != "EOF" {
		t.Fatalf("after the cut: %q", r)
	}
	n := <-sent
	t.Logf("client sent %d bytes before the connection closed", n)
	if n >= 100<<20 {
		t.Fatalf("the whole 100 MB was read")
	}
	if l.srv.Stats().CutSize.Load() != 1 {
		t.Errorf("cut-offs counted %d", l.srv.Stats().CutSize.Load())
	}
}

// TestSMTPTrapSlowloris: a client dribbling a byte at a time is cut off
// at the session's time limit, whatever it sends.
func TestSMTPTrapSlowloris(t *testing.T) {
	l := newLab(t, trap.Config{SessionTimeout: 1500 * time.Millisecond, IdleTimeout: time.Minute}, trap.ListenerConfig{Port: 25, Auth: true})
	c, _ := l.dial(t)
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		io.Copy(io.Discard, c.c)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			took := time.Since(start)
			t.Logf("slowloris cut off after %v", took.Round(time.Millisecond))
			if took > 5*time.Second {
				t.Fatalf("cut off only after %v", took)
			}
			return
		case <-tick.C:
			c.c.Write([]byte("N"))
		case <-time.After(10 * time.Second):
			t.Fatal("slowloris never cut off")
		}
	}
}

// TestAccountsLearning: a name becomes an account only once tried from
// enough addresses; real names never do, and a login ends one.
func TestAccountsLearning(t *testing.T) {
	a := trap.NewAccounts(trap.AccountsConfig{Addresses: 2, Max: 2, TTL: time.Hour, Passwords: []string{"123456"}, RealUsers: []string{"Bob@Example.org"}, AnyAfter: 3}, nil, nil)
	try := func(user string, last byte) {
		a.Observe(event.Event{Kind: event.UnknownUser, User: user, Addr: netip.AddrFrom4([4]byte{198, 51, 100, last})})
	}
	try("info", 1)
	try("info", 1)
	if a.Count() != 0 {
		t.Fatal("one address made an account")
	}
	try("info", 2)
	try("bob", 1) // the local part of a real name
	try("bob", 2)
	try("BOB@other.example", 3)
	try("BOB@other.example", 4)
	if a.Count() != 1 {
		t.Fatalf("accounts %+v", a.List())
	}
	from := netip.MustParseAddr("203.0.113.1")
	if _, ok := a.Login("info", "nope", from); ok {
		t.Fatal("a wrong password logged in")
	}
	if acc, ok := a.Login(" INFO ", "123456", from); !ok || acc != "info" {
		t.Fatal("a common password did not log in")
	}
	// AnyAfter: the third wrong try from one address opens the door.
	for i := range 3 {
		a.Login("info", "x", from)
		_ = i
	}
	if _, ok := a.Login("info", "whatever", from); !ok {
		t.Fatal("any password after 3 tries did not log in")
	}
	// The cap: one more account at most.
	try("sales", 1)
	try("sales", 2)
	try("office", 1)
	try("office", 2)
	if a.Count() != 2 {
		t.Fatalf("cap 2, have %d", a.Count())
	}
	// info logs in for real somewhere: no longer an account.
	a.Observe(event.Event{Kind: event.AuthSuccess, User: "info@example.org", Addr: from})
	if _, ok := a.Login("info", "123456", from); ok || a.Count() != 1 {
		t.Fatalf("a real name stayed a trap account: %+v", a.List())
	}
}

func fuzzUnknown(user string) event.Event {
	return event.Event{Kind: event.UnknownUser, User: user, Addr: netip.MustParseAddr("192.0.2.1")}
}

// TestSMTPTrapFailureDelay: a wrong password waits as long as Dovecot
// makes it wait; a right one does not.
func TestSMTPTrapFailureDelay(t *testing.T) {
	l := newLab(t, trap.Config{FailureDelay: 300 * time.Millisecond}, trap.ListenerConfig{Port: 25, Auth: true})
	c, _ := l.dial(t)
	c.cmd("EHLO x")
	start := time.Now()
	if got := c.cmd("AUTH PLAIN %s", plain("admin", "wrong")); !strings.HasPrefix(got, "535 ") {
		t.Fatal(got)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("a wrong password answered after %v, before the delay", took)
	}
	if got := c.cmd("AUTH PLAIN %s", plain("admin", "123456")); !strings.HasPrefix(got, "235 ") {
		t.Fatal(got)
	}
}

// writeCert writes a self-signed certificate and its key to dir as
// cert.pem and key.pem, where a real server reads them, and returns them
// as the decoy's TLS configuration and the two paths.
func writeCert(t *testing.T, dir string) (*tls.Config, string, string) {
	t.Helper()
	cfg := selfSigned(t)
	kd, err := x509.MarshalPKCS8PrivateKey(cfg.Certificates[0].PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for name, b := range map[string]*pem.Block{cert: {Type: "CERTIFICATE", Bytes: cfg.Certificates[0].Certificate[0]}, key: {Type: "PRIVATE KEY", Bytes: kd}} {
		if err := os.WriteFile(name, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, cert, key
}
