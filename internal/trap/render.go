package trap

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Render returns a safe text rendering of a quarantined message for a
// terminal: its main headers (encoded words decoded), the text of its
// body (text/plain preferred, HTML stripped of its tags; quoted-printable
// and base64 decoded; nested multiparts walked, at most 64 parts), its
// attachments by name, and the links it holds, listed as text. Nothing is
// fetched or opened, and control characters (terminal escapes among them)
// are shown as \xNN, so a hostile message cannot drive the terminal.
// Broken MIME is rendered as far as it goes, never an error.
func Render(raw []byte) string {
	var b strings.Builder
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		fmt.Fprintf(&b, "(not a parseable message: %s)\n\n%s", safe(err.Error()), safe(string(raw[:min(len(raw), 64<<10)])))
		return b.String()
	}
	dec := mime.WordDecoder{}
	for _, h := range []string{"From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-Id", "Return-Path", "X-Mailer"} {
		for _, v := range msg.Header[h] {
			if d, err := dec.DecodeHeader(v); err == nil {
				v = d
			}
			fmt.Fprintf(&b, "%s: %s\n", h, safe(v))
		}
	}
	b.WriteString("\n")
	r := &renderer{}
	r.part(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), "", msg.Body, 0)
	body := r.plain.String()
	if strings.TrimSpace(body) == "" {
		body = r.html.String()
	}
	b.WriteString(safe(body))
	if !strings.HasSuffix(body, "\n") {
		b.WriteString("\n")
	}
	if len(r.attachments) > 0 {
		b.WriteString("\nAttachments:\n")
		for _, a := range r.attachments {
			fmt.Fprintf(&b, "  %s\n", safe(a))
		}
	}
	if links := linkRE().FindAllString(r.plain.String()+" "+r.rawHTML.String(), 200); len(links) > 0 {
		b.WriteString("\nLinks (not opened):\n")
		seen := map[string]bool{}
		for _, l := range links {
			if !seen[l] {
				seen[l] = true
				fmt.Fprintf(&b, "  %s\n", safe(l))
			}
		}
	}
	return b.String()
}

// The link pattern's bounded repeat compiles to a large program: it is
// built at the first message rendered, not at the start of every command.
var (
	linkRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)\b(?:https?|ftp)://[^\s"'<>()]{1,1000}`)
	})
	tagRE = regexp.MustCompile(`(?s)<(script|style)\b.*?</(script|style)\s*>|<[^>]*>`)
)

type renderer struct {
	plain, html, rawHTML bytes.Buffer
	attachments          []string
	parts                int
}

// renderLimit bounds the text taken from one message.
const renderLimit = 1 << 20

func (r *renderer) part(ctype, cte, disposition string, body io.Reader, depth int) {
	r.parts++
	if r.parts > 64 || depth > 8 {
		return
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if ctype == "" || err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			r.part(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p.Header.Get("Content-Disposition"), p, depth+1)
		}
	}
	var rd io.Reader = io.LimitReader(body, renderLimit)
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		rd = quotedprintable.NewReader(rd)
	case "base64":
		rd = base64.NewDecoder(base64.StdEncoding, &stripSpace{r: rd})
	}
	_, dparams, _ := mime.ParseMediaType(disposition)
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	if name != "" || !strings.HasPrefix(mt, "text/") {
		r.attachments = append(r.attachments, fmt.Sprintf("%s (%s)", name, mt))
		return
	}
	data, _ := io.ReadAll(rd)
	switch mt {
	case "text/html":
		r.rawHTML.Write(data)
		r.html.WriteString(tagRE.ReplaceAllString(string(data), " "))
	default:
		r.plain.Write(data)
	}
}

// stripSpace drops the line breaks base64 bodies carry.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			p[j] = c
			j++
		}
	}
	return j, err
}

// safe shows control characters (but newlines and tabs) and invalid
// UTF-8 as \xNN.
func safe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case c == '\n' || c == '\t':
			b.WriteRune(c)
		case c == '\r':
		case unicode.IsControl(c) || c == '\u2028' || c == '\u2029' || unicode.Is(unicode.Bidi_Control, c):
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteRune(c)
		}
		i += size
	}
	return b.String()
}
