package trap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// After login go-imap's imapserver reads from and writes to imapConn.
// imapConn reads each command whole first: it answers in Dovecot's words
// what the library does not know or would answer in its own (syntax
// errors, unknown commands, CAPABILITY, ID, ENABLE, STATUS, APPEND, …),
// hands the rest to the library, and rewrites the library's replies
// (its "SELECT completed" is Dovecot's "Select completed (0.001 + 0.000
// secs).").

const (
	imapMaxLine = 65536 // Dovecot's imap_max_line_length, literals included
	imapMaxBad  = 20    // invalid commands in a row before it hangs up
	// dovecotTiming ends Dovecot's tagged replies: the time the
	// command took, as a quick one takes.
	dovecotTiming = " (0.001 + 0.000 secs)."
)

// imapCmd is the command the library is working on.
type imapCmd struct {
	tag, name   string
	wasSelected bool // SELECT, EXAMINE: INBOX was selected before
	extended    bool // LIST: patterns in parentheses
}

// imapDone is Dovecot's text for a command that went well.
var imapDone = map[string]string{
	"SELECT": "Select completed", "EXAMINE": "Examine completed", "LIST": "List completed", "XLIST": "List completed",
	"LSUB": "Lsub completed", "NAMESPACE": "Namespace completed",
	"UID FETCH": "Fetch completed", "UID STORE": "Store completed", "EXPUNGE": "Expunge completed",
	"UID EXPUNGE": "Expunge completed", "CLOSE": "Close completed", "UNSELECT": "Unselect completed",
	"IDLE": "Idle completed", "LOGOUT": "Logout completed",
}

// imapSelectedOnly are the commands Dovecot takes only with a mailbox
// selected.
var imapSelectedOnly = map[string]bool{
	"CHECK": true, "CLOSE": true, "COPY": true, "EXPUNGE": true, "FETCH": true, "SEARCH": true, "STORE": true,
	"UID COPY": true, "UID FETCH": true, "UID SEARCH": true, "UID STORE": true, "SORT": true, "THREAD": true,
	"UID EXPUNGE": true, "MOVE": true, "UID MOVE": true, "UID SORT": true, "UID THREAD": true, "UNSELECT": true,
}

// imapCommands are Dovecot's commands after login and how the decoy
// answers each: any other name is an unknown command.
var imapCommands map[string]func(c *imapConn, tag, name string, p *argParser, args []imapArg) error

func init() {
	fixed := func(lines ...string) func(*imapConn, string, string, *argParser, []imapArg) error {
		return func(c *imapConn, tag, _ string, _ *argParser, _ []imapArg) error {
			return c.reply(tag, lines...)
		}
	}
	imapCommands = map[string]func(*imapConn, string, string, *argParser, []imapArg) error{
		"CAPABILITY":   fixed("* CAPABILITY "+dovecotCaps, "OK Capability completed."),
		"NOOP":         fixed("OK NOOP completed."),
		"CHECK":        fixed("OK Check completed."),
		"ID":           fixed(dovecotID, "OK ID completed."),
		"ENABLE":       (*imapConn).enable,
		"STATUS":       (*imapConn).status,
		"CREATE":       mailboxCmd(1),
		"DELETE":       mailboxCmd(1),
		"RENAME":       mailboxCmd(2),
		"SUBSCRIBE":    mailboxCmd(1),
		"UNSUBSCRIBE":  mailboxCmd(1),
		"SELECT":       (*imapConn).selectCmd,
		"EXAMINE":      (*imapConn).selectCmd,
		"LIST":         (*imapConn).list,
		"LSUB":         (*imapConn).list,
		"XLIST":        (*imapConn).list,
		"NAMESPACE":    bare,
		"EXPUNGE":      bare,
		"CLOSE":        bare,
		"UNSELECT":     bare,
		"LOGOUT":       bare,
		"IDLE":         bare,
		"UID EXPUNGE":  byUID(1),
		"SEARCH":       (*imapConn).search,
		"UID SEARCH":   (*imapConn).search,
		"UID FETCH":    byUID(2),
		"UID STORE":    byUID(3),
		"UID COPY":     byUID(2),
		"UID MOVE":     byUID(2),
		"FETCH":        noMessages,
		"STORE":        noMessages,
		"COPY":         noMessages,
		"MOVE":         noMessages,
		"SORT":         sortCmd("* SORT", "Sort completed"),
		"UID SORT":     sortCmd("* SORT", "Sort completed"),
		"THREAD":       sortCmd("* THREAD ", "Thread completed"),
		"UID THREAD":   sortCmd("* THREAD ", "Thread completed"),
		"GETMETADATA":  fixed("NO [CANNOT] Generic mailbox attributes not enabled."),
		"SETMETADATA":  fixed("NO [CANNOT] Generic mailbox attributes not enabled."),
		"NOTIFY":       fixed("OK NOTIFY completed."),
		"X-STATE":      fixed("BAD Error in IMAP command X-STATE: Command is disabled for now."),
		"GENURLAUTH":   fixed("BAD Error in IMAP command GENURLAUTH: URLAUTH disabled."),
		"URLFETCH":     fixed("BAD Error in IMAP command URLFETCH: URLAUTH disabled."),
		"RESETKEY":     fixed("BAD Error in IMAP command RESETKEY: URLAUTH disabled."),
		"CANCELUPDATE": fixed("NO Unknown tag."),
		"X-CANCEL":     fixed("NO Command tag not found."),
		"APPEND":       nil, // read apart: its message is not kept (append)
	}
}

// Read gives the library the next command the decoy does not answer
// itself.
func (c *imapConn) Read(p []byte) (int, error) {
	for len(c.in) == 0 {
		if err := c.next(); err != nil {
			c.hangUp()
			return 0, err
		}
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

// next reads one command and answers it or puts it in c.in.
func (c *imapConn) next() error {
	if c.idle {
		return c.idleEnd()
	}
	line, err := readLine(c.br, imapMaxLine)
	if err == errLineTooLong {
		return c.tooLong(line)
	}
	if err != nil {
		return err
	}
	tag, i, ok := atomAt(line, 0, true)
	if !ok {
		return c.reply("*", "BAD Error in IMAP tag: Invalid tag.")
	}
	name, j, ok := atomAt(line, i, false)
	if ok && strings.EqualFold(name, "UID") {
		var sub string
		sub, j, ok = atomAt(line, j, false)
		name += " " + sub
	}
	if !ok {
		return c.reply(tag, "BAD Error in IMAP command: Invalid command name.")
	}
	name = strings.ToUpper(name)
	do, known := imapCommands[name]
	if !known {
		return c.reply(tag, "BAD Error in IMAP command "+name+": Unknown command.")
	}
	if name == "APPEND" {
		return c.append(tag, line, j)
	}
	// Dovecot reads the arguments first, then sees whether a mailbox is
	// selected, then what the arguments mean.
	p := &argParser{buf: line, pos: j, start: j, literal: c.literal, maxCmd: imapMaxLine}
	args, err := p.parse()
	switch {
	case err != nil:
		return c.syntaxError(tag, name, err)
	case name == "UID EXPUNGE" && len(args) == 0:
		return c.reply(tag, "BAD Error in IMAP command UID EXPUNGE: Missing arguments.")
	case imapSelectedOnly[name] && !c.selected:
		return c.reply(tag, "BAD No mailbox selected.")
	}
	return do(c, tag, name, p, args)
}

// tooLong answers a line longer than Dovecot takes, and skips the rest.
func (c *imapConn) tooLong(line []byte) error {
	tag, i, tagOK := atomAt(line, 0, true)
	name, _, nameOK := atomAt(line, i, false)
	for {
		_, err := readLine(c.br, imapMaxLine)
		if err != errLineTooLong {
			if err != nil {
				return err
			}
			break
		}
	}
	switch {
	case !tagOK:
		return c.reply("*", "BAD Error in IMAP tag: Too long argument.")
	case !nameOK:
		return c.reply(tag, "BAD Error in IMAP command: Too long argument.")
	}
	return c.reply(tag, "BAD Error in IMAP command "+strings.ToUpper(name)+": Too long argument.")
}

func (c *imapConn) syntaxError(tag, name string, err error) error {
	var we *wireError
	switch {
	case errors.As(err, &we) && we.bye:
		return c.bye(we.msg)
	case errors.As(err, &we):
		return c.reply(tag, "BAD Error in IMAP command "+name+": "+we.msg+".")
	}
	return err
}

// literal reads a literal after login, "+ OK" first for a synchronizing
// one.
func (c *imapConn) literal(p *argParser, size int64, sync bool, _ int) (bool, error) {
	if sync {
		if err := c.send("+ OK"); err != nil {
			return false, err
		}
	}
	return true, readLiteral(c.br, p, size, imapMaxLine)
}

// reply sends untagged lines and then the tagged one, with Dovecot's
// timing, and hangs up after too many invalid commands in a row.
func (c *imapConn) reply(tag string, lines ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.replyLocked(tag, lines...)
}

func (c *imapConn) replyLocked(tag string, lines ...string) error {
	lines = append([]string(nil), lines...)
	last := len(lines) - 1
	text := strings.TrimSuffix(lines[last], ".")
	lines[last] = tag + " " + text + dovecotTiming
	if err := c.sendLocked(lines...); err != nil {
		return err
	}
	// A command's own error about its arguments counts; any other
	// answer starts the count again.
	if !strings.HasPrefix(text, "BAD Error in IMAP") {
		c.bad = 0
		return nil
	}
	if c.bad++; c.bad < imapMaxBad {
		return nil
	}
	c.sendLocked("* BYE Too many invalid IMAP commands.")
	c.dead = true
	c.Conn.Close()
	return io.EOF
}

// forward hands the library a command: the tag, the name it knows and
// the arguments as read.
func (c *imapConn) forward(tag, name, libName string, args []byte) {
	c.cur = imapCmd{tag: tag, name: name}
	c.in = append([]byte(tag+" "+libName), args...)
}

// bare forwards a command without its arguments: Dovecot ignores them,
// the library would not.
func bare(c *imapConn, tag, name string, _ *argParser, _ []imapArg) error {
	c.forward(tag, name, name, []byte("\r\n"))
	c.idle = name == "IDLE"
	return nil
}

// rest is the arguments as read (synchronizing literals made
// non-synchronizing), with a space before them.
func rest(p *argParser) []byte {
	b := p.forLibrary()[p.start:]
	if len(b) > 0 && b[0] != '\r' && b[0] != '\n' {
		b = append([]byte{' '}, b...)
	}
	return b
}

// byUID checks a UID command's arguments (n of them, a UID set first)
// and hands it to the library: INBOX is empty, so it has no UID.
func byUID(n int) func(*imapConn, string, string, *argParser, []imapArg) error {
	return func(c *imapConn, tag, name string, p *argParser, args []imapArg) error {
		switch {
		case len(args) < n:
			return c.reply(tag, "BAD Error in IMAP command "+name+": Invalid arguments.")
		case args[0].kind != 'a' || !isSeqSet(args[0].str):
			return c.reply(tag, "BAD Error in IMAP command "+name+": Invalid uidset.")
		case name == "UID FETCH":
			if x := unknownFetchItem(args[1]); x != "" {
				return c.reply(tag, "BAD Error in IMAP command UID FETCH: Unknown parameter: "+x+".")
			}
		}
		if name == "UID COPY" || name == "UID MOVE" {
			// No message has a UID, whatever the mailbox.
			return c.reply(tag, "OK No messages found.")
		}
		args0 := rest(p)
		if set := args[0].str; strings.HasSuffix(set, ",") {
			// Dovecot lets it pass; the library would not.
			args0 = bytes.Replace(args0, []byte(set), []byte(strings.TrimSuffix(set, ",")), 1)
		}
		c.forward(tag, name, name, args0)
		return nil
	}
}

// isSeqSet reports whether s is a sequence set (1,3:5,7:*) or $, the
// saved search result.
func isSeqSet(s string) bool {
	if s == "$" {
		return true
	}
	// Dovecot lets a trailing comma pass.
	for _, r := range strings.Split(strings.TrimSuffix(s, ","), ",") {
		lo, hi, isRange := strings.Cut(r, ":")
		if !seqNumber(lo) || (isRange && !seqNumber(hi)) {
			return false
		}
	}
	return true
}

// fetchItems are Dovecot's FETCH items; a section ([…]) may follow
// BODY, BODY.PEEK and the BINARY ones.
var fetchItems = map[string]bool{
	"ALL": true, "FAST": true, "FULL": true, "BODY": true, "BODY.PEEK": true, "BODYSTRUCTURE": true, "ENVELOPE": true,
	"FLAGS": true, "INTERNALDATE": true, "MODSEQ": true, "RFC822": true, "RFC822.HEADER": true, "RFC822.SIZE": true,
	"RFC822.TEXT": true, "UID": true, "BINARY": true, "BINARY.PEEK": true, "BINARY.SIZE": true, "X-MAILBOX": true,
	"X-REAL-UID": true, "X-SAVEDATE": true, "SAVEDATE": true, "X-GUID": true, "SNIPPET": true, "PREVIEW": true,
}

// unknownFetchItem is the first FETCH item Dovecot does not know, or "".
func unknownFetchItem(a imapArg) string {
	items := []imapArg{a}
	if a.kind == 'l' {
		items = a.list
	}
	for _, it := range items {
		if it.kind != 'a' || strings.HasPrefix(it.str, "]") {
			continue // a section's header list and its end
		}
		name, _, _ := strings.Cut(strings.ToUpper(it.str), "[")
		if !fetchItems[name] {
			return strings.ToUpper(it.str)
		}
	}
	return ""
}

func seqNumber(s string) bool {
	if s == "*" {
		return true
	}
	if s == "" || s[0] == '0' || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// noMessages answers FETCH, STORE, COPY and MOVE by sequence number:
// INBOX is empty, so no sequence number is valid.
func noMessages(c *imapConn, tag, name string, _ *argParser, args []imapArg) error {
	if len(args) < 2 {
		return c.reply(tag, "BAD Error in IMAP command "+name+": Invalid arguments.")
	}
	return c.reply(tag, "BAD Error in IMAP command "+name+": Invalid messageset.")
}

func sortCmd(found, done string) func(*imapConn, string, string, *argParser, []imapArg) error {
	return func(c *imapConn, tag, name string, _ *argParser, args []imapArg) error {
		if len(args) < 3 || (args[0].kind != 'l' && strings.HasSuffix(name, "SORT")) {
			what := "Invalid sort argument."
			if strings.HasSuffix(name, "THREAD") {
				what = "Invalid arguments."
			}
			return c.reply(tag, "BAD Error in IMAP command "+name+": "+what)
		}
		return c.reply(tag, found, "OK "+done+".")
	}
}

// mailboxCmd answers CREATE, DELETE, RENAME, SUBSCRIBE and UNSUBSCRIBE
// through the session's methods.
func mailboxCmd(n int) func(*imapConn, string, string, *argParser, []imapArg) error {
	return func(c *imapConn, tag, name string, _ *argParser, args []imapArg) error {
		if len(args) < n {
			return c.reply(tag, "BAD Error in IMAP command "+name+": Missing arguments.")
		}
		var mbox []string
		for _, a := range args[:n] {
			s, ok := a.astring()
			if !ok {
				return c.reply(tag, "BAD Error in IMAP command "+name+": Invalid arguments.")
			}
			if s, ok = decodeMailbox(s); !ok {
				return c.reply(tag, imapBadName)
			}
			mbox = append(mbox, s)
		}
		s := &imapSession{c: c}
		var err error
		switch name {
		case "CREATE":
			err = s.Create(mbox[0], nil)
		case "DELETE":
			err = s.Delete(mbox[0])
		case "RENAME":
			err = s.Rename(mbox[0], mbox[1], nil)
		case "SUBSCRIBE":
			err = s.Subscribe(mbox[0])
		case "UNSUBSCRIBE":
			err = s.Unsubscribe(mbox[0])
		}
		if err != nil {
			return c.reply(tag, statusText(err))
		}
		return c.reply(tag, "OK "+strings.ToUpper(name[:1])+strings.ToLower(name[1:])+" completed.")
	}
}

// imapBadName is Dovecot's answer to a mailbox name that is not modified
// UTF-7.
const imapBadName = "NO Mailbox name is not valid mUTF-7."

// statusText is an imap.Error as a reply's text.
func statusText(err error) string {
	var e *imap.Error
	if errors.As(err, &e) {
		t := string(e.Type) + " "
		if e.Code != "" {
			t += "[" + string(e.Code) + "] "
		}
		return t + e.Text
	}
	return "NO " + err.Error()
}

// enable answers ENABLE: CONDSTORE and QRESYNC are what Dovecot can turn
// on without plugins.
func (c *imapConn) enable(tag, name string, _ *argParser, args []imapArg) error {
	on := "* ENABLED"
	for _, a := range args {
		if a.kind != 'a' {
			return c.reply(tag, "BAD Error in IMAP command ENABLE: Invalid arguments.")
		}
		switch x := strings.ToUpper(a.str); x {
		case "CONDSTORE", "QRESYNC":
			on += " " + x
		}
	}
	if on == "* ENABLED" {
		return c.reply(tag, "OK Enabled.")
	}
	return c.reply(tag, on, "OK Enabled.")
}

// status answers STATUS, items in Dovecot's order whatever the client's.
func (c *imapConn) status(tag, _ string, _ *argParser, args []imapArg) error {
	bad := func(msg string) error { return c.reply(tag, "BAD Error in IMAP command STATUS: "+msg+".") }
	if len(args) < 2 {
		return bad("Missing arguments")
	}
	mbox, ok := args[0].astring()
	if !ok || args[1].kind != 'l' {
		return bad("Invalid arguments")
	}
	if len(args[1].list) == 0 {
		return bad("Empty status list")
	}
	want := map[string]bool{}
	for _, a := range args[1].list {
		if a.kind != 'a' {
			return bad("Status list contains non-atoms")
		}
		item := strings.ToUpper(a.str)
		if !strings.Contains(" MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE X-SIZE X-GUID ", " "+item+" ") {
			return bad("Invalid status item " + item)
		}
		want[item] = true
	}
	name, ok := decodeMailbox(mbox)
	if !ok {
		return c.reply(tag, imapBadName)
	}
	if !isInbox(name) {
		return c.reply(tag, "NO Mailbox doesn't exist: "+name+".")
	}
	values := []struct{ item, value string }{
		{"MESSAGES", "0"}, {"RECENT", "0"}, {"UIDNEXT", "1"}, {"UIDVALIDITY", fmt.Sprint(c.uidValidity())}, {"UNSEEN", "0"},
		{"HIGHESTMODSEQ", "1"}, {"SIZE", "0"}, {"X-SIZE", "0"}, {"X-GUID", c.guid()},
	}
	var got []string
	for _, v := range values {
		if want[v.item] {
			got = append(got, v.item+" "+v.value)
		}
	}
	return c.reply(tag, "* STATUS "+imapAstring(mbox)+" ("+strings.Join(got, " ")+")", "OK Status completed.")
}

// imapAstring writes a mailbox name as Dovecot does: an atom if it can
// be one, else quoted.
func imapAstring(s string) string {
	for i := 0; i < len(s); i++ {
		if atomChar(s[i]) != nil || strings.IndexByte("%*\\\"]", s[i]) >= 0 {
			return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// selectCmd checks SELECT's and EXAMINE's arguments as Dovecot does (an
// invalid one closes the selected mailbox first) and hands the library
// the mailbox name (its parameters, CONDSTORE or QRESYNC, change
// nothing for an empty mailbox).
func (c *imapConn) selectCmd(tag, name string, _ *argParser, args []imapArg) error {
	var mbox string
	ok := len(args) > 0
	if ok {
		mbox, ok = args[0].astring()
	}
	_, valid := decodeMailbox(mbox)
	if !ok || !valid {
		var lines []string
		if c.selected {
			lines = append(lines, "* OK [CLOSED] Previous mailbox closed.")
			c.selected = false
		}
		if !ok {
			return c.reply(tag, append(lines, "BAD Error in IMAP command "+name+": Invalid arguments.")...)
		}
		return c.reply(tag, append(lines, imapBadName)...)
	}
	c.forward(tag, name, name, fmt.Appendf(nil, " {%d+}\r\n%s\r\n", len(mbox), mbox))
	c.cur.wasSelected = c.selected
	return nil
}

// list checks the reference and pattern as Dovecot does; XLIST is LIST.
func (c *imapConn) list(tag, name string, p *argParser, args []imapArg) error {
	a := args
	if len(a) > 0 && a[0].kind == 'l' && name != "LSUB" {
		a = a[1:] // selection options
	}
	switch {
	case len(a) < 1:
		return c.reply(tag, "BAD Error in IMAP command "+name+": Invalid reference.")
	case len(a) < 2:
		return c.reply(tag, "BAD Error in IMAP command "+name+": Invalid pattern.")
	case len(a) > 2 && (a[2].kind != 'a' || !strings.EqualFold(a[2].str, "RETURN")):
		return c.reply(tag, "BAD Error in IMAP command "+name+": Extra arguments.")
	}
	// A name that is not modified UTF-7 matches nothing.
	for _, x := range append([]imapArg{a[0]}, a[1].list...) {
		if _, ok := decodeMailbox(x.str); !ok {
			return c.reply(tag, "OK "+imapDone[name]+".")
		}
	}
	if a[1].kind != 'l' {
		if _, ok := decodeMailbox(a[1].str); !ok {
			return c.reply(tag, "OK "+imapDone[name]+".")
		}
	}
	lib := name
	if name == "XLIST" {
		lib = "LIST"
	}
	c.forward(tag, name, lib, rest(p))
	// More than one pattern is LIST-EXTENDED: no child information then
	// unless asked for.
	c.cur.extended = a[1].kind == 'l'
	return nil
}

// idleEnd reads the line that ends IDLE: DONE in any case.
func (c *imapConn) idleEnd() error {
	line, err := readLine(c.br, imapMaxLine)
	if err != nil && err != errLineTooLong {
		return err
	}
	c.idle = false
	if strings.EqualFold(strings.TrimRight(string(line), "\r\n"), "DONE") {
		c.in = []byte("DONE\r\n")
	} else {
		c.in = []byte("X\r\n")
	}
	return nil
}

// append reads APPEND without keeping the message (it is read and
// dropped as it comes) and refuses it as a full disk quota does; to any
// mailbox but INBOX, TRYCREATE, before the message for a synchronizing
// literal.
func (c *imapConn) append(tag string, line []byte, j int) error {
	messages, refused := 0, false
	mailbox := func(p *argParser) string {
		if len(p.topArgs) == 0 {
			return ""
		}
		s, _ := p.topArgs[0].astring()
		return s
	}
	p := &argParser{buf: line, pos: j}
	p.literal = func(p *argParser, size int64, sync bool, top int) (bool, error) {
		if top < 1 {
			if size > imapMaxLine {
				return false, &wireError{msg: "Literal size too large", bye: true}
			}
			return c.literal(p, size, sync, top)
		}
		messages++
		if messages == 1 && !isInbox(mailbox(p)) {
			refused = true
			if sync {
				return false, errAppendRefused
			}
		}
		return false, c.dropLiteral(p, size, sync)
	}
	args, err := p.parse()
	switch {
	case err == errAppendRefused || (err == nil && refused):
		name, ok := decodeMailbox(mailbox(p))
		if !ok {
			return c.reply(tag, imapBadName)
		}
		return c.reply(tag, "NO [TRYCREATE] Mailbox doesn't exist: "+name+".")
	case err != nil:
		return c.syntaxError(tag, "APPEND", err)
	case len(args) == 0:
		return c.reply(tag, "BAD Error in IMAP command APPEND: Missing arguments.")
	case messages == 0:
		return c.reply(tag, "BAD Error in IMAP command APPEND: Missing message size.")
	}
	return c.reply(tag, statusText(imapNoQuota))
}

// dropLiteral reads a message and drops it, and reads the line after it
// onto p.buf.
func (c *imapConn) dropLiteral(p *argParser, size int64, sync bool) error {
	if sync {
		if err := c.send("+ OK"); err != nil {
			return err
		}
	}
	if _, err := io.CopyN(io.Discard, c.br, size); err != nil {
		return err
	}
	line, err := readLine(c.br, imapMaxLine)
	p.buf = append(p.buf, line...)
	if err == errLineTooLong {
		return errAppendRefused
	}
	return err
}

var errAppendRefused = errors.New("imap: append refused")

// Write takes the library's replies line by line and passes them on in
// Dovecot's words.
func (c *imapConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead {
		return len(p), nil
	}
	c.out = append(c.out, p...)
	for len(c.out) > 0 {
		if c.litOut > 0 {
			n := min(c.litOut, len(c.out))
			if _, err := c.Conn.Write(c.out[:n]); err != nil {
				return 0, err
			}
			c.out, c.litOut = c.out[n:], c.litOut-n
			continue
		}
		i := bytes.IndexByte(c.out, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(c.out[:i+1]), "\r\n")
		c.out = c.out[i+1:]
		if err := c.fromLibrary(line); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// fromLibrary passes on one line the library wrote.
func (c *imapConn) fromLibrary(line string) error {
	if !c.greeted {
		// "* PREAUTH …": the client had its "Logged in" already.
		c.greeted = true
		return nil
	}
	tag, rest, _ := strings.Cut(line, " ")
	switch {
	case tag == c.cur.tag:
		return c.finish(rest)
	case line == "+ Ready for literal data":
		// Asked for already, as Dovecot asks ("+ OK").
		return nil
	case tag == "*" && (c.cur.name == "SELECT" || c.cur.name == "EXAMINE"):
		// Written in Dovecot's order at the end (finishSelect).
		return nil
	case strings.HasPrefix(line, "* STATUS "):
		line = dovecotStatusOrder(line)
	}
	if err := c.sendLocked(line); err != nil {
		return err
	}
	c.litOut = literalAtEnd(line)
	return nil
}

// literalAtEnd is the size of the literal a line announces ({n} at its
// end), or 0.
func literalAtEnd(line string) int {
	i := strings.LastIndexByte(line, '{')
	if i < 0 || !strings.HasSuffix(line, "}") {
		return 0
	}
	n := 0
	for _, d := range line[i+1 : len(line)-1] {
		if d < '0' || d > '9' || n > imapMaxLine*1024 {
			return 0
		}
		n = n*10 + int(d-'0')
	}
	return n
}

// finish rewrites the library's tagged reply.
func (c *imapConn) finish(rest string) error {
	typ, text, _ := strings.Cut(rest, " ")
	code := ""
	if strings.HasPrefix(text, "[") {
		if i := strings.Index(text, "] "); i > 0 {
			code, text = text[1:i], text[i+2:]
		}
	}
	name := c.cur.name
	if name == "SELECT" || name == "EXAMINE" {
		return c.finishSelect(typ, text)
	}
	switch {
	case typ == "OK" && strings.HasSuffix(text, " completed") && imapDone[name] != "":
		code, text = "", imapDone[name]
	case code == "CLIENTBUG" && name == "IDLE":
		typ, code, text = "BAD", "", "Expected DONE"
	case code == "CLIENTBUG" && strings.Contains(text, "selected state"):
		typ, code, text = "BAD", "", "No mailbox selected"
	case typ == "BAD" && !strings.HasPrefix(text, "Error in IMAP command"), code == "SERVERBUG":
		typ = "BAD"
		code, text = "", "Error in IMAP command "+name+": Invalid arguments"
	}
	if typ == "OK" && (name == "CLOSE" || name == "UNSELECT") {
		c.selected = false
	}
	if code != "" {
		text = "[" + code + "] " + text
	}
	return c.replyLocked(c.cur.tag, typ+" "+text)
}

// finishSelect writes SELECT's and EXAMINE's answer as Dovecot does, for
// an INBOX that is empty.
func (c *imapConn) finishSelect(typ, text string) error {
	var lines []string
	if c.cur.wasSelected {
		lines = append(lines, "* OK [CLOSED] Previous mailbox closed.")
	}
	if typ != "OK" {
		c.selected = false
		return c.replyLocked(c.cur.tag, append(lines, typ+" "+text)...)
	}
	perm, done := `* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted.`, "OK [READ-WRITE] Select completed."
	if c.cur.name == "EXAMINE" {
		perm, done = "* OK [PERMANENTFLAGS ()] Read-only mailbox.", "OK [READ-ONLY] Examine completed."
	}
	lines = append(lines, `* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`, perm, "* 0 EXISTS", "* 0 RECENT",
		fmt.Sprintf("* OK [UIDVALIDITY %d] UIDs valid", c.uidValidity()), "* OK [UIDNEXT 1] Predicted next UID")
	// Dovecot says HIGHESTMODSEQ once a CONDSTORE client has opened the
	// mailbox, ever: as if one had.
	lines = append(lines, "* OK [HIGHESTMODSEQ 1] Highest")
	c.selected = true
	return c.replyLocked(c.cur.tag, append(lines, done)...)
}

// dovecotStatusOrder puts a STATUS reply's items in Dovecot's order.
func dovecotStatusOrder(line string) string {
	i := strings.LastIndexByte(line, '(')
	if i < 0 || !strings.HasSuffix(line, ")") {
		return line
	}
	f := strings.Fields(line[i+1 : len(line)-1])
	if len(f)%2 != 0 {
		return line
	}
	const order = " MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE "
	var items []string
	for _, want := range strings.Fields(order) {
		for k := 0; k < len(f); k += 2 {
			if f[k] == want {
				items = append(items, f[k]+" "+f[k+1])
			}
		}
	}
	for k := 0; k < len(f); k += 2 {
		if !strings.Contains(order, " "+f[k]+" ") {
			items = append(items, f[k]+" "+f[k+1])
		}
	}
	return line[:i+1] + strings.Join(items, " ") + ")"
}
