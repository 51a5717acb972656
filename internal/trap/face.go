package trap

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// face sits between go-smtp and the client and makes the server look like
// Postfix: go-smtp parses commands, runs AUTH, reads DATA and calls the
// session; its replies, which are go-smtp's own words, are rewritten into
// Postfix's (postfixReply), and what go-smtp cannot do as Postfix does is
// done here: the greeting, the EHLO capability list, STARTTLS (TLS sits
// under the face, so that replies inside it are rewritten too), the TLS
// and HELO requirements, and the cut-offs (message size, session time).
//
// go-smtp handles one connection on one goroutine: it reads a command,
// writes its reply, reads the next. The face hands it exactly one unit per
// Read (a command line, a piece of message text) and changes mode on the
// replies it writes (354 starts message text), so what the face inspects
// and what go-smtp parses never drift apart.
type face struct {
	net.Conn // the transport now: the TCP connection, or TLS over it

	raw  net.Conn
	l    *listener
	sess *session // set when go-smtp makes the session (EHLO)
	in   *bufio.Reader

	end time.Time // the session's hard deadline

	// Read side.
	mode      int   // modeCommand, modeData or modeBDAT
	bdatLeft  int64 // bytes of the BDAT chunk go-smtp is still to read
	bdatSize  int64 // the size of the last BDAT chunk
	lineStart bool
	dataBytes int64
	pending   []byte // what go-smtp is to read next
	inAuth    bool   // go-smtp asked for a SASL response (334)
	verb, arg string // the last command handed to go-smtp

	// Write side.
	partial []byte
	reply   []string
	greeted bool
	swallow int // go-smtp replies to drop (to commands the face injected)

	inMail    bool // a MAIL was accepted and its transaction has not ended
	afterData bool // the next reply ends a DATA transaction

	tls      bool
	needHelo bool // STARTTLS done, EHLO not yet
	cut      bool // the face ended the session
}

const (
	modeCommand = iota
	modeData
	modeBDAT
)

// errCut ends go-smtp's reading when the face has cut the session off.
var errCut = errors.New("session cut off")

// faceBuffer is the read buffer: longer command lines are passed on in
// pieces, and go-smtp's own line limit ends them.
const faceBuffer = 2048

func newFace(raw net.Conn, l *listener) *face {
	f := &face{Conn: raw, raw: raw, l: l, end: time.Now().Add(l.srv.cfg.SessionTimeout), lineStart: true}
	if l.cfg.ImplicitTLS {
		f.Conn = tls.Server(raw, l.srv.cfg.TLS)
		f.tls = true
	}
	f.in = bufio.NewReaderSize(f.Conn, faceBuffer)
	raw.SetDeadline(f.end)
	return f
}

// clamp keeps a deadline within the session's.
func (f *face) clamp(t time.Time) time.Time {
	if t.IsZero() || t.After(f.end) {
		return f.end
	}
	return t
}

func (f *face) SetDeadline(t time.Time) error      { return f.Conn.SetDeadline(f.clamp(t)) }
func (f *face) SetReadDeadline(t time.Time) error  { return f.Conn.SetReadDeadline(f.clamp(t)) }
func (f *face) SetWriteDeadline(t time.Time) error { return f.Conn.SetWriteDeadline(f.clamp(t)) }

// handshake completes implicit TLS within a short deadline.
func (f *face) handshake() error {
	tc, ok := f.Conn.(*tls.Conn)
	if !ok || tc.ConnectionState().HandshakeComplete {
		return nil
	}
	tc.SetDeadline(f.clamp(time.Now().Add(10 * time.Second)))
	err := tc.Handshake()
	tc.SetDeadline(f.end)
	return err
}

// send writes lines as one reply straight to the client.
func (f *face) send(lines ...string) error {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	f.Conn.SetWriteDeadline(f.clamp(time.Now().Add(30 * time.Second)))
	_, err := f.Conn.Write(b.Bytes())
	return err
}

// Read hands go-smtp its next unit.
func (f *face) Read(p []byte) (int, error) {
	if f.cut {
		return 0, errCut
	}
	for len(f.pending) == 0 {
		if err := f.handshake(); err != nil {
			return 0, err
		}
		if err := f.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// next reads the next unit from the client into pending, answering
// itself what go-smtp must not see.
func (f *face) next() error {
	if f.mode == modeBDAT {
		return f.nextChunk()
	}
	line, err := f.in.ReadSlice('\n')
	if len(line) == 0 && err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil
		}
		return err
	}
	complete := err == nil
	if f.mode == modeData {
		if err := f.count(len(line)); err != nil {
			return err
		}
		end := f.lineStart && complete && (string(line) == ".\r\n" || string(line) == ".\n")
		f.lineStart = complete
		f.pending = append(f.pending[:0], line...)
		if end {
			f.mode, f.afterData = modeCommand, true
		}
		return nil
	}
	if f.inAuth || !complete {
		f.inAuth = false
		f.pending = append(f.pending[:0], line...)
		return nil
	}
	text := strings.TrimRight(string(line), "\r\n")
	verb, arg, _ := strings.Cut(text, " ")
	verb = strings.ToUpper(verb)
	if answer, handled := f.own(verb, arg); handled {
		if answer != "" {
			return f.send(answer)
		}
		return nil
	}
	f.verb, f.arg = verb, arg
	f.pending = append(f.pending[:0], line...)
	if verb == "BDAT" {
		f.startChunk(arg)
	}
	return nil
}

// count adds message bytes; a client sending far past the limit is cut
// off, not read to its end: Postfix's answer, then the connection closes.
func (f *face) count(n int) error {
	f.dataBytes += int64(n)
	if f.dataBytes > f.l.srv.cfg.MaxMessageBytes+faceBuffer {
		f.l.srv.stats.CutSize.Add(1)
		f.send("552 5.3.4 Message size exceeds fixed limit")
		f.cut = true
		return errCut
	}
	return nil
}

// startChunk follows a BDAT command go-smtp will read a chunk for: one
// whose arguments it accepts (a size, and LAST or nothing).
func (f *face) startChunk(arg string) {
	args := strings.Fields(arg)
	if len(args) == 0 || len(args) > 2 || len(args) == 2 && !strings.EqualFold(args[1], "LAST") {
		return
	}
	size, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return
	}
	f.bdatSize, f.bdatLeft = int64(size), int64(size)
	f.afterData = len(args) == 2 // LAST: the next reply ends the transaction
	if size > 0 {
		f.mode = modeBDAT
	}
}

// nextChunk hands go-smtp the next piece of a BDAT chunk.
func (f *face) nextChunk() error {
	want := int(min(f.bdatLeft, faceBuffer))
	f.pending = slices.Grow(f.pending[:0], want)[:want]
	n, err := f.in.Read(f.pending) // straight into pending: no buffer per piece
	f.pending = f.pending[:n]
	if n > 0 {
		f.bdatLeft -= int64(n)
		if f.bdatLeft == 0 {
			f.mode = modeCommand
		}
		return f.count(n)
	}
	return err
}

// own answers the commands the face handles itself: STARTTLS, and those
// Postfix refuses before TLS or before a new EHLO. handled false passes
// the command to go-smtp.
func (f *face) own(verb, arg string) (answer string, handled bool) {
	cfg := f.l.srv.cfg
	switch verb {
	case "STARTTLS":
		switch {
		case cfg.TLS == nil || f.l.cfg.ImplicitTLS:
			return "502 5.5.1 Error: command not implemented", true
		case f.tls:
			return "554 5.5.1 Error: TLS already active", true
		case arg != "":
			return "501 5.5.4 Syntax: STARTTLS", true
		}
		if err := f.send("220 2.0.0 Ready to start TLS"); err != nil {
			return "", true
		}
		tc := tls.Server(f.raw, cfg.TLS)
		tc.SetDeadline(f.clamp(time.Now().Add(10 * time.Second)))
		if err := tc.Handshake(); err != nil {
			f.cut = true
			return "", true
		}
		tc.SetDeadline(f.end)
		f.Conn, f.tls, f.needHelo = tc, true, true
		f.in = bufio.NewReaderSize(tc, faceBuffer)
		// go-smtp forgets the envelope; the face makes it ask for EHLO.
		f.pending = append(f.pending[:0], "RSET\r\n"...)
		f.swallow++
		if f.sess != nil {
			f.sess.tls, f.sess.account = true, ""
		}
		return "", true
	case "EHLO", "HELO", "RSET":
		f.needHelo = f.needHelo && verb == "RSET"
		f.inMail = false
		return "", false
	case "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "VRFY", "ETRN":
		if verb == "MAIL" && f.inMail && !f.needHelo {
			return "503 5.5.1 Error: nested MAIL command", true
		}
		if f.needHelo {
			return "503 5.5.1 Error: send HELO/EHLO first", true
		}
		if f.l.cfg.RequireTLS && cfg.TLS != nil && !f.tls && verb != "VRFY" && verb != "ETRN" {
			return "530 5.7.0 Must issue a STARTTLS command first", true
		}
	}
	return "", false
}

// Write takes go-smtp's replies, a line at a time, and sends Postfix's.
func (f *face) Write(p []byte) (int, error) {
	if f.cut {
		return 0, errCut
	}
	if err := f.handshake(); err != nil {
		return 0, err
	}
	f.partial = append(f.partial, p...)
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(f.partial[:i]), "\r")
		f.partial = f.partial[i+1:]
		f.reply = append(f.reply, line)
		if len(line) >= 4 && line[3] == '-' {
			continue // more lines of this reply follow
		}
		reply := f.reply
		f.reply = nil
		if f.swallow > 0 {
			f.swallow--
			continue
		}
		out := f.postfixReply(reply)
		if len(out) == 0 {
			continue
		}
		if err := f.send(out...); err != nil {
			return 0, err
		}
	}
	if len(f.partial) > 4096 {
		f.partial = f.partial[:0]
	}
	return len(p), nil
}

// postfixReply rewrites one go-smtp reply into what Postfix says in its
// place (nil: say nothing). A reply not listed here passes unchanged: the
// session's own replies are Postfix's words already.
func (f *face) postfixReply(lines []string) []string {
	last := lines[len(lines)-1]
	code, _ := strconv.Atoi(last[:min(3, len(last))])
	text := ""
	if len(last) > 4 {
		text = last[4:]
	}
	host := f.l.srv.cfg.Hostname
	if !f.greeted {
		f.greeted = true
		return []string{"220 " + f.l.srv.cfg.Banner}
	}
	if f.afterData {
		f.afterData, f.inMail = false, false
	}
	switch {
	case code == 334:
		f.inAuth = true
		return lines
	case code == 354:
		f.mode, f.dataBytes, f.lineStart = modeData, 0, true
		return []string{"354 End data with <CR><LF>.<CR><LF>"}
	case len(lines) > 1 && strings.HasPrefix(lines[0], "250-Hello "):
		return f.ehlo()
	}
	switch text {
	case "2.0.0 Session reset", "2.0.0 I have successfully done nothing":
		return []string{"250 2.0.0 Ok"}
	case "2.0.0 Authentication succeeded":
		return []string{"235 2.7.0 Authentication successful"}
	case "2.0.0 Bye":
		return []string{"221 2.0.0 Bye"}
	case "2.0.0 Continue":
		return []string{fmt.Sprintf("250 2.0.0 Ok: %d bytes", f.bdatSize)}
	case "2.0.0 OK: queued":
		id := ""
		if f.sess != nil {
			id = f.sess.queueID
		}
		return []string{"250 2.0.0 Ok: queued as " + id}
	case "2.5.0 Cannot VRFY user, but will accept message":
		return []string{"252 2.0.0 " + strings.Trim(f.arg, "<> ")}
	case "5.5.1 Please introduce yourself first.":
		return []string{"503 5.5.1 Error: send HELO/EHLO first"}
	case "5.5.1 Already authenticated":
		return []string{"503 5.5.1 Error: already authenticated"}
	case "5.5.1 Missing MAIL FROM command.":
		return []string{"503 5.5.1 Error: need MAIL command"}
	case "5.5.1 MAIL not allowed during message transfer":
		return []string{"503 5.5.1 Error: nested MAIL command"}
	case "5.5.1 Missing RCPT TO command.":
		return []string{"503 5.5.1 Error: need RCPT command"}
	case "5.5.2 Was expecting MAIL arg syntax of FROM:<address>":
		return []string{"501 5.5.4 Syntax: MAIL FROM:<address>"}
	case "5.5.2 Was expecting RCPT arg syntax of TO:<address>":
		return []string{"501 5.5.4 Syntax: RCPT TO:<address>"}
	case "5.3.4 Max message size exceeded", "5.3.4 Maximum message size exceeded":
		return []string{"552 5.3.4 Message size exceeds fixed limit"}
	case "5.5.1 Too many errors. Quiting now":
		return []string{"421 4.7.0 " + host + " Error: too many errors"}
	case "5.5.2 Error: bad syntax":
		return []string{"500 5.5.2 Error: bad syntax"}
	case "5.5.2 Bad command":
		return []string{"502 5.5.2 Error: command not recognized"}
	case "5.4.0 Too long line, closing connection":
		return []string{"500 5.5.2 Error: line too long"}
	case "4.4.2 Idle timeout, bye bye":
		return []string{"421 4.4.2 " + host + " Error: timeout exceeded"}
	case "4.4.0 Connection error, sorry":
		return nil
	case "4.7.0 Invalid base64 data":
		return []string{"535 5.7.8 Error: authentication failed: Invalid base64 data in continued response"}
	case "5.0.0 Negotiation cancelled":
		return []string{"501 5.7.0 Authentication aborted"}
	case "5.5.4 Missing parameter":
		return []string{"501 5.5.4 Syntax: AUTH mechanism"}
	case "5.7.4 Unsupported authentication mechanism":
		return []string{"535 5.7.8 Error: authentication failed: Invalid authentication mechanism"}
	case "4.0.0 Internal server error":
		return []string{"451 4.3.0 Error: queue file write error"}
	case "5.0.0 Handshake error":
		return nil
	}
	switch {
	case code == 250 && strings.HasPrefix(text, "2.0.0 Roger, accepting mail from <"):
		f.inMail, f.dataBytes = true, 0
		return []string{"250 2.1.0 Ok"}
	case code == 250 && strings.HasPrefix(text, "2.0.0 I'll make sure <"):
		return []string{"250 2.1.5 Ok"}
	case code == 250 && strings.HasPrefix(text, "2.0.0 Hello "):
		return []string{"250 " + host}
	case code == 452 && strings.HasPrefix(text, "4.5.3 Maximum limit of "):
		return []string{"452 4.5.3 Error: too many recipients"}
	case code == 500 && strings.HasPrefix(text, "5.5.2 Syntax errors, "),
		code == 502 && strings.HasSuffix(text, " command not implemented"):
		return []string{"502 5.5.2 Error: command not recognized"}
	case code == 501 && strings.HasPrefix(text, "5.5.4 "):
		return []string{"501 5.5.4 Bad parameter syntax"}
	case code == 504 && strings.HasPrefix(text, "5.5.4 "):
		return []string{"555 5.5.4 Unsupported option: " + strings.Fields(f.arg + " x")[0]}
	}
	return lines
}

// ehlo is Postfix's EHLO reply with Debian's defaults: STARTTLS until TLS
// is on, AUTH where the real server offers it (on submission only once
// TLS is on, smtpd_tls_auth_only).
func (f *face) ehlo() []string {
	cfg := f.l.srv.cfg
	caps := []string{cfg.Hostname, "PIPELINING", fmt.Sprintf("SIZE %d", cfg.MaxMessageBytes), "VRFY", "ETRN"}
	if cfg.TLS != nil && !f.tls {
		caps = append(caps, "STARTTLS")
	}
	if f.l.cfg.Auth && (f.tls || !f.l.cfg.RequireTLS || cfg.TLS == nil) {
		caps = append(caps, "AUTH PLAIN LOGIN")
	}
	caps = append(caps, "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING")
	out := make([]string, len(caps))
	for i, c := range caps {
		sep := "-"
		if i == len(caps)-1 {
			sep = " "
		}
		out[i] = "250" + sep + c
	}
	return out
}
