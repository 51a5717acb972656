package trap_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/trap"
)

var update = flag.Bool("update", false, "rewrite testdata/imap-dovecot.txt from a real Dovecot (root, dovecot on PATH)")

// testdata/imap-dovecot.txt holds IMAP sessions as Debian 12's Dovecot
// 2.3.19 answers them with its default settings (mbox, no mail plugins,
// auth_mechanisms = plain, ssl = yes), user admin, password 123456.
//
//	== name [remote]   a session; remote: the client is not on the host,
//	                   so Dovecot's disable_plaintext_auth = yes applies
//	                   (the decoy's ListenerConfig.RequireTLS)
//	C: line            sent (CRLF added); "C: @TLS" is the TLS handshake
//	                   after STARTTLS
//	S: line            Dovecot's answer, and the decoy's
//	S~ line            the decoy's answer where it differs on purpose
//	                   (it stores nothing); from there on to the end of
//	                   the session Dovecot's state differs, so
//	# dovecot: line    records what Dovecot said instead
//
// A line with spaces at an end or control bytes is written Go-quoted.
// Numbers that differ from one mailbox to the next (UIDVALIDITY, X-GUID)
// and Dovecot's command timings are compared as patterns.
const imapGolden = "testdata/imap-dovecot.txt"

type imapSession struct {
	name   string
	remote bool
	steps  []imapStep
}

type imapStep struct {
	send    string
	want    []string // S: lines
	decoy   []string // S~ lines
	dovecot []string // # dovecot: lines
}

func (s imapStep) deliberate() bool { return len(s.decoy) > 0 }

func parseIMAPGolden(t *testing.T) []imapSession {
	t.Helper()
	b, err := os.ReadFile(imapGolden)
	if err != nil {
		t.Fatal(err)
	}
	var out []imapSession
	var cur *imapSession
	for n, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		text := func(s string) string {
			if strings.HasPrefix(s, `"`) {
				u, err := strconv.Unquote(s)
				if err != nil {
					t.Fatalf("%s:%d: %v", imapGolden, n+1, err)
				}
				return u
			}
			return s
		}
		last := func() *imapStep {
			if cur == nil {
				t.Fatalf("%s:%d: outside a session", imapGolden, n+1)
			}
			if len(cur.steps) == 0 {
				cur.steps = append(cur.steps, imapStep{}) // the greeting
			}
			return &cur.steps[len(cur.steps)-1]
		}
		switch {
		case line == "" || (strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "# dovecot: ")):
		case strings.HasPrefix(line, "== "):
			name, remote := strings.CutSuffix(line[3:], " [remote]")
			out = append(out, imapSession{name: name, remote: remote, steps: []imapStep{{}}})
			cur = &out[len(out)-1]
		case strings.HasPrefix(line, "C: "):
			last()
			cur.steps = append(cur.steps, imapStep{send: text(line[3:])})
		case strings.HasPrefix(line, "S: "):
			s := last()
			s.want = append(s.want, text(line[3:]))
		case strings.HasPrefix(line, "S~ "):
			s := last()
			s.decoy = append(s.decoy, text(line[3:]))
		case strings.HasPrefix(line, "# dovecot: "):
			s := last()
			s.dovecot = append(s.dovecot, text(line[11:]))
		default:
			t.Fatalf("%s:%d: %q", imapGolden, n+1, line)
		}
	}
	return out
}

// goldenLine writes a line as the golden file has it.
func goldenLine(prefix, s string) string {
	if s == "" || s != strings.TrimSpace(s) || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) || strings.HasPrefix(s, `"`) {
		s = strconv.Quote(s)
	}
	return prefix + s + "\n"
}

// imapVarying are what differs between two servers that answer alike.
var imapVarying = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`UIDVALIDITY \d+`), "UIDVALIDITY 1"},
	{regexp.MustCompile(`X-GUID [0-9a-f]+`), "X-GUID 0"},
	{regexp.MustCompile(` \(\d+\.\d{3} \+ \d+\.\d{3}( \+ \d+\.\d{3})? secs\)\.$`), " (0.001 + 0.000 secs)."},
}

func normalizeIMAP(s string) string {
	for _, v := range imapVarying {
		s = v.re.ReplaceAllString(s, v.repl)
	}
	return s
}

// imapTalk runs a session's steps on c and returns what the server said
// to each. want(i) is how many lines step i gets; -1: find out, reading
// up to a tagged reply, a continuation request or the end ("<EOF>"), or
// until the server says nothing for a while (a non-synchronizing
// literal's line gets no answer).
func imapTalk(t *testing.T, c net.Conn, steps []imapStep, want func(i int) int) [][]string {
	t.Helper()
	br := bufio.NewReader(c)
	var got [][]string
	for i, st := range steps {
		if i > 0 {
			if st.send == "@TLS" {
				tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
				if err := tc.Handshake(); err != nil {
					t.Fatalf("TLS handshake: %v", err)
				}
				c, br = tc, bufio.NewReader(tc)
				got = append(got, nil)
				continue
			}
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, st.send+"\r\n"); err != nil {
				got = append(got, []string{"<EOF>"})
				continue
			}
		}
		n := want(i)
		var lines []string
		for n != 0 && n != len(lines) {
			wait := 5 * time.Second
			if n < 0 && (strings.HasSuffix(st.send, "+}") || len(lines) > 0 && lines[len(lines)-1] == "<EOF>") {
				break
			} else if n < 0 {
				wait = 3 * time.Second
			}
			c.SetReadDeadline(time.Now().Add(wait))
			line, err := br.ReadString('\n')
			if errors.Is(err, os.ErrDeadlineExceeded) && line == "" && n < 0 {
				break
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				lines = append(lines, "<silence>")
				break
			}
			if err != nil {
				lines = append(lines, "<EOF>")
				continue
			}
			lines = append(lines, strings.TrimRight(line, "\r\n"))
			if n < 0 && !strings.HasPrefix(line, "* ") {
				break // tagged, or a continuation request
			}
		}
		got = append(got, lines)
	}
	return got
}

// imapDecoy starts the IMAP face as on a Debian host with a certificate.
func imapDecoy(t *testing.T, remote bool) string {
	t.Helper()
	l := newLab(t, trap.Config{IMAPBanner: "Dovecot (Debian) ready.", TLS: selfSigned(t)}, trap.ListenerConfig{Port: 587, Auth: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.srv.ServeIMAP(ln, trap.ListenerConfig{Port: 143, RequireTLS: remote}) }()
	t.Cleanup(func() { l.srv.Close(); <-done })
	return ln.Addr().String()
}

// TestIMAPDovecotAnswers: the decoy says what Dovecot says, session by
// session (testdata/imap-dovecot.txt).
func TestIMAPDovecotAnswers(t *testing.T) {
	for _, s := range parseIMAPGolden(t) {
		t.Run(s.name, func(t *testing.T) {
			c, err := net.Dial("tcp", imapDecoy(t, s.remote))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got := imapTalk(t, c, s.steps, func(i int) int {
				if s.steps[i].deliberate() {
					return len(s.steps[i].decoy)
				}
				return len(s.steps[i].want)
			})
			for i, st := range s.steps {
				want := st.want
				if st.deliberate() {
					want = st.decoy
				}
				if g, w := normalizeIMAP(strings.Join(got[i], "\n")), normalizeIMAP(strings.Join(want, "\n")); g != w {
					t.Errorf("after %q:\n got %s\nwant %s", st.send, strings.ReplaceAll(g, "\n", "\n     "), strings.ReplaceAll(w, "\n", "\n     "))
				}
			}
		})
	}
}

// TestIMAPDovecotParity runs the same sessions against a real Dovecot,
// started here as Debian's with its defaults, and checks that it still
// answers as the golden file says (-update rewrites it from Dovecot's
// answers). It needs root and Debian's dovecot-imapd.
func TestIMAPDovecotParity(t *testing.T) {
	addr := startDovecot(t)
	sessions := parseIMAPGolden(t)
	var out bytes.Buffer
	if *update {
		b, _ := os.ReadFile(imapGolden)
		head, _, _ := strings.Cut(string(b), "\n== ")
		out.WriteString(head + "\n")
	}
	for _, s := range sessions {
		// Local sessions come from the server's own address, which
		// Dovecot takes as secure; remote ones from another.
		from := "127.0.0.1"
		if s.remote {
			from = "127.0.0.2"
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		got := imapTalk(t, c, s.steps, func(i int) int {
			if *update {
				return -1
			}
			return len(s.steps[i].want)
		})
		c.Close()
		diverged := false
		for i, st := range s.steps {
			diverged = diverged || st.deliberate()
			if *update {
				writeStep(&out, s, i, st, got[i], diverged)
				continue
			}
			if diverged {
				continue
			}
			if g, w := normalizeIMAP(strings.Join(got[i], "\n")), normalizeIMAP(strings.Join(st.want, "\n")); g != w {
				t.Errorf("%s, after %q: Dovecot says\n  %s\nthe golden file\n  %s", s.name, st.send, strings.ReplaceAll(g, "\n", "\n  "), strings.ReplaceAll(w, "\n", "\n  "))
			}
		}
	}
	if *update {
		if err := os.WriteFile(imapGolden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeStep writes a step to the golden file: Dovecot's answer, or where
// the decoy differs on purpose its own, with Dovecot's as a comment.
func writeStep(out *bytes.Buffer, s imapSession, i int, st imapStep, got []string, diverged bool) {
	if i == 0 {
		name := "== " + s.name
		if s.remote {
			name += " [remote]"
		}
		out.WriteString(name + "\n")
	} else {
		out.WriteString(goldenLine("C: ", st.send))
	}
	for _, l := range got {
		l = normalizeIMAP(l)
		if diverged {
			out.WriteString(goldenLine("# dovecot: ", l))
		} else {
			out.WriteString(goldenLine("S: ", l))
		}
	}
	if diverged {
		for _, l := range st.decoy {
			out.WriteString(goldenLine("S~ ", l))
		}
	}
	if i == len(s.steps)-1 {
		out.WriteString("\n")
	}
}

// startDovecot runs a throwaway Dovecot on a loopback port, as Debian's
// dovecot-imapd has it but for its files, a self-signed certificate, one
// user in a passwd-file, and no delay after a failed login.
func startDovecot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to run Dovecot with its own users (CI runs it as root)")
	}
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		t.Skip("skipping: needs dovecot on PATH (Debian's dovecot-core and dovecot-imapd)")
	}
	for _, u := range []string{"dovecot", "dovenull", "nobody"} {
		if _, err := user.Lookup(u); err != nil {
			t.Skipf("skipping: needs the %s user Debian's dovecot-core makes", u)
		}
	}
	if _, err := os.Stat("/usr/share/dovecot/dh.pem"); err != nil {
		t.Skip("skipping: needs Debian's /usr/share/dovecot/dh.pem")
	}
	if out, _ := exec.Command(bin, "--version").Output(); !strings.HasPrefix(string(out), "2.3.") {
		t.Skipf("skipping: the golden file is Dovecot 2.3's answers, this is %q", strings.TrimSpace(string(out)))
	}
	// Its processes run as nobody and dovenull: the directory must be
	// open to them.
	dir, err := os.MkdirTemp("", "rampart-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"", "home/admin", "spool"} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"home/admin", "spool"} {
		if err := os.Chown(filepath.Join(dir, d), 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	writeCert(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	users := fmt.Sprintf("admin:{PLAIN}123456:65534:65534::%s/home/admin::\n", dir)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl_cert = <%[1]s/cert.pem
ssl_key = <%[1]s/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
mail_location = mbox:~/mail:INBOX=%[1]s/spool/%%u
# Debian's 15-mailboxes.conf: the special-use mailboxes (not made
# until asked for) make Dovecot offer SPECIAL-USE.
namespace inbox {
  inbox = yes
  mailbox Drafts {
    special_use = \Drafts
  }
  mailbox Junk {
    special_use = \Junk
  }
  mailbox Trash {
    special_use = \Trash
  }
  mailbox Sent {
    special_use = \Sent
  }
  mailbox "Sent Messages" {
    special_use = \Sent
  }
}
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
    port = %[2]d
  }
  inet_listener imaps {
    port = 0
  }
}
# Dovecot's delays after a failed login (2s, and a penalty per address)
# only slow the test down.
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`, dir, port)
	for name, s := range map[string]string{"users": users, "dovecot.conf": conf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-F", "-c", filepath.Join(dir, "dovecot.conf"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Logf("dovecot output:\n%s\nlog:\n%s", out.String(), log)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case <-exited:
			t.Fatalf("dovecot exited: %s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot did not listen on %s within 10s", addr)
		}
	}
}
