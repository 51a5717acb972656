package abuse

import (
	"bytes"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Redactor takes out of what is sent what is this host's or its users':
// its own names (host names, local domains) and addresses, the user names
// that log-derived reasons quote, e-mail addresses, and any address but
// the one reported.
type Redactor struct {
	names []string // lower case, longest first
	own   map[netip.Addr]bool
}

// NewRedactor returns a Redactor for this host's names (host names, the
// mail domains it serves) and addresses.
func NewRedactor(names []string, addrs []netip.Addr) *Redactor {
	r := &Redactor{own: map[netip.Addr]bool{}}
	for _, n := range names {
		if n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), ".")); len(n) >= 3 && !slices.Contains(r.names, n) {
			r.names = append(r.names, n)
		}
	}
	slices.SortFunc(r.names, func(a, b string) int { return len(b) - len(a) })
	for _, a := range addrs {
		r.own[a.Unmap().WithZone("")] = true
	}
	return r
}

var (
	quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	mailRE   = regexp.MustCompile(`(?i)[a-z0-9._%+=-]+@[a-z0-9.-]+\.[a-z]{2,}`)
	// addrRE finds IPv4 and IPv6 addresses (and prefixes' addresses);
	// each match is parsed before it is replaced.
	addrRE = regexp.MustCompile(`(?i)\b(?:\d{1,3}\.){3}\d{1,3}\b|(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?:%[0-9a-z]+)?`)
)

// Text redacts a text written from a decision or a log line: quoted
// strings (user names) become "[user]", e-mail addresses "[email]",
// addresses other than keep "[address]" (this host's "[local address]"),
// this host's names "[local]"; control characters go; at most max bytes
// (0: no limit).
func (r *Redactor) Text(s string, max int, keep ...netip.Addr) string {
	s = quotedRE.ReplaceAllString(s, `"[user]"`)
	s = mailRE.ReplaceAllString(s, "[email]")
	s = addrRE.ReplaceAllStringFunc(s, func(m string) string {
		a, err := netip.ParseAddr(m)
		if err != nil {
			return m
		}
		a = a.Unmap().WithZone("")
		if slices.Contains(keep, a) {
			return m
		}
		if r.own[a] {
			return "[local address]"
		}
		return "[address]"
	})
	s = r.replaceNames(s)
	s = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) || unicode.Is(unicode.Bidi_Control, c) {
			if c == '\n' || c == '\t' {
				return ' '
			}
			return -1
		}
		return c
	}, strings.ToValidUTF8(s, ""))
	return truncate(strings.TrimSpace(s), max)
}

// replaceNames replaces this host's names, case-insensitively.
func (r *Redactor) replaceNames(s string) string {
	b := []byte(s)
	for _, n := range r.names {
		b = replaceFold(b, n, "[local]")
	}
	return string(b)
}

// Message redacts a trapped message before it goes out as evidence: the
// recipients (the spam's victims: RFC 6650 asks that they be redacted),
// that is the header fields naming them (To, Cc, Bcc, Delivered-To,
// X-Original-To, Envelope-To), whole, and their addresses wherever else
// they appear in the message's text; this host's names and addresses
// too. Encoded parts are left as they are. The result has CRLF line ends.
func (r *Redactor) Message(raw []byte, recipients []string) []byte {
	out := redactRecipientFields(raw)
	for _, rc := range recipients {
		if rc = strings.TrimSpace(rc); rc != "" {
			out = replaceFold(out, rc, "[redacted]")
		}
	}
	for _, n := range r.names {
		out = replaceFold(out, n, "[local]")
	}
	for a := range r.own {
		out = bytes.ReplaceAll(out, []byte(a.String()), []byte("[local address]"))
	}
	out = bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(out, []byte("\n"), []byte("\r\n"))
}

// replaceFold replaces old in b, ASCII letters matched whatever their
// case (the folding keeps every byte where it is).
func replaceFold(b []byte, old, repl string) []byte {
	lower := asciiLower(b)
	o := asciiLower([]byte(old))
	if !bytes.Contains(lower, o) {
		return b
	}
	var out bytes.Buffer
	for {
		i := bytes.Index(lower, o)
		if i < 0 {
			out.Write(b)
			return out.Bytes()
		}
		out.Write(b[:i])
		out.WriteString(repl)
		b, lower = b[i+len(o):], lower[i+len(o):]
	}
}

// truncate cuts s to at most max bytes on a rune boundary (0: no limit).
func truncate(s string, max int) string {
	if max <= 0 || len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// recipientFields are the header fields that name a message's recipients.
var recipientFields = []string{"to", "cc", "bcc", "delivered-to", "x-original-to", "envelope-to", "apparently-to"}

// redactRecipientFields replaces the values of the recipient fields of a
// message's header (continuation lines included) with "[redacted]".
func redactRecipientFields(raw []byte) []byte {
	var out bytes.Buffer
	rest := raw
	inField := false
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 { // the end of the header
			out.Write(line)
			out.Write(rest)
			return out.Bytes()
		}
		if trimmed[0] == ' ' || trimmed[0] == '\t' {
			if !inField {
				out.Write(line)
			}
			continue
		}
		inField = false
		if name, _, ok := bytes.Cut(trimmed, []byte(":")); ok && slices.Contains(recipientFields, string(asciiLower(bytes.TrimSpace(name)))) {
			inField = true
			out.Write(name)
			out.WriteString(": [redacted]\r\n")
			continue
		}
		out.Write(line)
	}
	return out.Bytes()
}
