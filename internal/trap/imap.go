package trap

import (
	"bufio"
	"crypto/tls"
	"errors"
	"hash/fnv"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// ServeIMAP runs the IMAP face on l until Close: a credential checker
// that logs in over IMAP sees a trap account "work" (LOGIN or
// AUTHENTICATE PLAIN with a trap credential), with an empty INBOX and
// nothing else: it cannot store, create or append anything.
// lc.ImplicitTLS makes it IMAPS; otherwise it offers STARTTLS when the
// trap has a certificate, and lc.RequireTLS refuses logins before it as
// Dovecot's disable_plaintext_auth = yes does.
//
// The face answers in the words of Debian 12's Dovecot 2.3.19 with its
// default settings (testdata/imap-dovecot.txt holds the sessions). Until
// the client logs in it is all the decoy's own (imap_login.go): go-imap
// has no hook for what Dovecot's imap-login says before that. After it,
// go-imap's imapserver parses the commands it knows and keeps the
// selected state, and imapConn (imap_front.go) puts its answers in
// Dovecot's words.
func (s *Server) ServeIMAP(l net.Listener, lc ListenerConfig) error {
	opts := &imapserver.Options{
		NewSession: s.newIMAPSession,
		// What the library parses and checks by; the client never sees
		// its capability list (imapConn answers CAPABILITY itself).
		Caps:   imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapMove: {}, imap.CapLiteralPlus: {}},
		Logger: log.New(io.Discard, "", 0),
		// Logins and STARTTLS happen before the library sees the
		// connection.
		InsecureAuth: true,
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

// newIMAPSession talks with the client until it logs in, then hands the
// library an authenticated session (PREAUTH, whose greeting imapConn
// drops: the client has had its "Logged in" already).
func (s *Server) newIMAPSession(ic *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	a, _ := ic.NetConn().(*admitted)
	var c *imapConn
	if a != nil {
		c, _ = a.Conn.(*imapConn)
	}
	if c == nil {
		return nil, nil, errors.New("trap: not a decoy IMAP connection")
	}
	if err := c.preLogin(); err != nil {
		c.hangUp()
		// A BYE, which the library writes to nobody (hangUp) and does
		// not log.
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "gone"}
	}
	return &imapSession{c: c}, &imapserver.GreetingData{PreAuth: true}, nil
}

// imapConn is an IMAP connection: TLS from the start for IMAPS or after
// STARTTLS, the session's deadline, and everything said to the client.
type imapConn struct {
	net.Conn // the transport: the socket, or TLS over it
	srv      *Server
	lc       ListenerConfig
	end      time.Time
	banner   string
	br       *bufio.Reader

	wmu  sync.Mutex // the client's side of the connection: writes and dead
	dead bool       // hung up: the library's writes go nowhere

	// Before login (imap_login.go).
	tls       bool // TLS is on
	starttls  bool // by STARTTLS
	capsAsked bool // CAPABILITY asked in the clear: the login's capabilities go untagged
	bad       int  // invalid commands in a row

	// After it (imap_front.go).
	user       string // the trap account
	in         []byte // a command read for the library
	cur        imapCmd
	idle       bool   // the next line ends IDLE
	selected   bool   // INBOX is selected, as the library has it
	subscribed bool   // INBOX is subscribed (this session only)
	out        []byte // a partial line written by the library
	litOut     int    // bytes of a literal the library is writing
	greeted    bool   // the library's greeting was dropped
}

func newIMAPConn(raw net.Conn, l *listener) *imapConn {
	c := &imapConn{Conn: raw, srv: l.srv, lc: l.cfg, end: time.Now().Add(l.srv.cfg.SessionTimeout), banner: l.srv.cfg.IMAPBanner}
	if c.banner == "" {
		c.banner = "Dovecot (Debian) ready."
	}
	if l.cfg.ImplicitTLS && l.srv.cfg.TLS != nil {
		c.Conn = tls.Server(raw, l.srv.cfg.TLS)
		c.tls = true
	}
	c.br = bufio.NewReader(c.Conn)
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

// send writes lines to the client.
func (c *imapConn) send(lines ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sendLocked(lines...)
}

func (c *imapConn) sendLocked(lines ...string) error {
	if c.dead {
		return net.ErrClosed
	}
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), '\r', '\n')
	}
	_, err := c.Conn.Write(b)
	return err
}

// Close closes the connection; what the library still writes is lost.
// The transport is read under the lock: STARTTLS replaces it.
func (c *imapConn) Close() error {
	c.wmu.Lock()
	c.dead = true
	conn := c.Conn
	c.wmu.Unlock()
	return conn.Close()
}

func (c *imapConn) hangUp() { c.Close() }

// bye says goodbye in Dovecot's words and hangs up.
func (c *imapConn) bye(text string) error {
	c.send("* BYE " + text)
	c.hangUp()
	return io.EOF
}

// login checks a credential as the SMTP face does and reports the trap
// account, waiting Dovecot's auth_failure_delay after a wrong one.
func (c *imapConn) login(user, pass string) (string, bool) {
	s := c.srv
	addr := remoteAddr(c.Conn)
	acc, ok := "", false
	if len(user) <= 256 && len(pass) <= 256 {
		acc, ok = s.acc.Login(user, pass, addr)
	}
	if !ok {
		s.stats.FailedLogins.Add(1)
		s.failureDelay()
		return "", false
	}
	s.stats.Logins.Add(1)
	s.log.Info("trap: login", "addr", addr.String(), "user", acc, "port", c.lc.Port, "protocol", "imap")
	return acc, true
}

// uidValidity is the trap account's INBOX's UIDVALIDITY: Dovecot's is the
// time the mailbox was made, so a time in 2020-2022 that stays the same
// for the account from one session to the next.
func (c *imapConn) uidValidity() uint32 {
	h := fnv.New32a()
	h.Write([]byte(c.user))
	return 1577836800 + h.Sum32()%(3*365*86400)
}

// guid is the INBOX's X-GUID, 32 hex digits that stay the same for the
// account.
func (c *imapConn) guid() string {
	h := fnv.New128a()
	h.Write([]byte("guid:" + c.user))
	const hex = "0123456789abcdef"
	var b strings.Builder
	for _, x := range h.Sum(nil) {
		b.WriteByte(hex[x>>4])
		b.WriteByte(hex[x&15])
	}
	return b.String()
}

// isInbox reports whether a mailbox name is INBOX, the only mailbox
// there is (its name is case-insensitive).
func isInbox(name string) bool { return strings.EqualFold(name, "INBOX") }

// The answers about mailboxes, in Dovecot's words. Nothing is ever
// created or stored: what would store something fails as a full disk
// quota makes it fail (EDQUOT: Dovecot says "Not enough disk quota"
// without its quota plugin, which is off on Debian and would show in the
// capabilities).
var (
	imapNoQuota  = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota, Text: "Not enough disk quota"}
	imapNoDelete = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "INBOX can't be deleted"}
)

// noMailbox is Dovecot's "no such mailbox"; code is "" or NONEXISTENT
// (DELETE, RENAME) or TRYCREATE (APPEND) as Dovecot has it.
func noMailbox(name string, code imap.ResponseCode) *imap.Error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: "Mailbox doesn't exist: " + name}
}

// imapSession is the library's session after login: one empty INBOX.
type imapSession struct {
	c *imapConn
}

func (s *imapSession) Close() error { return nil }

// Login is never called: the client logs in before the library has the
// connection.
func (s *imapSession) Login(string, string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Authentication failed."}
}

func (s *imapSession) Select(name string, _ *imap.SelectOptions) (*imap.SelectData, error) {
	if !isInbox(name) {
		return nil, noMailbox(name, "")
	}
	return &imap.SelectData{UIDNext: 1, UIDValidity: s.c.uidValidity()}, nil
}

func (s *imapSession) Create(string, *imap.CreateOptions) error { return imapNoQuota }

func (s *imapSession) Delete(name string) error {
	if isInbox(name) {
		return imapNoDelete
	}
	return noMailbox(name, imap.ResponseCodeNonExistent)
}

func (s *imapSession) Rename(name, _ string, _ *imap.RenameOptions) error {
	if isInbox(name) {
		return imapNoQuota
	}
	return noMailbox(name, imap.ResponseCodeNonExistent)
}

func (s *imapSession) Subscribe(name string) error {
	if !isInbox(name) {
		return noMailbox(name, "")
	}
	s.c.subscribed = true
	return nil
}

func (s *imapSession) Unsubscribe(name string) error {
	if isInbox(name) {
		s.c.subscribed = false
	}
	return nil
}

// List lists INBOX where the patterns match it, with the attributes
// Dovecot gives it: \HasNoChildren for a plain LIST, and with LIST-EXTENDED
// options only those asked for.
func (s *imapSession) List(w *imapserver.ListWriter, ref string, patterns []string, opts *imap.ListOptions) error {
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: '/'})
	}
	match := false
	for _, p := range patterns {
		match = match || imapserver.MatchList("INBOX", '/', strings.ToUpper(ref), strings.ToUpper(p))
	}
	plain := *opts == imap.ListOptions{} && !s.c.cur.extended
	if !match || (opts.SelectSubscribed && !s.c.subscribed) || opts.SelectSpecialUse {
		return nil
	}
	attrs := []imap.MailboxAttr{}
	switch {
	case plain:
		attrs = append(attrs, imap.MailboxAttrHasNoChildren)
	case s.c.cur.name == "LSUB":
	default:
		if s.c.subscribed && (opts.SelectSubscribed || opts.ReturnSubscribed) {
			attrs = append(attrs, imap.MailboxAttrSubscribed)
		}
		if opts.ReturnChildren {
			attrs = append(attrs, imap.MailboxAttrHasNoChildren)
		}
	}
	d := &imap.ListData{Attrs: attrs, Delim: '/', Mailbox: "INBOX"}
	if opts.ReturnStatus != nil {
		d.Status = s.c.emptyStatus("INBOX")
	}
	return w.WriteList(d)
}

// emptyStatus is INBOX's status: empty, as it always is.
func (c *imapConn) emptyStatus(name string) *imap.StatusData {
	var zero uint32
	var size int64
	return &imap.StatusData{Mailbox: name, NumMessages: &zero, NumRecent: &zero, NumUnseen: &zero, NumDeleted: &zero,
		UIDNext: 1, UIDValidity: c.uidValidity(), Size: &size, DeletedStorage: &size}
}

func (s *imapSession) Status(name string, _ *imap.StatusOptions) (*imap.StatusData, error) {
	if !isInbox(name) {
		return nil, noMailbox(name, "")
	}
	return s.c.emptyStatus(name), nil
}

// Append is never called (imapConn answers APPEND without keeping the
// message); if it were, the message would be read and dropped.
func (s *imapSession) Append(_ string, r imap.LiteralReader, _ *imap.AppendOptions) (*imap.AppendData, error) {
	io.Copy(io.Discard, r)
	return nil, imapNoQuota
}

func (s *imapSession) Poll(*imapserver.UpdateWriter, bool) error { return nil }

// imapIdleNotify is Dovecot's imap_idle_notify_interval (tests shorten
// it).
var imapIdleNotify atomic.Int64

func init() { imapIdleNotify.Store(int64(2 * time.Minute)) }

// Idle waits for DONE; nothing ever changes, so it only says it is still
// there, as Dovecot does.
func (s *imapSession) Idle(_ *imapserver.UpdateWriter, stop <-chan struct{}) error {
	t := time.NewTicker(time.Duration(imapIdleNotify.Load()))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-t.C:
			if s.c.send("* OK Still here") != nil {
				return nil
			}
		}
	}
}

func (s *imapSession) Unselect() error                                       { return nil }
func (s *imapSession) Expunge(*imapserver.ExpungeWriter, *imap.UIDSet) error { return nil }

// Search finds nothing, in the kind of numbers asked for (the library
// cannot write a result without one).
func (s *imapSession) Search(kind imapserver.NumKind, _ *imap.SearchCriteria, _ *imap.SearchOptions) (*imap.SearchData, error) {
	if kind == imapserver.NumKindUID {
		return &imap.SearchData{All: imap.UIDSet{}}, nil
	}
	return &imap.SearchData{All: imap.SeqSet{}}, nil
}

func (s *imapSession) Fetch(*imapserver.FetchWriter, imap.NumSet, *imap.FetchOptions) error {
	return nil
}

func (s *imapSession) Store(*imapserver.FetchWriter, imap.NumSet, *imap.StoreFlags, *imap.StoreOptions) error {
	return nil
}

// imapNoMessages is Dovecot's answer to a UID COPY or MOVE of nothing.
var imapNoMessages = &imap.Error{Type: imap.StatusResponseTypeOK, Text: "No messages found"}

func (s *imapSession) Copy(imap.NumSet, string) (*imap.CopyData, error) { return nil, imapNoMessages }

func (s *imapSession) Move(*imapserver.MoveWriter, imap.NumSet, string) error { return imapNoMessages }

func (s *imapSession) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: '/'}}}, nil
}
