package trap_test

import (
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/trap"
)

// imapLine is an IMAP server's line: untagged, a continuation request,
// or a tag (Dovecot takes DEL in one) and a status.
var imapLine = regexp.MustCompile(`^(\* |\+ |[!-\x7f]+ (OK|NO|BAD|BYE) )|^\+$`)

// goIMAPWords are go-imap's own words: none may reach a client.
var goIMAPWords = []string{"IMAP server ready", "CLIENTBUG", "Syntax error", "SERVERBUG", "Internal server error",
	"Ready for literal", "is now closed", "Permanent flags", "TLS is required", "LITERAL-", "UTF8=ACCEPT",
	"not supported", "Unknown STATUS data item", "No such mailbox", "in command", "in search-key", "in list-",
	"only valid in", "expected DONE", "PREAUTH", "LOGOUT completed", "SELECT completed", "LIST completed"}

// FuzzIMAPSession sends arbitrary input to the IMAP face, before and
// after login: it must never crash or hang, every line it writes must be
// an IMAP response, and none may give away the library behind it.
func FuzzIMAPSession(f *testing.F) {
	for _, seed := range []string{
		"a CAPABILITY\r\nb LOGIN admin 123456\r\nc SELECT INBOX\r\nd FETCH 1:* FLAGS\r\ne UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM)])\r\n",
		"a LOGIN {5}\r\nadmin {6+}\r\n123456\r\nb LIST \"\" \"*\" RETURN (STATUS (MESSAGES))\r\nc LSUB \"\" *\r\nd IDLE\r\nDONE\r\n",
		"a AUTHENTICATE PLAIN\r\nAGFkbWluADEyMzQ1Ng==\r\nb APPEND INBOX (\\Seen) {10}\r\n0123456789\r\nc APPEND x {3+}\r\nabc\r\n",
		"\r\n \r\na{ NOOP\r\n* x\r\n+ y\r\nLOGIN a b\r\na LOGIN \"x\\\"y\" {99999}\r\n",
		"a STARTTLS\r\nb ID (\"name\" NIL)\r\nc ENABLE CONDSTORE\r\nd AUTHENTICATE PLAIN !!!\r\ne AUTHENTICATE PLAIN =\r\nf AUTHENTICATE X\r\n",
		"a LOGIN admin 123456\r\nb SEARCH OR (FROM x) NOT SINCE 1-Jan-2020 1:*\r\nc SEARCH RETURN (SAVE) ALL\r\nd UID SEARCH $\r\ne SORT (DATE) UTF-8 ALL\r\n",
		"a LOGIN admin 123456\r\nb STATUS INBOX (MESSAGES UIDNEXT X-GUID)\r\nc SELECT INBOX (CONDSTORE)\r\nd UID STORE 1:*, +FLAGS (\\Seen)\r\ne UID MOVE 1 x\r\nf UID EXPUNGE 1\r\ng CLOSE\r\n",
		"a LOGIN admin 123456\r\n" + strings.Repeat("b NOOP (((((\r\n", 25) + "c NOOP\r\n",
		"a LOGIN admin 123456\r\nb CREATE {3}\r\nx\x00y\r\nc RENAME INBOX y\r\nd DELETE INBOX\r\ne APPEND INBOX {4294967296+}\r\n",
		"a LOGIN admin 123456\r\nb NOOP " + strings.Repeat("x", 70000) + "\r\nc XLIST \"\" %\r\nd NAMESPACE\r\ne UNSELECT\r\n",
		"a LOGIN admin 123456\r\n\xf1" + strings.Repeat("x", 70000) + "\r\nb" + strings.Repeat("y", 70000) + "\r\nc NOOP\r\n",
	} {
		f.Add([]byte(seed))
	}
	acc := trap.NewAccounts(trap.AccountsConfig{Addresses: 1, Max: 10, TTL: time.Hour, Passwords: trap.DefaultPasswords()}, nil, nil)
	acc.Observe(fuzzUnknown("admin"))
	srv := trap.NewServer(trap.Config{Hostname: "mail.example.test", SessionTimeout: 5 * time.Second}, acc, nil, nil)
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	go srv.ServeIMAP(l, trap.ListenerConfig{Port: 143})
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, input []byte) {
		replies := pipeSession(l, input, "\r\nz LOGOUT\r\n")
		for _, r := range replies {
			if !imapLine.MatchString(r) {
				t.Fatalf("malformed line %q to %q", r, input)
			}
			for _, w := range goIMAPWords {
				if strings.Contains(r, w) && !strings.Contains(string(input), w) {
					t.Fatalf("line %q gives the library away (input %q)", r, input)
				}
			}
		}
	})
}
