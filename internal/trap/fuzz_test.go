package trap_test

import (
	"bufio"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/trap"
)

// pipeListener hands the server the far ends of in-memory pipes.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }

var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

// goSMTPWords are go-smtp's own replies: none may reach a client.
var goSMTPWords = []string{"Roger", "I'll make sure", "Service Ready", "Go ahead", "Hello ", "successfully done nothing", "Session reset", "Please introduce",
	"Unknown MAIL FROM argument", "Unknown RCPT TO argument", "during message transfer", "Domain/address argument", "transaction failed",
	"sasl:", "Too long line", "line too long", "Malformed", "Missing", "Bad command", "Bad parameter syntax", "502 5.5.2", "i/o timeout"}

// FuzzSMTPSession sends arbitrary command sequences to the trap: it must
// never crash or hang, every reply must be a well-formed SMTP reply, and
// none may give away the library behind the face.
func FuzzSMTPSession(f *testing.F) {
	for _, seed := range []string{
		"EHLO x\r\nAUTH PLAIN AGFkbWluADEyMzQ1Ng==\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
		"HELO x\r\nMAIL FROM:<a@b> SIZE=999999999999\r\nRCPT TO:<c@d> NOTIFY=NEVER\r\nRSET\r\nVRFY root\r\nNOOP\r\n",
		"EHLO x\r\nAUTH LOGIN\r\nYWRtaW4=\r\nMTIzNDU2\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\nBDAT 5 LAST\r\nhello",
		"STARTTLS\r\nEHLO\r\n\r\n\r\nAUTH\r\nAUTH PLAIN *\r\nAUTH LOGIN\r\n*\r\nDATA\r\n.\r\n",
		"EHLO x\r\nAUTH PLAIN AGFkbWluADEyMzQ1Ng==\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\nDATA\r\n" + strings.Repeat("x", 3000) + "\r\n.\r\n",
		"\x00\xff\r\nMAIL\r\nRCPT\r\nXCLIENT ADDR=1.2.3.4\r\n",
		"EHLO x\r\nAUTH PLAIN =\r\nAUTH LOGIN\r\n=\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\nRCPT TO:<c@d> FOO=1\r\nBDAT x\r\n",
		"EHLO x\r\nAUTH PLAIN AGFkbWluADEyMzQ1Ng==\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + strings.Repeat("y", 5000) + "\nhi\n.\n",
	} {
		f.Add([]byte(seed))
	}
	acc := trap.NewAccounts(trap.AccountsConfig{Addresses: 1, Max: 10, TTL: time.Hour, Passwords: trap.DefaultPasswords()}, nil, nil)
	acc.Observe(fuzzUnknown("admin"))
	srv := trap.NewServer(trap.Config{Hostname: "mail.example.test", MaxMessageBytes: 2048, SessionTimeout: 5 * time.Second}, acc, nil, nil)
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	go srv.Serve(l, trap.ListenerConfig{Port: 587, Auth: true})
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, input []byte) {
		replies := pipeSession(l, input, "\r\n.\r\nQUIT\r\n")
		for _, r := range replies {
			if !replyLine.MatchString(r) {
				t.Fatalf("malformed reply %q to %q", r, input)
			}
			for _, w := range goSMTPWords {
				if strings.Contains(r, w) && !strings.Contains(string(input), w) {
					t.Fatalf("reply %q gives the library away (input %q)", r, input)
				}
			}
		}
	})
}

// pipeSession writes input and then end to a new connection of l, and
// returns the lines the server wrote until it hung up.
func pipeSession(l *pipeListener, input []byte, end string) []string {
	client, server := net.Pipe()
	l.conns <- server
	client.SetDeadline(time.Now().Add(5 * time.Second))
	var replies []string
	read := make(chan struct{})
	go func() {
		defer close(read)
		br := bufio.NewReader(client)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			replies = append(replies, strings.TrimRight(line, "\r\n"))
		}
	}()
	client.Write(input)
	client.Write([]byte(end))
	client.Close()
	<-read
	return replies
}
