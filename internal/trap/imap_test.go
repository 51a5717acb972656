package trap_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/trap"
)

// TestIMAPFace: a credential checker logging in over IMAP sees a trap
// account work, with an empty INBOX, and a wrong password refused as
// Dovecot refuses it; nothing can be stored.
func TestIMAPFace(t *testing.T) {
	l := newLab(t, trap.Config{IMAPBanner: "Dovecot (Debian) ready."}, trap.ListenerConfig{Port: 587, Auth: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.srv.ServeIMAP(ln, trap.ListenerConfig{Port: 143}) }()
	t.Cleanup(func() { l.srv.Close(); <-done })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	greeting, _ := br.ReadString('\n')
	if !strings.HasPrefix(greeting, "* OK [CAPABILITY IMAP4rev1") || !strings.HasSuffix(greeting, "] Dovecot (Debian) ready.\r\n") {
		t.Fatalf("greeting %q", greeting)
	}
	// cmd sends a tagged command and returns the untagged lines and the tagged answer.
	n := 0
	cmd := func(format string, args ...any) (untagged []string, done string) {
		n++
		tag := fmt.Sprintf("a%d", n)
		fmt.Fprintf(c, tag+" "+format+"\r\n", args...)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			line = strings.TrimRight(line, "\r\n")
			if rest, ok := strings.CutPrefix(line, tag+" "); ok {
				return untagged, rest
			}
			untagged = append(untagged, line)
		}
	}
	if _, ans := cmd(`LOGIN "admin" "wrong"`); ans != "NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Fatalf("wrong password: %q", ans)
	}
	if _, ans := cmd(`LOGIN "alice@example.test" "123456"`); ans != "NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Fatalf("a real user: %q", ans)
	}
	if _, ans := cmd(`LOGIN "admin" "letmein"`); !strings.HasPrefix(ans, "OK ") {
		t.Fatalf("trap credential: %q", ans)
	}
	un, ans := cmd("SELECT INBOX")
	if !strings.HasPrefix(ans, "OK ") || !strings.Contains(strings.Join(un, "\n"), "* 0 EXISTS") {
		t.Fatalf("SELECT: %q %q", un, ans)
	}
	if _, ans := cmd("CREATE Stash"); !strings.HasPrefix(ans, "NO ") {
		t.Fatalf("CREATE: %q", ans)
	}
	if _, ans := cmd("LOGOUT"); !strings.HasPrefix(ans, "OK") {
		t.Fatalf("LOGOUT: %q", ans)
	}
	if st := l.srv.Stats(); st.Logins.Load() != 1 || st.FailedLogins.Load() != 2 {
		t.Errorf("logins %d, failed %d", st.Logins.Load(), st.FailedLogins.Load())
	}
}

// TestIMAPIdleStillHere: during IDLE the decoy says it is still there
// every imap_idle_notify_interval, as Dovecot does.
func TestIMAPIdleStillHere(t *testing.T) {
	defer trap.SetIMAPIdleNotify(300 * time.Millisecond)()
	c, err := net.Dial("tcp", imapDecoy(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := imapTalk(t, c, []imapStep{{}, {send: "a LOGIN admin 123456"}, {send: "b IDLE"}}, func(int) int { return 1 })
	if got[2][0] != "+ idling" {
		t.Fatalf("IDLE: %q", got[2])
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if line != "* OK Still here\r\n" {
		t.Fatalf("during IDLE: %q %v", line, err)
	}
}

// TestIMAPLoginTimeout: a client that does not log in in time is sent
// away as imap-login sends it away.
func TestIMAPLoginTimeout(t *testing.T) {
	defer trap.SetIMAPLoginTimeout(300 * time.Millisecond)()
	c, err := net.Dial("tcp", imapDecoy(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := imapTalk(t, c, []imapStep{{}, {send: "a NOOP"}}, func(int) int { return 1 })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if got[1][0] != "a OK NOOP completed." || line != "* BYE Disconnected for inactivity.\r\n" {
		t.Fatalf("%q, then %q %v", got, line, err)
	}
}
