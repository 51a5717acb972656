package evidence

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html/charset"
)

// Options tune Extract.
type Options struct {
	Limits
	// Shorteners are more URL shortener hosts ("go.example") besides the
	// built-in ones (see shorteners.go).
	Shorteners []string
}

// Extract reads a message (raw, as the trap kept it) and its envelope.
// It never fails: what cannot be read is said in Result.Problems.
func Extract(raw []byte, env Envelope, opt Options) *Result {
	def := DefaultLimits()
	if opt.Bytes <= 0 {
		opt.Bytes = def.Bytes
	}
	if opt.Parts <= 0 {
		opt.Parts = def.Parts
	}
	if opt.Depth <= 0 {
		opt.Depth = def.Depth
	}
	if opt.Items <= 0 {
		opt.Items = def.Items
	}
	x := &extractor{
		lim: opt.Limits, budget: opt.Bytes,
		urls:    map[string]*URL{},
		domains: map[string]map[string]bool{},
		sets:    map[string]map[string]bool{},
		short:   map[string]bool{},
		dec:     &mime.WordDecoder{CharsetReader: charset.NewReaderLabel},
	}
	for _, h := range opt.Shorteners {
		x.short[strings.ToLower(strings.TrimSpace(h))] = true
	}
	x.envelope(env)
	x.message(raw, 0, true)
	return x.result()
}

type extractor struct {
	lim    Limits
	budget int64 // decoded bytes left to read
	res    Result
	dec    *mime.WordDecoder

	urls    map[string]*URL
	domains map[string]map[string]bool // registrable domain → sources
	sets    map[string]map[string]bool // from, reply-to, return-path, recipient, contact → addresses
	atts    []Attachment
	short   map[string]bool // shortener hosts from Options
	noted   map[string]bool // problems said once
}

// problem notes something that could not be read.
func (x *extractor) problem(format string, args ...any) {
	msg := safeText(fmt.Sprintf(format, args...), 200)
	if x.noted == nil {
		x.noted = map[string]bool{}
	}
	if x.noted[msg] || len(x.res.Problems) >= 50 {
		return
	}
	x.noted[msg] = true
	x.res.Problems = append(x.res.Problems, msg)
}

// full reports whether a list already holds as many entries as allowed,
// noting it once.
func (x *extractor) full(name string, n int) bool {
	if n < x.lim.Items {
		return false
	}
	x.problem("more than %d %s: the rest are left out", x.lim.Items, name)
	return true
}

func (x *extractor) envelope(env Envelope) {
	if a := normAddress(env.MailFrom); a != "" {
		x.address("return-path", a)
	}
	for _, r := range env.RcptTo {
		if a := normAddress(r); a != "" {
			x.address("recipient", a)
		}
	}
	if h := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(env.Helo), ".")); validHostname(h) {
		if d := registrable(h); d != "" {
			x.domain(d, "helo")
		}
	}
}

// address records an address in one of the sets, and for the sender's
// sets its domain.
func (x *extractor) address(set, a string) {
	s := x.sets[set]
	if s == nil {
		s = map[string]bool{}
		x.sets[set] = s
	}
	if s[a] || x.full(set+" addresses", len(s)) {
		return
	}
	s[a] = true
	if set == "recipient" {
		return // the victims' domains are not the spammer's
	}
	if d := registrable(a[strings.LastIndexByte(a, '@')+1:]); d != "" {
		x.domain(d, set)
	}
}

func (x *extractor) domain(name, source string) {
	s := x.domains[name]
	if s == nil {
		if x.full("domains", len(x.domains)) {
			return
		}
		s = map[string]bool{}
		x.domains[name] = s
	}
	s[source] = true
}

// message reads one message: the trapped one (top), or one attached to it,
// whose headers are not the spammer's and are not taken.
func (x *extractor) message(raw []byte, depth int, top bool) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		x.problem("header: %v", err)
		msg = lenientMessage(raw)
	}
	if top {
		x.headers(msg.Header)
	}
	x.part(msg.Header, msg.Body, depth, "")
}

// lenientMessage splits raw at its first empty line and keeps the header
// lines that parse: a message whose header net/mail refuses (a line
// without a colon, a bad continuation) is still read for its body.
func lenientMessage(raw []byte) *mail.Message {
	head, body := raw, []byte(nil)
	for _, sep := range []string{"\r\n\r\n", "\n\n"} {
		if i := bytes.Index(raw, []byte(sep)); i >= 0 {
			head, body = raw[:i], raw[i+len(sep):]
			break
		}
	}
	h := mail.Header{}
	var name string
	sc := bufio.NewScanner(bytes.NewReader(head))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line != "" && (line[0] == ' ' || line[0] == '\t') {
			if vs := h[name]; name != "" && len(vs) > 0 {
				vs[len(vs)-1] += " " + strings.TrimSpace(line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			name = ""
			continue
		}
		name = textproto.CanonicalMIMEHeaderKey(k)
		h[name] = append(h[name], strings.TrimSpace(v))
	}
	return &mail.Message{Header: h, Body: bytes.NewReader(body)}
}

// headers reads the trapped message's own header.
func (x *extractor) headers(h mail.Header) {
	x.res.Subject = safeText(x.decode(h.Get("Subject")), 998)
	x.res.MessageID = safeText(strings.TrimSpace(h.Get("Message-Id")), 998)
	x.res.Mailer = safeText(x.decode(firstOf(h.Get("X-Mailer"), h.Get("User-Agent"))), 200)
	for _, f := range []struct{ set, header string }{
		{"from", "From"}, {"from", "Sender"}, {"reply-to", "Reply-To"}, {"return-path", "Return-Path"},
		{"recipient", "To"}, {"recipient", "Cc"},
	} {
		for _, v := range h[f.header] {
			for _, a := range x.addressList(v) {
				x.address(f.set, a)
			}
		}
	}
	if id := x.res.MessageID; id != "" {
		id = strings.Trim(id, "<> ")
		if i := strings.LastIndexByte(id, '@'); i >= 0 {
			if host := strings.ToLower(strings.TrimSuffix(id[i+1:], ".")); validHostname(host) {
				if d := registrable(host); d != "" {
					x.domain(d, "message-id")
				}
			}
		}
	}
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// decode decodes a header's encoded words; an undecodable one is kept
// as written.
func (x *extractor) decode(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	d, err := x.dec.DecodeHeader(v)
	if err != nil {
		x.problem("header %q: %v", v, err)
		return v
	}
	return d
}

// addressList returns the addresses in a header value: as net/mail reads
// the list, or, when it cannot (spam's headers often break RFC 5322),
// whatever looks like an address in it.
func (x *extractor) addressList(v string) []string {
	var out []string
	if list, err := mail.ParseAddressList(x.decode(v)); err == nil {
		for _, a := range list {
			if n := normAddress(a.Address); n != "" {
				out = append(out, n)
			}
		}
		return out
	}
	for _, m := range emailRE().FindAllString(v, 20) {
		if n := normAddress(m); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// getter is a message's or a part's header.
type getter interface{ Get(string) string }

// part reads one MIME entity. attached is "attachment" inside a part
// that is a file: its links are found there, not in the text.
func (x *extractor) part(h getter, body io.Reader, depth int, attached string) {
	x.res.Parts++
	n := x.res.Parts
	if n > x.lim.Parts {
		x.problem("more than %d parts: the rest are not read", x.lim.Parts)
		return
	}
	if depth > x.lim.Depth {
		x.problem("parts nested deeper than %d are not read", x.lim.Depth)
		return
	}
	ctype := h.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ctype)
	switch {
	case ctype == "":
		mt = "text/plain"
	case mt == "":
		x.problem("part %d: content type %q: %v", n, ctype, err)
		mt = "text/plain"
	}
	cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	if strings.HasPrefix(mt, "multipart/") {
		if b := params["boundary"]; b != "" {
			x.multipart(body, b, depth, attached)
			return
		}
		x.problem("part %d: %s without a boundary, read as text", n, mt)
		mt = "text/plain"
	}
	data, err := x.read(decoder(cte, body))
	if err != nil {
		x.problem("part %d: %s: %v", n, cte, err)
	}
	disp, dispParams, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	name := x.fileName(dispParams, params)
	switch {
	case mt == "message/rfc822" || mt == "message/global":
		if name != "" || disp == "attachment" {
			x.attachment(name, mt, data)
		}
		x.message(data, depth+1, false)
	case strings.HasPrefix(mt, "text/"):
		if name != "" || disp == "attachment" {
			x.attachment(name, mt, data)
			attached = "attachment"
		}
		text := x.utf8(data, mt, params["charset"], n)
		if mt == "text/html" {
			x.html(text, attached)
		} else {
			x.text(text, firstOf(attached, "text"))
		}
	default:
		x.attachment(name, mt, data)
	}
}

func (x *extractor) multipart(body io.Reader, boundary string, depth int, attached string) {
	mr := multipart.NewReader(body, boundary)
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return
		}
		if err != nil {
			x.problem("%v", err)
			return
		}
		x.part(p.Header, p, depth+1, attached)
		if x.res.Parts > x.lim.Parts || x.budget <= 0 {
			return
		}
	}
}

// read reads a decoded part within the byte budget.
func (x *extractor) read(r io.Reader) ([]byte, error) {
	if x.budget <= 0 {
		x.problem("more than %d decoded bytes: the rest is not read", x.lim.Bytes)
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(r, x.budget+1))
	if int64(len(data)) > x.budget {
		data = data[:x.budget]
		x.problem("more than %d decoded bytes: the rest is not read", x.lim.Bytes)
	}
	x.budget -= int64(len(data))
	return data, err
}

// fileName returns a part's file name from the parameters of its
// Content-Disposition and Content-Type: the disposition's filename (RFC
// 2231 continuations and charsets decoded by package mime), else the
// type's name; encoded words decoded; "" when it has none.
func (x *extractor) fileName(dispParams, ctParams map[string]string) string {
	name := firstOf(dispParams["filename"], ctParams["name"])
	return safeText(x.decode(name), 255)
}

func (x *extractor) attachment(name, mt string, data []byte) {
	sum := sha256.Sum256(data)
	a := Attachment{Name: name, Type: mt, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	if slices.Contains(x.atts, a) || x.full("attachments", len(x.atts)) {
		return
	}
	x.atts = append(x.atts, a)
}

// utf8 converts a text part to UTF-8 from its charset (for HTML without
// one, as its meta tags say); an unknown charset is kept as is.
func (x *extractor) utf8(data []byte, mt, label string, n int) string {
	if label == "" && mt == "text/html" {
		_, label, _ = charset.DetermineEncoding(data, "text/html")
	}
	if label == "" || strings.EqualFold(label, "utf-8") || strings.EqualFold(label, "us-ascii") {
		return strings.ToValidUTF8(string(data), "\uFFFD")
	}
	enc, _ := charset.Lookup(label)
	if enc == nil {
		x.problem("part %d: unknown charset %q, read as UTF-8", n, label)
		return strings.ToValidUTF8(string(data), "\uFFFD")
	}
	out, err := enc.NewDecoder().Bytes(data)
	if err != nil {
		x.problem("part %d: charset %s: %v", n, label, err)
		return strings.ToValidUTF8(string(data), "\uFFFD")
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
}

// result sorts what was found into the Result.
func (x *extractor) result() *Result {
	r := &x.res
	r.From = sorted(x.sets["from"])
	r.ReplyTo = sorted(x.sets["reply-to"])
	r.ReturnPath = sorted(x.sets["return-path"])
	r.Recipients = sorted(x.sets["recipient"])
	r.Contacts = sorted(x.sets["contact"])
	for _, u := range x.urls {
		slices.Sort(u.Where)
		u.Where = slices.Compact(u.Where)
		r.URLs = append(r.URLs, *u)
	}
	slices.SortFunc(r.URLs, func(a, b URL) int { return strings.Compare(a.URL, b.URL) })
	for name, srcs := range x.domains {
		r.Domains = append(r.Domains, Domain{Name: name, Sources: sorted(srcs)})
	}
	slices.SortFunc(r.Domains, func(a, b Domain) int { return strings.Compare(a.Name, b.Name) })
	r.Attachments = x.atts
	slices.SortFunc(r.Attachments, func(a, b Attachment) int {
		return strings.Compare(a.SHA256+a.Name, b.SHA256+b.Name)
	})
	return r
}

// sorted returns a set's members in order; nil for an empty set.
func sorted(set map[string]bool) []string { return slices.Sorted(maps.Keys(set)) }

// safeText drops control characters (terminal escapes among them) and
// bidirectional overrides, makes invalid UTF-8 valid and caps the length
// in bytes.
func safeText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
