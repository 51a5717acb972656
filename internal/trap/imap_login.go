package trap

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Before login the decoy answers as Dovecot's imap-login process: its
// capability list, its replies and limits. go-imap's server cannot say
// these (it hangs up at the first unknown command, knows no ID or
// ENABLE here, orders and words its capabilities its own way), so this
// part is the decoy's own; the library gets the connection once the
// client has logged in.

const (
	// dovecotPreLoginCaps is imap-login's capability list with Debian's
	// defaults (imap_capability unset, imap_literal_minus = no); then
	// STARTTLS, LOGINDISABLED and the SASL mechanisms as the
	// connection has them.
	dovecotPreLoginCaps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+"
	// dovecotCaps is the imap process's list after login, with no
	// mail_plugins.
	dovecotCaps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS " +
		"THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED " +
		"I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE " +
		"SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"
	// dovecotID is the ID reply with imap_id_send = "name *".
	dovecotID = `* ID ("name" "Dovecot")`

	loginInbuf     = 1026 // imap-login's input buffer (LOGIN_MAX_INBUF_SIZE)
	loginMaxLine   = 8192 // its parser's line limit, literals included (IMAP_LOGIN_MAX_LINE_LENGTH)
	loginAuthBuf   = 8192 // a SASL response's limit (LOGIN_MAX_AUTH_BUF_SIZE)
	loginMaxBad    = 3    // invalid commands before it hangs up (CLIENT_MAX_BAD_COMMANDS)
	loginMaxTagLen = 126  // IMAP_TAG_MAX_LEN
)

// errLoggedOut ends the dialogue before login without a login.
var errLoggedOut = errors.New("imap: logged out")

// imapLoginTimeout is how long imap-login waits for a client to log in,
// from its connection on (MASTER_LOGIN_TIMEOUT_SECS; tests shorten it).
var imapLoginTimeout atomic.Int64

func init() { imapLoginTimeout.Store(int64(3 * time.Minute)) }

// preLogin greets the client and answers its commands until it logs in
// (nil) or leaves, is sent away or logs out (an error).
func (c *imapConn) preLogin() error {
	c.SetReadDeadline(time.Now().Add(time.Duration(imapLoginTimeout.Load())))
	if err := c.send("* OK [CAPABILITY " + c.preLoginCaps() + "] " + c.banner); err != nil {
		return err
	}
	for c.user == "" {
		if err := c.loginCommand(); err != nil {
			return err
		}
	}
	return nil
}

// plaintextRefused: logins need TLS first, as with Dovecot's
// disable_plaintext_auth = yes (Debian's default) for a client that is
// not on the host itself.
func (c *imapConn) plaintextRefused() bool { return c.lc.RequireTLS && !c.tls }

func (c *imapConn) preLoginCaps() string {
	caps := dovecotPreLoginCaps
	if c.srv.cfg.TLS != nil && !c.tls {
		caps += " STARTTLS"
	}
	if c.plaintextRefused() {
		return caps + " LOGINDISABLED"
	}
	return caps + " AUTH=PLAIN"
}

// loginCommand reads and answers one command.
func (c *imapConn) loginCommand() error {
	line, err := readLine(c.br, loginAuthBuf)
	if err != nil {
		return c.readFailed(err, "")
	}
	tag, i, ok := atomAt(line, 0, true)
	if !ok || len(tag) > loginMaxTagLen {
		return c.invalid("*")
	}
	name, j, ok := atomAt(line, i, false)
	if !ok {
		return c.invalid(tag)
	}
	name = strings.ToUpper(name)
	if name == "AUTHENTICATE" {
		// Its SASL initial response has a buffer of its own.
		return c.authenticate(tag, strings.TrimRight(string(line[j:]), "\r\n"))
	}
	if len(line) > loginInbuf {
		return c.bye("Input buffer full, aborting")
	}
	p := &argParser{buf: line, pos: j, literal: c.loginLiteral, maxCmd: loginMaxLine}
	args, err := p.parse()
	var we *wireError
	switch {
	case errors.As(err, &we) && we.bye:
		return c.bye(we.msg)
	case errors.As(err, &we):
		return c.send(tag + " BAD " + we.msg)
	case err != nil:
		return err
	}
	return c.loginDo(tag, name, args)
}

// readFailed answers a line that could not be read before login: too
// long, or none in time (Dovecot's words; where says during what).
func (c *imapConn) readFailed(err error, where string) error {
	switch {
	case err == errLineTooLong:
		return c.bye("Input buffer full, aborting")
	case errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(c.end):
		return c.bye("Disconnected for inactivity" + where + ".")
	}
	return err
}

// loginLiteral reads a literal before login: "+ OK" for a synchronizing
// one, and imap-login's input buffer as the limit of what it holds.
func (c *imapConn) loginLiteral(p *argParser, size int64, sync bool, _ int) (bool, error) {
	if sync {
		if err := c.send("+ OK"); err != nil {
			return false, err
		}
	}
	if size > loginInbuf {
		return false, &wireError{msg: "Input buffer full, aborting", bye: true}
	}
	return true, readLiteral(c.br, p, size, loginInbuf)
}

// readLiteral reads size bytes and the line after them onto p.buf.
func readLiteral(br *bufio.Reader, p *argParser, size int64, maxLine int) error {
	n := len(p.buf)
	p.buf = append(p.buf, make([]byte, size)...)
	if _, err := io.ReadFull(br, p.buf[n:]); err != nil {
		return err
	}
	line, err := readLine(br, maxLine)
	if err == errLineTooLong {
		return &wireError{msg: "Input buffer full, aborting", bye: true}
	}
	p.buf = append(p.buf, line...)
	return err
}

// loginDo answers a parsed command.
func (c *imapConn) loginDo(tag, name string, args []imapArg) error {
	switch name {
	case "CAPABILITY":
		// Asked in the clear (or on IMAPS), the client is taken not to
		// read capabilities in a tagged reply: the login's go untagged.
		c.capsAsked = c.capsAsked || !c.starttls
		return c.send("* CAPABILITY "+c.preLoginCaps(), tag+" OK Pre-login capabilities listed, post-login capabilities have more.")
	case "NOOP":
		return c.send(tag + " OK NOOP completed.")
	case "ID":
		if len(args) > 0 && args[0].kind != 'n' && args[0].kind != 'l' {
			return c.send(tag + " BAD Invalid ID parameters")
		}
		return c.send(dovecotID, tag+" OK ID completed.")
	case "ENABLE":
		return c.send("* ENABLED", tag+" OK ENABLE ignored in non-authenticated state.")
	case "LOGOUT":
		c.send("* BYE Logging out", tag+" OK Logout completed.")
		return errLoggedOut
	case "STARTTLS":
		return c.startTLS(tag)
	case "LOGIN":
		return c.loginCmd(tag, args)
	}
	if strings.EqualFold(tag, "LOGIN") {
		return c.send(tag + " BAD First parameter in line is IMAP's command tag, not the command name. Add that before the command, like: a login user pass")
	}
	return c.invalid(tag)
}

// invalid answers a command imap-login does not take; the third in a row
// ends the session.
func (c *imapConn) invalid(tag string) error {
	c.bad++
	if c.bad >= loginMaxBad {
		return c.bye("Too many invalid IMAP commands.")
	}
	return c.send(tag + " BAD Error in IMAP command received by server.")
}

func (c *imapConn) startTLS(tag string) error {
	switch {
	case c.tls:
		return c.send(tag + " BAD TLS is already active.")
	case c.srv.cfg.TLS == nil:
		return c.send(tag + " BAD TLS support isn't enabled.")
	}
	if err := c.send(tag + " OK Begin TLS negotiation now."); err != nil {
		return err
	}
	// What the client sent after STARTTLS in the clear is dropped, not
	// read as if it came over TLS.
	t := tls.Server(c.Conn, c.srv.cfg.TLS)
	if err := t.Handshake(); err != nil {
		return err
	}
	c.wmu.Lock()
	c.Conn = t
	c.wmu.Unlock()
	c.br = bufio.NewReader(t)
	c.tls, c.starttls = true, true
	return nil
}

func (c *imapConn) loginCmd(tag string, args []imapArg) error {
	if len(args) != 2 {
		return c.invalid(tag)
	}
	user, ok1 := args[0].astring()
	pass, ok2 := args[1].astring()
	if !ok1 || !ok2 {
		return c.invalid(tag)
	}
	if c.plaintextRefused() {
		return c.send("* BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, but your client did it anyway. If anyone was listening, the password was exposed.",
			tag+" NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")
	}
	return c.tryLogin(tag, user, pass)
}

// tryLogin checks a credential and answers as Dovecot does.
func (c *imapConn) tryLogin(tag, user, pass string) error {
	acc, ok := c.login(user, pass)
	if !ok {
		return c.send(tag + " NO [AUTHENTICATIONFAILED] Authentication failed.")
	}
	c.user = acc
	if c.capsAsked {
		return c.send("* CAPABILITY "+dovecotCaps, tag+" OK Logged in")
	}
	return c.send(tag + " OK [CAPABILITY " + dovecotCaps + "] Logged in")
}

// authenticate runs AUTHENTICATE mech [initial-response]: PLAIN is the
// only mechanism, as Debian's auth_mechanisms = plain has it.
func (c *imapConn) authenticate(tag, rest string) error {
	mech, ir, hasIR := strings.Cut(rest, " ")
	switch {
	case mech == "":
		return c.invalid(tag)
	case !strings.EqualFold(mech, "PLAIN"):
		return c.send(tag + " NO [ALERT] Unsupported authentication mechanism.")
	case c.plaintextRefused():
		return c.send(tag + " NO [PRIVACYREQUIRED] Plaintext authentication disabled.")
	}
	var resp []byte
	if hasIR && ir != "" {
		var ok bool
		if resp, ok = decodeSASL(ir); !ok {
			return c.send(tag + " BAD Invalid base64 data in initial response")
		}
	} else {
		if err := c.send("+ "); err != nil {
			return err
		}
		line, err := readLine(c.br, loginAuthBuf)
		if err != nil {
			return c.readFailed(err, " during authentication")
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "*" {
			return c.send(tag + " BAD Authentication aborted by client.")
		}
		var ok bool
		if resp, ok = decodeSASL(s); !ok {
			return c.send(tag + " NO [ALERT] Invalid base64 in response")
		}
	}
	// authzid NUL authcid NUL password; an authzid other than the user
	// would be a master login, which there is none of.
	parts := strings.Split(string(resp), "\x00")
	if len(parts) != 3 || (parts[0] != "" && parts[0] != parts[1]) {
		parts = []string{"", "", "\x00"} // fails, with the delay
	}
	return c.tryLogin(tag, parts[1], parts[2])
}

// decodeSASL decodes a SASL response; "=" is the empty one. Dovecot's
// base64 decoder passes over spaces and tabs.
func decodeSASL(s string) ([]byte, bool) {
	s = strings.NewReplacer(" ", "", "\t", "").Replace(s)
	if s == "=" {
		return []byte{}, true
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil
}
