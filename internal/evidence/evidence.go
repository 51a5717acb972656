// Package evidence reads what a trapped message carried: its sender's
// addresses (From, Reply-To, Return-Path, the envelope), the recipients the
// spammer bought, the links in its text and HTML (de-obfuscated; redirectors
// and URL shorteners recorded as such, never followed), the domains behind
// them and their registrable parts, and its attachments by name and
// SHA-256.
//
// It is pure: it reads bytes and returns values. Nothing in it opens a
// connection, resolves a name or runs a program (TestNoDialling checks its
// imports and calls), so a hostile message can make it do nothing but
// parse, within the limits below.
//
// # Limits
//
// A message is read at most Limits.Bytes deep into its decoded parts, at
// most Limits.Parts parts and Limits.Depth levels of nesting; each list of
// results is capped (Limits.Items). What is cut off is said in
// Result.Problems, never an error: broken MIME, bad base64, unknown
// charsets and truncated messages are read as far as they go.
package evidence

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Envelope is what the trap knew of a message besides its text.
type Envelope struct {
	Client   netip.Addr
	Helo     string
	MailFrom string
	RcptTo   []string
	Received time.Time
}

// Limits bound the work one message can cause. Zero fields take the
// defaults of DefaultLimits.
type Limits struct {
	Bytes int64 // decoded bytes read from all parts together
	Parts int   // MIME parts walked
	Depth int   // nesting of multiparts and attached messages
	Items int   // entries per list of results (URLs, recipients, ...)
}

// DefaultLimits suits the trap's quarantine (10 MB messages).
func DefaultLimits() Limits {
	return Limits{Bytes: 16 << 20, Parts: 256, Depth: 12, Items: 1000}
}

// Result is what one message carried. Lists are sorted and hold no
// duplicates; addresses and host names are lower case.
type Result struct {
	MessageID string `json:"message_id,omitempty"`
	Subject   string `json:"subject,omitempty"` // decoded
	Mailer    string `json:"mailer,omitempty"`  // X-Mailer or User-Agent
	// From, ReplyTo and ReturnPath are the addresses of those headers;
	// ReturnPath includes the envelope's MAIL FROM.
	From       []string `json:"from,omitempty"`
	ReplyTo    []string `json:"reply_to,omitempty"`
	ReturnPath []string `json:"return_path,omitempty"`
	// Recipients are the envelope's and the To and Cc headers' addresses:
	// the list the spammer holds.
	Recipients []string `json:"recipients,omitempty"`
	// Contacts are the mailto: addresses in the body.
	Contacts    []string     `json:"contacts,omitempty"`
	URLs        []URL        `json:"urls,omitempty"`
	Domains     []Domain     `json:"domains,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	Parts       int          `json:"parts"`
	// Problems says what could not be read, one line each ("part 3:
	// base64: illegal data at input byte 40").
	Problems []string `json:"problems,omitempty"`
}

// URL is a link the message carried.
type URL struct {
	URL    string `json:"url"`              // normalised: scheme and host lower case, IDN in punycode, defanging undone
	Host   string `json:"host"`             // lower case; an IP address in its canonical form
	Domain string `json:"domain,omitempty"` // the host's registrable domain; "" for an address
	// Where lists where it was found: text, href, src, action, meta
	// (refresh), attachment, redirect (the target a redirector's URL
	// names).
	Where []string `json:"where"`
	// Obfuscated: written defanged (hxxp, [.]) or with its host as a
	// number.
	Obfuscated bool `json:"obfuscated,omitempty"`
	// Redirect is "shortener" for a URL shortener's link, "redirector"
	// for a link through another site that names its target: either way
	// the real destination is elsewhere. Never followed.
	Redirect string `json:"redirect,omitempty"`
	Target   string `json:"target,omitempty"` // a redirector's target, when the URL names it
}

// Domain is a registrable domain the message named, and how.
type Domain struct {
	Name string `json:"name"`
	// Sources: url, from, reply-to, return-path, contact, message-id,
	// helo.
	Sources []string `json:"sources"`
}

// Attachment is a part with a file name, or one that is not text.
type Attachment struct {
	Name   string `json:"name,omitempty"` // decoded; "" when it has none
	Type   string `json:"type"`
	Size   int64  `json:"size"`   // decoded bytes read (up to the limit)
	SHA256 string `json:"sha256"` // of the decoded bytes read, hex
}

// Indicator is one fact worth recording on its own, across messages.
type Indicator struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// Indicator kinds.
const (
	KindURL        = "url"
	KindDomain     = "domain"
	KindFrom       = "from"
	KindReplyTo    = "reply-to"
	KindReturnPath = "return-path"
	KindRecipient  = "recipient"
	KindContact    = "contact"
	KindAttachment = "attachment-sha256"
	KindClient     = "client"
	KindHelo       = "helo"
)

// Indicators flattens r (and the envelope's client and HELO) into the
// indicators the store counts across messages, sorted by kind and value.
func (r *Result) Indicators(env Envelope) []Indicator {
	var out []Indicator
	add := func(kind string, vs ...string) {
		for _, v := range vs {
			if v != "" {
				out = append(out, Indicator{kind, v})
			}
		}
	}
	for _, u := range r.URLs {
		add(KindURL, u.URL)
	}
	for _, d := range r.Domains {
		add(KindDomain, d.Name)
	}
	add(KindFrom, r.From...)
	add(KindReplyTo, r.ReplyTo...)
	add(KindReturnPath, r.ReturnPath...)
	add(KindRecipient, r.Recipients...)
	add(KindContact, r.Contacts...)
	for _, a := range r.Attachments {
		add(KindAttachment, a.SHA256)
	}
	if env.Client.IsValid() {
		add(KindClient, env.Client.Unmap().String())
	}
	if h := strings.ToLower(strings.TrimSpace(env.Helo)); h != "" && len(h) <= 255 {
		add(KindHelo, safeText(h, 255))
	}
	slices.SortFunc(out, func(a, b Indicator) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	return slices.Compact(out)
}
