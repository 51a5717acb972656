package trap

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
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
	verb      string // the last command handed to go-smtp

	// Write side.
	partial  []byte
	reply    []string
	greeted  bool
	swallow  int      // go-smtp replies to drop (to commands the face injected)
	override []string // go-smtp's next reply is replaced by this one

	inMail     bool  // a MAIL was accepted and its transaction has not ended
	afterData  bool  // the next reply ends a DATA transaction
	rcpts      int   // RCPTs accepted in this transaction
	helloed    bool  // a HELO/EHLO reached go-smtp (it has a session)
	hiddenHelo bool  // the face sent go-smtp a HELO of its own
	esmtp      bool  // the last HELO/EHLO was EHLO (Postfix's state->protocol)
	illPipe    bool  // improper pipelining seen (smtpd_flag_ill_pipelining)
	bareRcpt   bool  // the RCPT handed to go-smtp had no domain of its own (bareDomain)
	msgSize    int64 // MAIL's SIZE=, until the transaction ends (state->msg_size)

	// Postfix's counters (smtpd.c: state->error_count, state->junk_cmds).
	errors  int
	junk    int
	junkCmd bool // the command being answered counts as junk

	// SASL.
	authCont bool   // the last SASL line handed to go-smtp was a continuation
	saslBuf  []byte // a continuation line being read

	// BDAT and DATA, as Postfix counts and ends them.
	bdatTx     bool   // a BDAT chunk went through in this transaction
	bdatErr    bool   // BDAT chunks are skipped until LAST or RSET (SMTPD_BDAT_STAT_ERROR)
	skipReply  string // after a skipped chunk
	skipLast   bool
	bdatAct    int64 // Postfix's act_size: each record (line) counts its length + 2
	bdatRec    int   // bytes of the current record
	bdatCR     bool  // the last byte was CR
	prevBareLF bool  // DATA: the previous line ended in a bare LF
	lastCR     bool  // DATA: the previous piece ended in CR

	tls bool
	cut bool // the face ended the session
}

const (
	modeCommand = iota
	modeData
	modeBDAT
	modeSkip // a BDAT chunk the face reads and discards itself
)

// Postfix's defaults (postconf -d): smtpd_soft_error_limit,
// smtpd_hard_error_limit, smtpd_junk_command_limit, smtpd_error_sleep_time,
// smtpd_sasl_response_limit.
const (
	softErrors = 10
	hardErrors = 20
	junkLimit  = 100
	errorSleep = time.Second
	saslLimit  = 12288
)

// errCut ends go-smtp's reading when the face has cut the session off.
var errCut = errors.New("session cut off")

// faceBuffer is the read buffer, Postfix's line_length_limit: a longer
// command line is cut to it and the rest skipped (see next); message text
// and BDAT chunks are read in pieces of it.
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
	// A moment past the session's end, for its last 421.
	d := time.Now().Add(30 * time.Second)
	if grace := f.end.Add(2 * time.Second); d.After(grace) {
		d = grace
	}
	f.Conn.SetWriteDeadline(d)
	_, err := f.Conn.Write(b.Bytes())
	return err
}

// answer sends a reply to a command as Postfix's smtpd_chat_reply does:
// after a second's sleep once the client made smtpd_soft_error_limit
// errors; a 4xx or 5xx reply counts an error, and at
// smtpd_hard_error_limit the session ends with Postfix's 421. A 421 or
// 521 ends it too (smtpd_chat.c: orderly disconnect).
func (f *face) answer(lines ...string) error {
	if f.errors >= softErrors {
		f.sleep(errorSleep)
	}
	if err := f.send(lines...); err != nil {
		return err
	}
	last := lines[len(lines)-1]
	if last >= "4" && last != "452 4.5.3 Error: too many recipients" { // rcpt_cmd: not an error until the overshoot limit
		f.errors++
	}
	if f.junkCmd {
		f.junkCmd = false
		if f.junk > junkLimit { // smtpd.c: junk_cmds++ > var_smtpd_junk_cmd_limit
			f.errors++
		}
		f.junk++
	}
	if strings.HasPrefix(last, "421") || strings.HasPrefix(last, "521") || strings.HasPrefix(last, "221 2.7.0") {
		f.cut = true
		return errCut
	}
	if f.errors >= hardErrors {
		f.sleep(errorSleep)
		f.send("421 4.7.0 " + f.l.srv.cfg.Hostname + " Error: too many errors")
		f.cut = true
		return errCut
	}
	return nil
}

// sleep waits, but not past the session's end.
func (f *face) sleep(d time.Duration) {
	if until := time.Until(f.end); until < d {
		d = max(until, 0)
	}
	time.Sleep(d)
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
	switch f.mode {
	case modeBDAT:
		return f.nextChunk()
	case modeSkip:
		return f.skipChunk()
	}
	line, err := f.in.ReadSlice('\n')
	if len(line) == 0 && err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil
		}
		return err
	}
	complete := err == nil
	if !complete && !errors.Is(err, bufio.ErrBufferFull) {
		return err // the connection ended within a line
	}
	if f.mode == modeData {
		return f.dataLine(line, complete)
	}
	if f.inAuth {
		return f.saslLine(line, complete)
	}
	if !complete {
		// Postfix reads line_length_limit (2048) bytes of a command and
		// skips the rest of the line (smtpd_chat_query, SMTP_GET_FLAG_SKIP).
		head := append([]byte(nil), line...)
		if err := f.skipLine(); err != nil {
			return err
		}
		line = append(head, '\n')
	}
	return f.command(strings.TrimRight(string(line), "\r\n"))
}

// skipLine reads and drops the rest of a line.
func (f *face) skipLine() error {
	for {
		_, err := f.in.ReadSlice('\n')
		if err == nil {
			return nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// dataLine hands go-smtp a line of message text with CRLF line ends, and
// ends the text where Postfix ends it: smtpd_forbid_bare_newline = no
// (Postfix 3.8 and older) takes a bare LF for a line end, as ".\n" for the
// end of data; normalize (the default since 3.9) takes only a "." line
// between CRLFs and drops a "." line next to a bare LF
// (smtpd.c:receive_data).
func (f *face) dataLine(line []byte, complete bool) error {
	if err := f.count(len(line)); err != nil {
		return err
	}
	bareLF := complete && !bytes.HasSuffix(line, []byte("\r\n")) && !(len(line) == 1 && f.lastCR)
	atStart := f.lineStart
	f.lastCR = !complete && bytes.HasSuffix(line, []byte("\r"))
	f.lineStart = complete
	prevBare := f.prevBareLF
	if complete {
		f.prevBareLF = bareLF
	}
	if atStart && complete && strings.TrimRight(string(line), "\r\n") == "." {
		if f.l.srv.cfg.StrictEOD && (bareLF || prevBare) {
			return nil // not the end, and not kept
		}
		f.pending = append(f.pending[:0], ".\r\n"...)
		f.mode, f.afterData = modeCommand, true
		return nil
	}
	f.pending = append(f.pending[:0], line...)
	if bareLF {
		f.pending = append(f.pending[:len(f.pending)-1], '\r', '\n')
	}
	return nil
}

// saslLine reads a SASL response (after a 334) whole, within Postfix's
// smtpd_sasl_response_limit, and hands it to go-smtp.
func (f *face) saslLine(line []byte, complete bool) error {
	f.saslBuf = append(f.saslBuf, line...)
	for !complete && len(f.saslBuf) <= saslLimit {
		more, err := f.in.ReadSlice('\n')
		complete = err == nil
		if !complete && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
		f.saslBuf = append(f.saslBuf, more...)
	}
	f.inAuth, f.authCont = false, true
	resp := strings.TrimRight(string(f.saslBuf), "\r\n")
	f.saslBuf = f.saslBuf[:0]
	switch {
	case !complete:
		if err := f.skipLine(); err != nil {
			return err
		}
		f.override = []string{"500 5.5.6 SASL response limit exceeded"}
		resp = "*"
	case resp == "=":
		// Postfix sends it on to Dovecot, which cannot decode it; go-smtp
		// would take it for an empty response.
		resp = "!"
	}
	f.pending = append(f.pending[:0], resp+"\r\n"...)
	return nil
}

// count adds message bytes; a client sending far past the limit is cut
// off, not read to its end: Postfix's answer, then the connection closes.
func (f *face) count(n int) error {
	f.dataBytes += int64(n)
	if f.dataBytes > f.l.cfg.readCap(f.l.srv.cfg)+faceBuffer {
		f.l.srv.stats.CutSize.Add(1)
		f.send("552 5.3.4 Message size exceeds fixed limit")
		f.cut = true
		return errCut
	}
	return nil
}

// nextChunk hands go-smtp the next piece of a BDAT chunk.
func (f *face) nextChunk() error {
	want := int(min(f.bdatLeft, faceBuffer))
	f.pending = slices.Grow(f.pending[:0], want)[:want]
	n, err := f.in.Read(f.pending) // straight into pending: no buffer per piece
	f.pending = f.pending[:n]
	if n > 0 {
		f.bdatLeft -= int64(n)
		f.actSize(f.pending)
		if f.bdatLeft == 0 {
			f.mode = modeCommand
		}
		return f.count(n)
	}
	return err
}

// actSize counts message bytes as Postfix's receive_bdat counts act_size,
// which its "250 2.0.0 Ok: N bytes queued as" reports: each record, a
// line without its line end or line_length_limit bytes of a longer
// one, counts its length + 2.
func (f *face) actSize(p []byte) {
	for _, c := range p {
		switch {
		case c == '\n':
			n := f.bdatRec
			if f.bdatCR {
				n--
			}
			f.bdatAct += int64(n) + 2
			f.bdatRec, f.bdatCR = 0, false
			continue
		case f.bdatRec >= faceBuffer:
			f.bdatAct += int64(f.bdatRec) + 2
			f.bdatRec = 0
		}
		f.bdatRec++
		f.bdatCR = c == '\r'
	}
}

// skipChunk reads and drops a BDAT chunk Postfix refuses, then answers
// (smtpd.c:skip_bdat): the refusal comes once the chunk is read.
func (f *face) skipChunk() error {
	if f.bdatLeft > 0 {
		n, err := f.in.Discard(int(min(f.bdatLeft, faceBuffer)))
		f.bdatLeft -= int64(n)
		if f.bdatLeft > 0 {
			return err
		}
	}
	f.mode = modeCommand
	if f.skipLast {
		f.endMail()
	} else {
		f.bdatErr = true
	}
	return f.answer(f.skipReply)
}

// endMail ends the MAIL transaction as Postfix's mail_reset does.
func (f *face) endMail() {
	f.inMail, f.rcpts, f.bdatTx, f.bdatErr, f.bdatAct, f.bdatRec, f.bdatCR = false, 0, false, false, 0, 0, false
	f.msgSize = 0
}

// bareDomain stands for the missing domain of a recipient go-smtp is
// handed (see command's RCPT).
const bareDomain = "bare.invalid"

// Postfix's commands (smtpd.c: smtpd_cmd_table); preTLS: those allowed
// before STARTTLS where TLS is required (SMTPD_CMD_FLAG_PRE_TLS); last:
// those after which pipelined input is improper (SMTPD_CMD_FLAG_LAST);
// junk: those counted against smtpd_junk_command_limit.
var (
	postfixCmds = map[string]bool{"HELO": true, "EHLO": true, "XCLIENT": true, "XFORWARD": true, "STARTTLS": true, "AUTH": true,
		"MAIL": true, "RCPT": true, "DATA": true, "BDAT": true, "RSET": true, "NOOP": true, "VRFY": true, "ETRN": true, "QUIT": true}
	preTLSCmds = map[string]bool{"HELO": true, "EHLO": true, "XCLIENT": true, "STARTTLS": true, "NOOP": true, "QUIT": true, "HELP": true}
	lastCmds   = map[string]bool{"HELO": true, "EHLO": true, "DATA": true, "NOOP": true, "VRFY": true}
	junkCmds   = map[string]bool{"HELO": true, "EHLO": true, "RSET": true, "NOOP": true, "VRFY": true, "ETRN": true}
)

// postfixHelp is Postfix 3.9's answer to HELP: the commands of its table.
const postfixHelp = "214 2.0.0 Commands: AUTH BDAT DATA EHLO ETRN HELO HELP MAIL NOOP QUIT RCPT RSET STARTTLS VRFY XCLIENT XFORWARD"

// forbidden reports what Postfix hangs up on (smtpd_forbidden_commands =
// CONNECT GET POST regexp:{{/^[^A-Z]/ Bogus}}, and a message header
// sent as a command): an unknown command's first word.
func forbidden(word string) bool {
	switch strings.ToUpper(word) {
	case "CONNECT", "GET", "POST":
		return true
	}
	c := word[0] | 0x20
	if c < 'a' || c > 'z' {
		return true
	}
	name, ok := strings.CutSuffix(word, ":") // is_header: "Subject:"
	return ok && name != "" && !strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' })
}

// command answers a command line as Postfix's smtpd_proto does, in its
// order: syntax, unknown commands, TLS, pipelining, then the command;
// what go-smtp is to run it is handed to it, its words normalised.
func (f *face) command(text string) error {
	cfg := f.l.srv.cfg
	f.pending = f.pending[:0]
	fields := strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\v' || r == '\f' })
	if len(fields) == 0 {
		return f.answer("500 5.5.2 Error: bad syntax")
	}
	verb := strings.ToUpper(fields[0])
	if !postfixCmds[verb] && !(verb == "HELP" && cfg.Help) {
		if forbidden(fields[0]) {
			return f.answer("221 2.7.0 Error: I can break rules, too. Goodbye.")
		}
		return f.answer("500 5.5.2 Error: command not recognized")
	}
	if f.l.cfg.RequireTLS && cfg.TLS != nil && !f.tls && !preTLSCmds[verb] {
		return f.answer("530 5.7.0 Must issue a STARTTLS command first")
	}
	if (!f.esmtp || lastCmds[verb]) && !f.illPipe && f.in.Buffered() > 0 {
		f.illPipe = true                // Postfix logs "improper command pipelining"
		if cfg.ForbidUnauthPipelining { // then smtpd_proto hangs up
			f.answer("554 5.5.0 Error: SMTP protocol synchronization")
			f.cut = true
			return errCut
		}
	}
	f.junkCmd = junkCmds[verb]
	args := fields[1:]
	pass := strings.Join(fields, " ")
	switch verb {
	case "HELP":
		return f.answer(postfixHelp)
	case "STARTTLS":
		return f.startTLS(args)
	case "EHLO", "HELO":
		if len(args) == 0 {
			return f.answer("501 Syntax: " + verb + " hostname")
		}
		f.endMail()
		f.helloed, f.esmtp = true, verb == "EHLO"
	case "RSET":
		if len(args) > 0 {
			return f.answer("501 5.5.4 Syntax: RSET")
		}
		f.endMail()
	case "NOOP", "QUIT":
		pass = verb
	case "XCLIENT", "XFORWARD":
		switch {
		case f.inMail:
			return f.answer("503 5.5.1 Error: MAIL transaction in progress")
		case len(args) == 0:
			return f.answer("501 5.5.4 Syntax: " + verb + " attribute=value...")
		}
		return f.answer("550 5.7.0 Error: insufficient authorization")
	case "ETRN":
		return f.answer(etrn(f.inMail, args))
	case "VRFY":
		return f.answer(f.vrfy(args))
	case "AUTH":
		if r := f.auth(args); r != "" {
			return f.answer(r)
		}
		f.authCont = false
		f.hello()
	case "MAIL":
		if f.inMail {
			return f.answer("503 5.5.1 Error: nested MAIL command")
		}
		addr, r := mailArgs(args, f.l.cfg.sizeLimit(cfg), f.l.cfg.smtputf8(), f.l.cfg.has("DSN"), &f.msgSize)
		if r != "" {
			return f.answer(r)
		}
		pass = "MAIL FROM:" + addr
		f.hello()
	case "RCPT":
		if !f.inMail {
			return f.answer("503 5.5.1 Error: need MAIL command")
		}
		if f.bdatTx {
			return f.answer("503 5.5.1 Error: RCPT after BDAT")
		}
		addr, r := rcptArgs(args, f.l.cfg.has("DSN"))
		if r != "" {
			return f.answer(r)
		}
		// go-smtp insists on a domain, Postfix does not (it appends
		// @$myorigin): a bare name goes to go-smtp with bareDomain, which
		// the session takes off again.
		inner := strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
		if f.bareRcpt = inner != "" && !strings.Contains(inner, "@"); f.bareRcpt {
			addr = "<" + inner + "@" + bareDomain + ">"
		}
		pass = "RCPT TO:" + addr
	case "DATA":
		switch {
		case f.bdatTx:
			return f.answer("503 5.5.1 Error: DATA after BDAT")
		case f.rcpts == 0 && f.inMail:
			return f.answer("554 5.5.1 Error: no valid recipients")
		case f.rcpts == 0:
			return f.answer("503 5.5.1 Error: need RCPT command")
		case len(args) > 0:
			return f.answer("501 5.5.4 Syntax: DATA")
		}
	case "BDAT":
		return f.bdat(args, pass)
	}
	f.verb = verb
	f.pending = append(f.pending, pass+"\r\n"...) // after hello's HELO, if any
	return nil
}

// hello gives go-smtp the session it insists on before MAIL and AUTH when
// the client sent no HELO/EHLO, which Postfix does not require
// (smtpd_helo_required = no); its reply is dropped.
func (f *face) hello() {
	if f.helloed {
		return
	}
	f.helloed, f.hiddenHelo = true, true
	f.swallow++
	f.pending = append(f.pending, "HELO "+f.l.srv.cfg.Hostname+"\r\n"...)
}

// startTLS is Postfix's starttls_cmd.
func (f *face) startTLS(args []string) error {
	cfg := f.l.srv.cfg
	switch {
	case len(args) > 0:
		return f.answer("501 5.5.4 Syntax: STARTTLS")
	case f.tls:
		return f.answer("554 5.5.1 Error: TLS already active")
	case cfg.TLS == nil || f.l.cfg.NoSTARTTLS || !f.l.cfg.has("STARTTLS"):
		return f.answer("502 5.5.1 Error: command not implemented")
	}
	if err := f.send("220 2.0.0 Ready to start TLS"); err != nil {
		return err
	}
	tc := tls.Server(f.raw, cfg.TLS)
	tc.SetDeadline(f.clamp(time.Now().Add(10 * time.Second)))
	if err := tc.Handshake(); err != nil {
		f.cut = true
		return errCut
	}
	tc.SetDeadline(f.end)
	f.Conn, f.tls = tc, true
	f.in = bufio.NewReaderSize(tc, faceBuffer) // plaintext sent after STARTTLS is dropped, as Postfix drops it
	// go-smtp forgets the envelope, and the session its login.
	f.pending = append(f.pending[:0], "RSET\r\n"...)
	f.swallow++
	f.endMail()
	if f.sess != nil {
		f.sess.tls, f.sess.account = true, ""
	}
	return nil
}

// auth checks AUTH as Postfix's smtpd_sasl_auth_cmd and Dovecot's xsasl
// client do before Dovecot sees it: "" hands it to go-smtp.
func (f *face) auth(args []string) string {
	switch {
	case !f.l.cfg.Auth || !f.l.cfg.has("AUTH") || !f.saslActive():
		// smtpd_sasl_auth_cmd: SASL is off, or not yet on (before TLS with
		// smtpd_tls_auth_only), or its keyword discarded.
		return "503 5.5.1 Error: authentication not enabled"
	case f.inMail:
		return "503 5.5.1 Error: MAIL transaction in progress"
	case f.sess != nil && f.sess.account != "":
		return "" // go-smtp: already authenticated
	case len(args) < 1 || len(args) > 2:
		return "501 5.5.4 Syntax: AUTH mechanism"
	}
	if !slices.ContainsFunc(f.l.cfg.mechanisms(f.tls), func(m string) bool { return strings.EqualFold(m, args[0]) }) {
		return "535 5.7.8 Error: authentication failed: Invalid authentication mechanism" // xsasl_dovecot_server_first
	}
	if len(args) == 2 && strings.Trim(args[1], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != "" {
		return "535 5.7.8 Error: authentication failed: Invalid base64 data in initial response"
	}
	return ""
}

// vrfy is Postfix's vrfy_cmd with the restrictions of a server that
// relays only for logged-in clients.
func (f *face) vrfy(args []string) string {
	lc := f.l.cfg
	if lc.DisableVRFY {
		return "502 5.5.1 VRFY command is disabled"
	}
	if n := len(args); n > 1 && lc.smtputf8() && strings.EqualFold(args[n-1], "SMTPUTF8") {
		args = args[:n-1]
	}
	if len(args) == 0 {
		if lc.NoSMTPUTF8 {
			return "501 5.5.4 Syntax: VRFY address"
		}
		return "501 5.5.4 Syntax: VRFY address [SMTPUTF8]"
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(args[0], "<"), ">")
	if len(args) > 1 || addr == "" || strings.ContainsAny(addr, "<>") {
		return "501 5.1.3 Bad recipient address syntax"
	}
	if f.sess == nil || f.sess.account == "" {
		if r := lc.unauthRcpt(addr); r != "" {
			return r
		}
	}
	return "252 2.0.0 " + args[0]
}

// etrn is Postfix's etrn_cmd on a server with no fast_flush_domains.
func etrn(inMail bool, args []string) string {
	switch {
	case inMail:
		return "503 Error: MAIL transaction in progress"
	case len(args) != 1:
		return "500 Syntax: ETRN domain"
	}
	d := args[0]
	if d[0] == '@' || d[0] == '#' {
		d = d[1:]
	}
	if !validHostname(d) && !(strings.HasPrefix(d, "[") && strings.HasSuffix(d, "]")) {
		return "501 Error: invalid parameter syntax"
	}
	return "459 <" + d + ">: service unavailable"
}

// validHostname is Postfix's valid_hostname, roughly.
func validHostname(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	numeric := true
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
				numeric = false
			default:
				return false
			}
		}
	}
	return !numeric
}

// splitPath splits MAIL/RCPT arguments ("FROM:<a>" or "FROM:" "<a>") into
// the address and its parameters, as smtpd_token does.
func splitPath(args []string, key string) (addr string, params []string, ok bool) {
	if len(args) == 0 || !strings.HasPrefix(strings.ToUpper(args[0]), key) {
		return "", nil, false
	}
	if rest := args[0][len(key):]; rest != "" {
		return rest, args[1:], true
	}
	if len(args) < 2 {
		return "", nil, false
	}
	return args[1], args[2:], true
}

// badPath reports an address smtpd_token or extract_addr refuses.
func badPath(addr string) bool {
	if strings.HasPrefix(addr, "<") != strings.HasSuffix(addr, ">") || strings.Count(addr, "<") > 1 || strings.Count(addr, ">") > 1 {
		return true
	}
	return false
}

// mailArgs checks MAIL's address and parameters as Postfix's mail_cmd
// does, in its order and words; go-smtp is handed the address alone.
// limit is message_size_limit (0: none); utf8 and dsn say whether
// SMTPUTF8 and DSN are on and announced. size is Postfix's
// state->msg_size: SIZE= sets it and only the end of the transaction
// (mail_reset) clears it, so that a size refused stays refused for the
// next MAIL without SIZE=.
func mailArgs(args []string, limit int64, utf8, dsn bool, size *int64) (addr, reply string) {
	addr, params, ok := splitPath(args, "FROM:")
	if !ok {
		return "", "501 5.5.4 Syntax: MAIL FROM:<address>"
	}
	if badPath(addr) {
		return "", "501 5.1.7 Bad sender address syntax"
	}
	ret, envid := false, false
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		switch k = strings.ToUpper(k); {
		case strings.EqualFold(p, "BODY=8BITMIME"), strings.EqualFold(p, "BODY=7BIT"), utf8 && strings.EqualFold(p, "SMTPUTF8"), k == "AUTH" && strings.Contains(p, "="):
		case !dsn && (k == "RET" || k == "ENVID") && strings.Contains(p, "="):
			return "", "501 5.7.1 DSN support is disabled"
		case k == "SIZE" && strings.Contains(p, "="):
			if v == "" || strings.Trim(v, "0123456789") != "" {
				return "", "501 5.5.4 Bad message size syntax"
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				*size = 0
				return "", "552 5.3.4 Message size exceeds file system imposed limit"
			}
			*size = n
		case k == "RET" && strings.Contains(p, "="):
			if ret || !strings.EqualFold(v, "FULL") && !strings.EqualFold(v, "HDRS") {
				return "", "501 5.5.4 Bad RET parameter syntax"
			}
			ret = true
		case k == "ENVID" && strings.Contains(p, "="):
			if envid || v == "" {
				return "", "501 5.5.4 Bad ENVID parameter syntax"
			}
			envid = true
		default:
			return "", "555 5.5.4 Unsupported option: " + p
		}
	}
	if limit > 0 && *size > limit {
		return "", "552 5.3.4 Message size exceeds fixed limit"
	}
	return addr, ""
}

// rcptArgs checks RCPT's address and parameters as Postfix's rcpt_cmd;
// dsn says whether DSN is announced.
func rcptArgs(args []string, dsn bool) (addr, reply string) {
	addr, params, ok := splitPath(args, "TO:")
	if !ok {
		return "", "501 5.5.4 Syntax: RCPT TO:<address>"
	}
	if badPath(addr) || addr == "<>" {
		return "", "501 5.1.3 Bad recipient address syntax"
	}
	notify, orcpt := false, false
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		switch k = strings.ToUpper(k); {
		case !dsn && (k == "NOTIFY" || k == "ORCPT") && strings.Contains(p, "="):
			return "", "501 5.7.1 DSN support is disabled"
		case k == "NOTIFY" && strings.Contains(p, "="):
			if notify || !validNotify(v) {
				return "", "501 5.5.4 Error: Bad NOTIFY parameter syntax"
			}
			notify = true
		case k == "ORCPT" && strings.Contains(p, "="):
			if t, a, ok := strings.Cut(v, ";"); orcpt || !ok || t == "" || a == "" {
				return "", "501 5.5.4 Error: Bad ORCPT parameter syntax"
			}
			orcpt = true
		default:
			return "", "555 5.5.4 Unsupported option: " + p
		}
	}
	return addr, ""
}

func validNotify(v string) bool {
	seen := map[string]bool{}
	for _, n := range strings.Split(strings.ToUpper(v), ",") {
		if seen[n] || n != "NEVER" && n != "SUCCESS" && n != "FAILURE" && n != "DELAY" {
			return false
		}
		seen[n] = true
	}
	return !seen["NEVER"] || len(seen) == 1
}

// bdat is Postfix's bdat_cmd up to reading the chunk: a malformed BDAT
// hangs up (521); a refused chunk is read and dropped, then refused.
func (f *face) bdat(args []string, pass string) error {
	if !f.l.cfg.has("CHUNKING") {
		return f.answer("521 5.5.1 Error: command not implemented") // hangs up: the chunk would be read as commands
	}
	if len(args) < 1 || len(args) > 2 || strings.Trim(args[0], "0123456789") != "" || len(args) == 2 && !strings.EqualFold(args[1], "LAST") {
		return f.answer("521 5.5.4 Syntax: BDAT count [LAST]")
	}
	size, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return f.answer("521 5.5.4 Syntax: BDAT count [LAST]")
	}
	last := len(args) == 2
	skip := func(reply string) error {
		f.mode, f.bdatLeft, f.skipReply, f.skipLast = modeSkip, size, reply, last
		return nil
	}
	switch {
	case size == 0 && !last:
		return skip("551 5.7.1 Null BDAT request")
	case f.bdatErr:
		return skip(fmt.Sprintf("551 5.0.0 Discarded %d bytes after earlier error", size))
	case !f.bdatTx && f.rcpts == 0 && f.inMail:
		return skip("554 5.5.1 Error: no valid recipients")
	case !f.bdatTx && f.rcpts == 0:
		return skip("503 5.5.1 Error: need RCPT command")
	case size > f.l.cfg.readCap(f.l.srv.cfg)-f.dataBytes || size > math.MaxUint32:
		return skip("552 5.3.4 Chunk exceeds message size limit")
	}
	if !f.bdatTx {
		f.dataBytes = 0
	}
	f.bdatTx = true
	f.verb = "BDAT"
	f.pending = append(f.pending[:0], pass+"\r\n"...)
	f.bdatSize, f.bdatLeft = size, size
	f.afterData = last // the next reply ends the transaction
	if size > 0 {
		f.mode = modeBDAT
	}
	return nil
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
		greeting := !f.greeted
		out := f.postfixReply(reply)
		if f.override != nil && !greeting {
			out, f.override = f.override, nil
		}
		if len(out) == 0 {
			continue
		}
		send := f.answer
		if greeting {
			send = f.send
		}
		if err := send(out...); err != nil {
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
		f.afterData = false
		defer f.endMail()
	}
	switch {
	case code == 334:
		f.inAuth = true
		return lines
	case code == 354:
		f.mode, f.dataBytes, f.lineStart, f.prevBareLF, f.lastCR = modeData, 0, true, false, false
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
		f.junk = 0
		if f.bdatTx {
			if f.bdatRec > 0 { // a last line without its line end
				f.bdatAct += int64(f.bdatRec) + 2
			}
			return []string{fmt.Sprintf("250 2.0.0 Ok: %d bytes queued as %s", f.bdatAct, id)}
		}
		return []string{"250 2.0.0 Ok: queued as " + id}
	case "5.5.1 Please introduce yourself first.":
		return []string{"503 5.5.1 Error: send HELO/EHLO first"}
	case "5.5.1 Already authenticated":
		return []string{"503 5.5.1 Error: already authenticated"}
	case "5.5.1 Missing MAIL FROM command.":
		return []string{"503 5.5.1 Error: need MAIL command"}
	case "5.5.1 MAIL not allowed during message transfer":
		return []string{"503 5.5.1 Error: nested MAIL command"}
	case "5.5.1 RCPT not allowed during message transfer":
		return []string{"503 5.5.1 Error: RCPT after BDAT"}
	case "5.5.1 DATA not allowed during message transfer":
		return []string{"503 5.5.1 Error: DATA after BDAT"}
	case "5.5.1 Missing RCPT TO command.":
		if f.inMail {
			return []string{"554 5.5.1 Error: no valid recipients"}
		}
		return []string{"503 5.5.1 Error: need RCPT command"}
	case "5.5.2 Was expecting MAIL arg syntax of FROM:<address>":
		return []string{"501 5.1.7 Bad sender address syntax"}
	case "5.5.2 Was expecting RCPT arg syntax of TO:<address>":
		return []string{"501 5.1.3 Bad recipient address syntax"}
	case "5.3.4 Max message size exceeded", "5.3.4 Maximum message size exceeded":
		if f.verb == "BDAT" {
			return []string{"552 5.3.4 Chunk exceeds message size limit"}
		}
		return []string{"552 5.3.4 Message size exceeds fixed limit"}
	case "4.4.2 Idle timeout, bye bye":
		return []string{"421 4.4.2 " + host + " Error: timeout exceeded"}
	case "4.4.0 Connection error, sorry":
		return nil
	case "4.7.0 Invalid base64 data":
		if f.authCont {
			return []string{"535 5.7.8 Error: authentication failed: Invalid base64 data in continued response"}
		}
		return []string{"535 5.7.8 Error: authentication failed: Invalid base64 data in initial response"}
	case "5.0.0 Negotiation cancelled":
		return []string{"501 5.7.0 Authentication aborted"}
	case "4.0.0 Internal server error":
		return []string{"451 4.3.0 Error: queue file write error"}
	case "5.0.0 Handshake error":
		return nil
	}
	switch {
	case code == 250 && strings.HasPrefix(text, "2.0.0 Roger, accepting mail from <"):
		f.inMail, f.rcpts, f.dataBytes = true, 0, 0
		return []string{"250 2.1.0 Ok"}
	case code == 250 && strings.HasPrefix(text, "2.0.0 I'll make sure <"):
		f.rcpts++
		return []string{"250 2.1.5 Ok"}
	case code == 250 && strings.HasPrefix(text, "2.0.0 Hello "):
		return []string{"250 " + host}
	case code == 452 && strings.HasPrefix(text, "4.5.3 Maximum limit of "):
		return []string{"452 4.5.3 Error: too many recipients"}
	case strings.HasPrefix(text, "5.0.0 Error: transaction failed: "):
		// The message text could not be read: go-smtp's words (and a
		// Go error naming the trap's own address) must not show.
		if strings.Contains(text, "timeout") {
			return []string{"421 4.4.2 " + host + " Error: timeout exceeded"}
		}
		f.cut = true
		return nil
	case code == 500 || code == 501 || code == 502 || code == 504:
		// Any other go-smtp refusal: a command Postfix would not understand.
		return []string{"500 5.5.2 Error: command not recognized"}
	}
	return lines
}

// ehlo is Postfix's EHLO reply (smtpd.c:ehlo_cmd), its keywords in its
// order, as the real service on the listener's port announces them:
// SIZE with its message_size_limit, STARTTLS until TLS is on, AUTH while
// SASL is on (with smtpd_tls_auth_only, once TLS is on) with the
// service's mechanisms, and none of smtpd_discard_ehlo_keywords.
func (f *face) ehlo() []string {
	cfg, lc := f.l.srv.cfg, f.l.cfg
	lines := []string{cfg.Hostname}
	add := func(keyword, line string, on bool) {
		if on && lc.has(keyword) {
			lines = append(lines, line)
		}
	}
	size := "SIZE"
	if l := lc.sizeLimit(cfg); l > 0 {
		size = fmt.Sprintf("SIZE %d", l)
	}
	add("PIPELINING", "PIPELINING", true)
	add("SIZE", size, true)
	add("VRFY", "VRFY", !lc.DisableVRFY)
	add("ETRN", "ETRN", true)
	add("STARTTLS", "STARTTLS", cfg.TLS != nil && !f.tls && !lc.NoSTARTTLS)
	if lc.Auth && f.saslActive() {
		var shown []string
		for _, m := range lc.mechanisms(f.tls) {
			if !slices.Contains(lc.HiddenMechanisms, m) {
				shown = append(shown, m)
			}
		}
		mechs := strings.Join(shown, " ")
		add("AUTH", "AUTH "+mechs, true)
		add("AUTH", "AUTH="+mechs, lc.BrokenAuth)
	}
	add("ENHANCEDSTATUSCODES", "ENHANCEDSTATUSCODES", true)
	add("8BITMIME", "8BITMIME", true)
	add("DSN", "DSN", true)
	add("SMTPUTF8", "SMTPUTF8", !lc.NoSMTPUTF8)
	add("CHUNKING", "CHUNKING", true)
	out := make([]string, len(lines))
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		out[i] = "250" + sep + l
	}
	return out
}

// saslActive reports whether SASL is on in the session as smtpd turns it
// on: at once, or with TLS required or smtpd_tls_auth_only, once TLS is
// on. Without a certificate the decoy has no TLS, and offers AUTH at once.
func (f *face) saslActive() bool {
	lc := f.l.cfg
	return f.tls || f.l.srv.cfg.TLS == nil || !lc.RequireTLS && !lc.AuthTLSOnly
}
