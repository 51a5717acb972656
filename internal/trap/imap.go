package trap

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// ServeIMAP runs the IMAP face on l until Close: a credential checker
// that logs in over IMAP sees a trap account "work" (LOGIN or
// AUTHENTICATE PLAIN with a trap credential), with an empty INBOX and
// nothing else: it cannot store, create or append anything.
// lc.ImplicitTLS makes it IMAPS; otherwise it offers STARTTLS when the
// trap has a certificate.
func (s *Server) ServeIMAP(l net.Listener, lc ListenerConfig) error {
	opts := &imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &imapSession{srv: s, lc: lc, conn: c}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		Logger:       log.New(io.Discard, "", 0),
		InsecureAuth: true, // as the real server is set, which the trap cannot know; TLS is offered
	}
	if !lc.ImplicitTLS {
		opts.TLSConfig = s.cfg.TLS
	}
	srv := imapserver.New(opts)
	if !s.register(srv) {
		return nil
	}
	err := srv.Serve(&listener{Listener: l, srv: s, cfg: lc, imap: true})
	if errors.Is(err, net.ErrClosed) || s.isClosed() {
		return nil
	}
	return err
}

// imapConn is an IMAP connection: TLS from the start for IMAPS, the
// session's deadline, and the greeting in the real server's words.
type imapConn struct {
	net.Conn
	end     time.Time
	banner  string
	mu      sync.Mutex
	greeted bool
}

func newIMAPConn(raw net.Conn, l *listener) *imapConn {
	c := &imapConn{Conn: raw, end: time.Now().Add(l.srv.cfg.SessionTimeout), banner: l.srv.cfg.IMAPBanner}
	if l.cfg.ImplicitTLS && l.srv.cfg.TLS != nil {
		c.Conn = tls.Server(raw, l.srv.cfg.TLS)
	}
	raw.SetDeadline(c.end)
	return c
}

func (c *imapConn) clamp(t time.Time) time.Time {
	if t.IsZero() || t.After(c.end) {
		return c.end
	}
	return t
}

func (c *imapConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *imapConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *imapConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.clamp(t)) }

// Write puts the real server's words in the greeting, the first line
// written: "* OK [CAPABILITY …] IMAP server ready" ends as the banner.
func (c *imapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	first := !c.greeted
	c.greeted = true
	c.mu.Unlock()
	if first && c.banner != "" {
		if i := bytes.Index(p, []byte("] IMAP server ready\r\n")); i >= 0 {
			out := append(append([]byte{}, p[:i+2]...), c.banner+"\r\n"...)
			if _, err := c.Conn.Write(out); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// imapSession is one IMAP session: before LOGIN only Login is called; after
// it, the in-memory user with its empty INBOX answers, and everything that
// would store something is refused.
type imapSession struct {
	*imapmemserver.UserSession
	srv  *Server
	lc   ListenerConfig
	conn *imapserver.Conn
}

// imapAuthFailed is Dovecot's answer to a wrong password.
var imapAuthFailed = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Authentication failed."}

// imapCannot refuses what would store something.
var imapCannot = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota, Text: "Quota exceeded (mailbox for user is full)"}

func (s *imapSession) Login(user, pass string) error {
	addr := remoteAddr(s.conn.NetConn())
	acc, ok := "", false
	if len(user) <= 256 && len(pass) <= 256 {
		acc, ok = s.srv.acc.Login(user, pass, addr)
	}
	if !ok {
		s.srv.stats.FailedLogins.Add(1)
		s.srv.failureDelay()
		return imapAuthFailed
	}
	s.srv.stats.Logins.Add(1)
	s.srv.log.Info("trap: login", "addr", addr.String(), "user", acc, "port", s.lc.Port, "protocol", "imap")
	u := imapmemserver.NewUser(user, pass)
	if err := u.Create("INBOX", nil); err != nil {
		return err
	}
	s.UserSession = imapmemserver.NewUserSession(u)
	return nil
}

func (s *imapSession) Close() error {
	if s.UserSession != nil {
		return s.UserSession.Close()
	}
	return nil
}

func (s *imapSession) Create(string, *imap.CreateOptions) error         { return imapCannot }
func (s *imapSession) Rename(string, string, *imap.RenameOptions) error { return imapCannot }
func (s *imapSession) Delete(mailbox string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Mailbox doesn't exist: " + strings.TrimSpace(mailbox)}
}
func (s *imapSession) Append(string, imap.LiteralReader, *imap.AppendOptions) (*imap.AppendData, error) {
	return nil, imapCannot
}
