package trap

import (
	"bufio"
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The IMAP decoy reads the client's commands itself, in the grammar of
// Dovecot's lib-imap parser and with its error words: go-imap's decoder
// answers malformed input in its own words (or drops the connection),
// which would give the decoy away.

// imapArg is one argument of a command: an atom, a string (quoted or
// literal), NIL or a parenthesised list.
type imapArg struct {
	kind byte // 'a' atom, 's' string, 'n' NIL, 'l' list
	str  string
	list []imapArg
}

// astring reports the argument's text if it is an atom or a string, as
// Dovecot's imap_arg_get_astring (NIL is an atom there).
func (a imapArg) astring() (string, bool) {
	return a.str, a.kind != 'l'
}

// wireError is a syntax error in Dovecot's words; bye ends the session
// with "* BYE msg" instead of a tagged BAD.
type wireError struct {
	msg string
	bye bool
}

func (e *wireError) Error() string { return e.msg }

var errLineTooLong = errors.New("imap: line too long")

// readLine reads one line with its LF; a line longer than max bytes is
// errLineTooLong, with the bytes read so far (max of them).
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return append(line, chunk[:max-len(line)]...), errLineTooLong
		}
		line = append(line, chunk...)
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

// atomAt reads a tag or a command name at line[i:] as Dovecot's
// imap_parser_read_next_atom does: up to a space or the end of the line,
// none of its specials, not empty; the space after it is skipped. ok is
// false for an invalid or empty atom.
func atomAt(line []byte, i int, tag bool) (atom string, next int, ok bool) {
	for j := i; j < len(line); j++ {
		switch c := line[j]; {
		case c == ' ' || c == '\r' || c == '\n':
			next = j
			if c == ' ' {
				next++
			}
			return string(line[i:j]), next, j > i
		case strings.IndexByte("(){%*\"\\]", c) >= 0, c < ' ', c >= 0x80, c == '+' && tag:
			return "", j, false
		}
	}
	return string(line[i:]), len(line), len(line) > i
}

// argParser parses a command's arguments. buf holds the command read so
// far; at a literal it calls literal, which reads the literal's bytes and
// the line after it onto buf (or skips them and reports so).
type argParser struct {
	buf     []byte
	pos     int
	start   int // where the arguments start in buf
	literal func(p *argParser, size int64, sync bool, top int) (kept bool, err error)
	maxCmd  int64     // a command's bytes, literals included
	syncAt  []int     // where the synchronizing literals' '}' are in buf
	topArgs []imapArg // the arguments outside lists parsed so far
}

// parse reads the arguments up to the end of the command.
func (p *argParser) parse() ([]imapArg, error) {
	return p.args(false)
}

func (p *argParser) args(inList bool) ([]imapArg, error) {
	var out []imapArg
	for ; ; p.noteTop(inList, out) {
		for p.pos < len(p.buf) && p.buf[p.pos] == ' ' {
			p.pos++
		}
		if p.pos >= len(p.buf) {
			return out, p.eol(inList)
		}
		c := p.buf[p.pos]
		switch {
		case c == '\r' && (p.pos+1 >= len(p.buf) || p.buf[p.pos+1] != '\n'):
			return nil, &wireError{msg: "CR sent without LF"}
		case c == '\r' || c == '\n':
			return out, p.eol(inList)
		case c == '"':
			s, err := p.quoted()
			if err != nil {
				return nil, err
			}
			out = append(out, imapArg{kind: 's', str: s})
		case c == '{':
			s, kept, err := p.literalArg(len(out), inList)
			if err != nil {
				return nil, err
			}
			if kept {
				out = append(out, imapArg{kind: 's', str: s})
			}
		case c == '~' && p.pos+1 < len(p.buf) && p.buf[p.pos+1] == '{':
			return nil, &wireError{msg: "literal8 not allowed here"}
		case c == '(':
			p.pos++
			l, err := p.args(true)
			if err != nil {
				return nil, err
			}
			out = append(out, imapArg{kind: 'l', list: l})
		case c == ')':
			if !inList {
				return nil, &wireError{msg: "Unexpected ')'"}
			}
			p.pos++
			return out, nil
		default:
			a, err := p.atom(inList)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
}

func (p *argParser) noteTop(inList bool, out []imapArg) {
	if !inList {
		p.topArgs = out
	}
}

func (p *argParser) eol(inList bool) error {
	if inList {
		return &wireError{msg: "Missing ')'"}
	}
	return nil
}

// atomChar is Dovecot's is_valid_atom_char: its parser takes ] % * and \
// in atoms (sections, list patterns, flags).
func atomChar(c byte) error {
	switch {
	case c == '(' || c == ')' || c == '{' || c == '"' || c <= ' ' || c == 0x7f:
		return &wireError{msg: "Invalid characters in atom"}
	case c >= 0x80:
		return &wireError{msg: "8bit data in atom"}
	}
	return nil
}

func (p *argParser) atom(inList bool) (imapArg, error) {
	start := p.pos
	for ; p.pos < len(p.buf); p.pos++ {
		c := p.buf[p.pos]
		if c == ' ' || c == '\r' || c == '\n' {
			break
		}
		if c == ')' {
			if inList {
				break
			}
			return imapArg{}, &wireError{msg: "Unexpected ')'"}
		}
		if err := atomChar(c); err != nil {
			return imapArg{}, err
		}
	}
	s := string(p.buf[start:p.pos])
	if strings.EqualFold(s, "NIL") {
		return imapArg{kind: 'n', str: s}, nil
	}
	return imapArg{kind: 'a', str: s}, nil
}

// quoted reads a quoted string: a backslash takes the next byte as it
// is; a NUL or a line end inside is an error.
func (p *argParser) quoted() (string, error) {
	var s []byte
	for p.pos++; p.pos < len(p.buf); p.pos++ {
		c := p.buf[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(s), nil
		case c == 0:
			return "", &wireError{msg: "NULs not allowed in strings"}
		case c == '\\' && p.pos+1 < len(p.buf):
			p.pos++
			c = p.buf[p.pos]
		}
		if c == '\r' || c == '\n' {
			break
		}
		s = append(s, c)
	}
	return "", &wireError{msg: `Missing '"'`}
}

// literalArg reads {size} or {size+}, the line end after it, and the
// literal through p.literal.
func (p *argParser) literalArg(top int, inList bool) (string, bool, error) {
	var size int64
	sync := true
	for p.pos++; ; p.pos++ {
		if p.pos >= len(p.buf) {
			return "", false, &wireError{msg: "Invalid literal size"}
		}
		c := p.buf[p.pos]
		if c == '}' {
			if sync {
				p.syncAt = append(p.syncAt, p.pos)
			}
			p.pos++
			break
		}
		switch {
		case !sync:
			return "", false, &wireError{msg: "Expecting '}' after '+'"}
		case c == '+':
			sync = false
		case c < '0' || c > '9':
			return "", false, &wireError{msg: "Invalid literal size"}
		case size > (1<<62)/10:
			return "", false, &wireError{msg: "Literal size too large", bye: true}
		default:
			size = size*10 + int64(c-'0')
		}
	}
	if p.pos < len(p.buf) && p.buf[p.pos] == '\r' {
		p.pos++
	}
	if p.pos >= len(p.buf) || p.buf[p.pos] != '\n' {
		return "", false, &wireError{msg: "Missing LF after literal size"}
	}
	p.pos++
	if p.maxCmd > 0 && int64(p.pos)+size > p.maxCmd {
		return "", false, &wireError{msg: "Literal size too large", bye: true}
	}
	if inList {
		top = -1
	}
	start := p.pos
	kept, err := p.literal(p, size, sync, top)
	if err != nil || !kept {
		return "", false, err
	}
	p.pos = start + int(size)
	return string(p.buf[start:p.pos]), true, nil
}

// forLibrary is the command as read, for go-imap's decoder: the decoy has
// already asked for every synchronizing literal in Dovecot's words
// ("+ OK"), so they go on as non-synchronizing ones ({n+}), which the
// library takes without answering.
func (p *argParser) forLibrary() []byte {
	out := make([]byte, 0, len(p.buf)+len(p.syncAt))
	last := 0
	for _, i := range p.syncAt {
		out = append(append(out, p.buf[last:i]...), '+')
		last = i
	}
	return append(out, p.buf[last:]...)
}

// mutf7 is modified BASE64 (RFC 3501 5.1.3): ',' for '/', no padding.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// decodeMailbox decodes a mailbox name from modified UTF-7, as Dovecot
// reads names; ok is false where Dovecot says "Mailbox name is not valid
// mUTF-7".
func decodeMailbox(s string) (string, bool) {
	var out strings.Builder
	for len(s) > 0 {
		c := s[0]
		switch {
		case c >= 0x80:
			return "", false
		case c != '&':
			out.WriteByte(c)
			s = s[1:]
			continue
		}
		end := strings.IndexByte(s, '-')
		if end < 0 {
			return "", false
		}
		if end == 1 {
			out.WriteByte('&')
			s = s[2:]
			continue
		}
		b, err := mutf7.DecodeString(s[1:end])
		if err != nil || len(b)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		}
		r := utf16.Decode(u)
		for _, x := range r {
			if x == utf8.RuneError || x < 0x80 {
				return "", false
			}
		}
		out.WriteString(string(r))
		s = s[end+1:]
	}
	return out.String(), true
}
