package trap

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Config configures the SMTP trap. Zero limits take the defaults of
// DefaultConfig.
type Config struct {
	Hostname   string      // the real server's name: EHLO, errors
	Banner     string      // the greeting after "220 ", as the real server writes it
	IMAPBanner string      // the IMAP greeting's text after its capabilities ("Dovecot (Debian) ready.")
	TLS        *tls.Config // the real server's certificate; nil: no TLS offered
	// MaxMessageBytes is the size limit the trap advertises and enforces
	// (Postfix's message_size_limit); a client sending past it is cut off.
	MaxMessageBytes int64
	KeepBytes       int64 // of each message kept in quarantine; the rest is counted, not kept
	MaxRecipients   int   // per message
	MaxMessages     int   // per session
	MaxPerAddr      int   // concurrent sessions from one address
	MaxSessions     int   // concurrent sessions in all
	QuarantineBytes int64 // kept in all; beyond, mail is refused as by a full disk
	BufferBytes     int64 // message text held in memory by all sessions at once
	SessionTimeout  time.Duration
	IdleTimeout     time.Duration
	// FailureDelay is how long a wrong password waits for its answer, as
	// Dovecot makes it wait (auth_failure_delay, 2s by default); 0: none.
	FailureDelay time.Duration
	// What the real Postfix's version and settings change in its answers
	// (the zero values are Postfix 3.7's defaults, Debian 12's):
	Help                   bool // HELP is answered (Postfix 3.9 and later)
	ForbidUnauthPipelining bool // smtpd_forbid_unauth_pipelining (default yes since 3.9)
	StrictEOD              bool // smtpd_forbid_bare_newline = normalize (default since 3.9), yes, note or reject
}

// DefaultConfig returns the defaults: Postfix's size limit (10240000
// bytes), recipient limit (1000; their addresses held within
// maxRcptBytes) and idle timeout (300s), and limits that keep a flood of
// trapped sessions within tens of megabytes.
func DefaultConfig() Config {
	return Config{
		Hostname: "localhost", Banner: "localhost ESMTP Postfix (Debian/GNU)",
		MaxMessageBytes: 10_240_000, KeepBytes: 10_240_000, MaxRecipients: 1000, MaxMessages: 10,
		MaxPerAddr: 10, MaxSessions: 1000, QuarantineBytes: 1 << 30, BufferBytes: 64 << 20,
		SessionTimeout: 10 * time.Minute, IdleTimeout: 300 * time.Second,
	}
}

// ListenerConfig says what one trap listener pretends to be.
type ListenerConfig struct {
	Port        uint16 // the port the attacker dialled (587, 465, 25), for the record
	ImplicitTLS bool   // TLS from the first byte (465)
	RequireTLS  bool   // AUTH and mail only after STARTTLS (submission on 587)
	Auth        bool   // AUTH is offered
	// RelayDenied is the real server's refusal of a recipient from a
	// client that has not logged in, with %s for the address; it depends
	// on its restrictions: "554 5.7.1 <%s>: Relay access denied"
	// (reject_unauth_destination, the default here), "454 4.7.1 <%s>:
	// Relay access denied" (defer_unauth_destination, Debian's main.cf),
	// "554 5.7.1 <%s>: Recipient address rejected: Access denied"
	// (permit_sasl_authenticated,reject, Debian's master.cf for
	// submission). The daemon derives it from the real service's
	// restrictions (postfixaudit's RelayDenied); "": the default.
	RelayDenied string

	// What the real Postfix service on Port announces and enforces, read
	// by the daemon with postconf (postfixaudit's Smtpd); the zero values
	// are the trap's own defaults.
	NoSTARTTLS  bool // STARTTLS neither offered nor accepted (smtpd_tls_security_level = none)
	AuthTLSOnly bool // AUTH offered and accepted inside TLS only (smtpd_tls_auth_only)
	// Mechanisms are the mechanisms AUTH takes before TLS, TLSMechanisms
	// inside it (nil: PLAIN LOGIN, and Mechanisms); EHLO lists them less
	// HiddenMechanisms (smtpd_sasl_mechanism_filter's). The decoy logs in
	// with PLAIN and LOGIN only; any other fails as a wrong password does.
	Mechanisms, TLSMechanisms, HiddenMechanisms []string
	BrokenAuth                                  bool     // broken_sasl_auth_clients: "AUTH=…" after "AUTH …"
	Discard                                     []string // smtpd_discard_ehlo_keywords, upper case
	NoSMTPUTF8                                  bool     // smtputf8_enable = no
	DisableVRFY                                 bool     // disable_vrfy_command, as this service sets it
	// SizeLimit is the service's message_size_limit, which EHLO's SIZE
	// and MAIL's SIZE= follow: 0 leaves Config's MaxMessageBytes, -1 is
	// none. The trap never reads more than MaxMessageBytes of a message.
	SizeLimit int64
	// RecipientLimit is smtpd_recipient_limit, MaxPerAddr
	// smtpd_client_connection_count_limit: each applies where it is below
	// the trap's own (Config's MaxRecipients, MaxPerAddr); 0: the trap's.
	RecipientLimit, MaxPerAddr int
	// LocalDomains are the real server's own domains (mydestination):
	// PostmasterOK makes the decoy accept RCPT TO:<postmaster@one of
	// them> from a client that has not logged in, as the service's
	// restrictions do; otherwise PostmasterDenied, when set, is their
	// refusal (a format with %s), else RelayDenied. <postmaster> alone is
	// accepted from anyone, as Postfix accepts it. What such a client
	// then sends is kept in quarantine like all trapped mail.
	LocalDomains     []string
	PostmasterOK     bool
	PostmasterDenied string
}

func (lc ListenerConfig) relayDenied(addr string) string {
	f := lc.RelayDenied
	if f == "" {
		f = "554 5.7.1 <%s>: Relay access denied"
	}
	return fmt.Sprintf(f, addr)
}

// unauthRcpt is the service's answer to a recipient (RCPT, VRFY) from a
// client that has not logged in: "" accepts it. smtpd_check_rcpt lets
// <postmaster> alone through before any restriction (RFC 5321 wants it
// taken unqualified); postmaster at a local domain goes through the
// restrictions as a local recipient.
func (lc ListenerConfig) unauthRcpt(addr string) string {
	switch {
	case strings.EqualFold(addr, "postmaster"):
		return ""
	case !lc.localPostmaster(addr):
	case lc.PostmasterOK:
		return ""
	case lc.PostmasterDenied != "":
		return fmt.Sprintf(lc.PostmasterDenied, addr)
	}
	return lc.relayDenied(addr)
}

// localPostmaster reports whether addr is postmaster at one of the local
// domains, as Postfix resolves it (smtpd_check.c compares the local part
// up to the @ without regard to case; trivial-rewrite drops one trailing
// dot of the domain).
func (lc ListenerConfig) localPostmaster(addr string) bool {
	local, domain, _ := strings.Cut(addr, "@")
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	return strings.EqualFold(local, "postmaster") && slices.Contains(lc.LocalDomains, domain)
}

// has reports whether the service announces an EHLO keyword.
func (lc ListenerConfig) has(keyword string) bool { return !slices.Contains(lc.Discard, keyword) }

// smtputf8 reports whether SMTPUTF8 is on and announced: Postfix takes
// MAIL's and VRFY's SMTPUTF8 only then.
func (lc ListenerConfig) smtputf8() bool { return !lc.NoSMTPUTF8 && lc.has("SMTPUTF8") }

// mechanisms is AUTH's list, inside TLS or before it.
func (lc ListenerConfig) mechanisms(tls bool) []string {
	m := lc.Mechanisms
	if tls && lc.TLSMechanisms != nil {
		m = lc.TLSMechanisms
	}
	if m == nil {
		m = []string{sasl.Plain, sasl.Login}
	}
	return m
}

// sizeLimit is what EHLO's SIZE and MAIL's SIZE= say (0: none); readCap
// is where the trap stops reading: the service's limit, within the
// trap's own.
func (lc ListenerConfig) sizeLimit(cfg Config) int64 {
	switch {
	case lc.SizeLimit < 0:
		return 0
	case lc.SizeLimit == 0:
		return cfg.MaxMessageBytes
	}
	return lc.SizeLimit
}

func (lc ListenerConfig) readCap(cfg Config) int64 {
	if l := lc.sizeLimit(cfg); l > 0 && l < cfg.MaxMessageBytes {
		return l
	}
	return cfg.MaxMessageBytes
}

// below returns the service's limit where it is below the trap's own.
func below(service, own int) int {
	if service > 0 && service < own {
		return service
	}
	return own
}

// smtpError turns a reply line ("554 5.7.1 text") into go-smtp's error.
func smtpError(line string) *smtp.SMTPError {
	code, _ := strconv.Atoi(line[:3])
	e := &smtp.SMTPError{Code: code, Message: line[4:]}
	if dsn, msg, ok := strings.Cut(line[4:], " "); ok && strings.Count(dsn, ".") == 2 {
		var a, b, c int
		if n, _ := fmt.Sscanf(dsn, "%d.%d.%d", &a, &b, &c); n == 3 {
			e.EnhancedCode, e.Message = smtp.EnhancedCode{a, b, c}, msg
		}
	}
	return e
}

// Message is a message the trap accepted: what the quarantine keeps.
type Message struct {
	ID        int64
	QueueID   string // the id the client was told ("queued as ...")
	Received  time.Time
	Client    netip.Addr
	Port      int    // the port the client dialled (587, 465, 25)
	Helo      string // what the client said in EHLO/HELO
	Account   string // the trap account it logged in as
	TLS       bool
	MailFrom  string
	RcptTo    []string
	Size      int64  // bytes the client sent
	Truncated bool   // Raw holds only the first part
	Raw       []byte // nil in listings
}

// Keeper keeps quarantined messages (package trapstore puts them in
// Rampart's store).
type Keeper interface {
	Quarantine(ctx context.Context, m Message) (int64, error)
}

// Stats are the trap's counters.
type Stats struct {
	Sessions     atomic.Uint64 `json:"-"`
	Active       atomic.Int64  `json:"-"`
	Refused      atomic.Uint64 `json:"-"` // sessions over a limit, answered as a busy server
	Logins       atomic.Uint64 `json:"-"`
	FailedLogins atomic.Uint64 `json:"-"`
	Messages     atomic.Uint64 `json:"-"` // quarantined
	Rejected     atomic.Uint64 `json:"-"` // mail refused at a limit (recipients, messages, quarantine full)
	CutSize      atomic.Uint64 `json:"-"` // sessions cut off for sending past the size limit
}

// Server is the SMTP trap: one go-smtp server per listener, sharing the
// accounts, the limits and the quarantine.
type Server struct {
	cfg   Config
	acc   *Accounts
	keep  Keeper
	log   *slog.Logger
	stats Stats

	mu      sync.Mutex
	perAddr map[netip.Addr]int
	total   int
	servers []io.Closer // go-smtp's and go-imap's, closed by Close
	closed  bool
	done    chan struct{} // closed by Close

	used   atomic.Int64 // quarantine bytes kept
	buffer atomic.Int64 // message text held in memory now
}

// NewServer returns a trap; Serve starts a listener. keep may be nil (a
// test without a store: messages are counted, not kept).
func NewServer(cfg Config, acc *Accounts, keep Keeper, log *slog.Logger) *Server {
	def := DefaultConfig()
	for _, x := range []struct{ v, d *int64 }{{&cfg.MaxMessageBytes, &def.MaxMessageBytes}, {&cfg.KeepBytes, &def.KeepBytes},
		{&cfg.QuarantineBytes, &def.QuarantineBytes}, {&cfg.BufferBytes, &def.BufferBytes}} {
		if *x.v <= 0 {
			*x.v = *x.d
		}
	}
	for _, x := range []struct{ v, d *int }{{&cfg.MaxRecipients, &def.MaxRecipients}, {&cfg.MaxMessages, &def.MaxMessages},
		{&cfg.MaxPerAddr, &def.MaxPerAddr}, {&cfg.MaxSessions, &def.MaxSessions}} {
		if *x.v <= 0 {
			*x.v = *x.d
		}
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = def.SessionTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = def.IdleTimeout
	}
	if cfg.Hostname == "" {
		cfg.Hostname = def.Hostname
	}
	if cfg.Banner == "" {
		cfg.Banner = cfg.Hostname + " ESMTP Postfix (Debian/GNU)"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, acc: acc, keep: keep, log: log, perAddr: map[netip.Addr]int{}, done: make(chan struct{})}
}

// Stats returns the trap's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// SetUsage tells the trap how many quarantine bytes are kept already (at
// start-up, and after pruning).
func (s *Server) SetUsage(bytes int64) { s.used.Store(bytes) }

// Serve accepts trapped connections on l until Close; it returns nil
// after Close. l's address is where the nftables redirect sends them.
func (s *Server) Serve(l net.Listener, lc ListenerConfig) error {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		a, _ := c.Conn().(*admitted)
		if a == nil || a.face == nil {
			return nil, errors.New("trap: connection without a face")
		}
		f := a.face
		sess := &session{srv: s, lc: lc, f: f, helo: c.Hostname(), tls: f.tls}
		if f.hiddenHelo {
			sess.helo = "" // the client sent none
		}
		f.sess = sess
		return sess, nil
	}))
	srv.Domain = s.cfg.Hostname
	srv.MaxMessageBytes = lc.readCap(s.cfg)
	srv.MaxRecipients = below(lc.RecipientLimit, s.cfg.MaxRecipients)
	srv.MaxLineLength = 0        // none, as Postfix's message text has none: the face bounds command lines
	srv.AllowInsecureAuth = true // the face enforces TLS where the real server does
	srv.EnableSMTPUTF8, srv.EnableDSN = true, true
	srv.ReadTimeout, srv.WriteTimeout = s.cfg.IdleTimeout, 30*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if !s.register(srv) {
		return nil
	}
	err := srv.Serve(&listener{Listener: l, srv: s, cfg: lc})
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// failureDelay waits as the real server waits before it refuses a
// password, unless the trap is closing.
func (s *Server) failureDelay() {
	if s.cfg.FailureDelay <= 0 {
		return
	}
	t := time.NewTimer(s.cfg.FailureDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.done:
	}
}

// register adds a protocol server for Close; false: the trap is closed.
func (s *Server) register(srv io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.servers = append(s.servers, srv)
	}
	return !s.closed
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops every listener and ends every session.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		close(s.done)
	}
	s.closed = true
	servers := s.servers
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listener admits connections within the limits and gives each its face.
type listener struct {
	net.Listener
	srv  *Server
	cfg  ListenerConfig
	imap bool
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		s := l.srv
		addr := remoteAddr(c)
		s.mu.Lock()
		busy := ""
		switch {
		case s.total >= s.cfg.MaxSessions:
			busy = "421 4.3.2 Service currently unavailable"
		case s.perAddr[addr] >= below(l.cfg.MaxPerAddr, s.cfg.MaxPerAddr):
			busy = fmt.Sprintf("421 4.7.0 %s Error: too many connections from %s", s.cfg.Hostname, addr)
		default:
			s.total++
			s.perAddr[addr]++
		}
		s.mu.Unlock()
		if busy != "" {
			s.stats.Refused.Add(1)
			if !l.cfg.ImplicitTLS {
				c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				c.Write([]byte(busy + "\r\n"))
			}
			c.Close()
			continue
		}
		s.stats.Sessions.Add(1)
		s.stats.Active.Add(1)
		a := &admitted{srv: s, addr: addr}
		if l.imap {
			a.Conn = newIMAPConn(c, l)
		} else {
			a.face = newFace(c, l)
			a.Conn = a.face
		}
		return a, nil
	}
}

// admitted is an admitted connection; closing it frees its place.
type admitted struct {
	net.Conn
	face *face // nil for IMAP
	srv  *Server
	addr netip.Addr
	once sync.Once
}

func (a *admitted) Close() error {
	err := a.Conn.Close()
	a.once.Do(func() {
		s := a.srv
		s.mu.Lock()
		s.total--
		if s.perAddr[a.addr]--; s.perAddr[a.addr] <= 0 {
			delete(s.perAddr, a.addr)
		}
		s.mu.Unlock()
		s.stats.Active.Add(-1)
	})
	return err
}

func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// session is one trapped SMTP session: its replies are Postfix's.
type session struct {
	srv  *Server
	lc   ListenerConfig
	f    *face
	helo string
	tls  bool

	account   string // logged in as; "" before
	from      string
	rcpts     []string
	rcptBytes int // of rcpts' addresses, within maxRcptBytes
	messages  int
	queueID   string // of the last message accepted
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) client() netip.Addr { return remoteAddr(s.f.raw) }

func (s *session) AuthMechanisms() []string {
	if !s.lc.Auth {
		return nil
	}
	return s.lc.mechanisms(s.tls)
}

// authFailed is Postfix's answer to a wrong password checked by Dovecot.
var authFailed = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Error: authentication failed: (reason unavailable)"}

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		acc, ok := "", false
		if len(user) <= 256 && len(pass) <= 256 {
			acc, ok = s.srv.acc.Login(user, pass, s.client())
		}
		if !ok {
			s.srv.stats.FailedLogins.Add(1)
			s.srv.failureDelay()
			return authFailed
		}
		s.account = acc
		s.srv.stats.Logins.Add(1)
		s.srv.log.Info("trap: login", "addr", s.client().String(), "user", acc, "port", s.lc.Port, "tls", s.tls)
		return nil
	}
	fail := func() error { // malformed, as Dovecot fails it: no reason given
		s.srv.stats.FailedLogins.Add(1)
		s.srv.failureDelay()
		return authFailed
	}
	switch mech {
	case sasl.Plain:
		return plainServer(func(resp []byte) error {
			parts := strings.Split(string(resp), "\x00")
			if len(parts) != 3 || parts[1] == "" || parts[0] != "" && parts[0] != parts[1] {
				return fail()
			}
			return check(parts[1], parts[2])
		}), nil
	case sasl.Login:
		return &loginServer{check: check, fail: fail}, nil
	case "CRAM-MD5":
		// Dovecot's challenge, then any answer fails: the decoy knows no
		// password to check a digest against.
		var n [8]byte
		rand.Read(n[:])
		challenge := fmt.Sprintf("<%d.%d@%s>", binary.BigEndian.Uint64(n[:])>>1, time.Now().Unix(), s.srv.cfg.Hostname)
		return &failServer{first: []byte(challenge), fail: fail}, nil
	}
	// Another mechanism the real server lists (SCRAM, DIGEST-MD5, …):
	// the exchange fails at the client's first answer.
	return &failServer{first: []byte{}, fail: fail}, nil
}

// failServer is a SASL exchange that never succeeds: one challenge
// (none when the client's initial response came with AUTH, for a
// client-first mechanism), then the failure a wrong password gets.
type failServer struct {
	first []byte
	fail  func() error
	sent  bool
}

func (f *failServer) Next(response []byte) ([]byte, bool, error) {
	if !f.sent && (response == nil || len(f.first) > 0) {
		f.sent = true
		return f.first, false, nil
	}
	return nil, true, f.fail()
}

// plainServer is SASL PLAIN as Dovecot runs it: any malformed response
// is a failed login, never go-sasl's words.
type plainServer func(resp []byte) error

func (p plainServer) Next(response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte{}, false, nil
	}
	return nil, true, p(response)
}

// loginServer is SASL LOGIN as Postfix (with Dovecot) runs it: an empty
// initial response ("=") asks for the user name, an empty one fails.
type loginServer struct {
	check func(user, pass string) error
	fail  func() error
	user  string
	step  int
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(response) > 0 {
			l.user, l.step = string(response), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		if len(response) == 0 {
			return nil, true, l.fail()
		}
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(response))
	}
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	switch {
	case s.messages >= s.srv.cfg.MaxMessages:
		s.srv.stats.Rejected.Add(1)
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Error: too much mail from " + s.client().String()}
	case s.srv.used.Load() >= s.srv.cfg.QuarantineBytes:
		s.srv.stats.Rejected.Add(1)
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage"}
	}
	s.from = from
	return nil
}

// maxRcptBytes bounds the recipient addresses a message holds in memory
// (64 KiB: a thousand of 64 bytes); past it the decoy answers as Postfix
// at smtpd_recipient_limit.
const maxRcptBytes = 64 << 10

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.f.bareRcpt {
		to = strings.TrimSuffix(to, "@"+bareDomain)
	}
	if s.account == "" {
		// Not logged in: the real server relays nothing for it, and takes
		// only postmaster at its own domains.
		if r := s.lc.unauthRcpt(to); r != "" {
			return smtpError(r)
		}
	}
	if s.rcptBytes+len(to) > maxRcptBytes {
		s.srv.stats.Rejected.Add(1)
		return smtpError("452 4.5.3 Error: too many recipients")
	}
	s.rcpts = append(s.rcpts, to)
	s.rcptBytes += len(to)
	return nil
}

// Data keeps the message in quarantine and answers "queued": it is never
// handed to anything that delivers.
func (s *session) Data(r io.Reader) error {
	var kept bytes.Buffer
	var size int64
	truncated := false
	var held int64
	defer func() { s.srv.buffer.Add(-held) }()
	chunk := make([]byte, 4096)
	for {
		n, err := r.Read(chunk)
		if n > 0 {
			size += int64(n)
			room := min(int64(n), s.srv.cfg.KeepBytes-int64(kept.Len()))
			if room > 0 && s.srv.buffer.Add(room) <= s.srv.cfg.BufferBytes {
				held += room
				kept.Write(chunk[:room])
			} else {
				if room > 0 {
					s.srv.buffer.Add(-room)
				}
				truncated = true
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	s.queueID = queueID()
	s.messages++
	m := Message{
		QueueID: s.queueID, Received: time.Now(), Client: s.client(), Port: int(s.lc.Port), Helo: s.helo,
		Account: s.account, TLS: s.tls, MailFrom: s.from, RcptTo: s.rcpts, Size: size, Truncated: truncated, Raw: kept.Bytes(),
	}
	if s.srv.keep != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := s.srv.keep.Quarantine(ctx, m)
		cancel()
		if err != nil {
			s.srv.log.Error("trap: quarantine failed", "err", err)
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Error: queue file write error"}
		}
	}
	s.srv.used.Add(int64(kept.Len()))
	s.srv.stats.Messages.Add(1)
	s.srv.log.Info("trap: message quarantined", "queue_id", s.queueID, "addr", m.Client.String(), "user", s.account,
		"from", s.from, "recipients", len(s.rcpts), "size", size, "truncated", truncated)
	return nil
}

func (s *session) Reset() {
	s.from, s.rcpts, s.rcptBytes = "", nil, 0
}

func (s *session) Logout() error { return nil }

// queueID returns a queue id in Postfix's short format: five hex digits
// of microseconds, then the queue file's inode number in hex.
func queueID() string {
	var b [3]byte
	rand.Read(b[:])
	inode := 0x10000 + (uint32(b[0])<<16|uint32(b[1])<<8|uint32(b[2]))%0xEF0000
	return fmt.Sprintf("%05X%X", time.Now().Nanosecond()/1000&0xFFFFF, inode)
}
