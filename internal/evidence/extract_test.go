package evidence

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// corpusEnvelope is the envelope every corpus message is read with: the
// trap's client, its HELO, MAIL FROM and RCPT TOs.
var corpusEnvelope = Envelope{
	Client:   netip.MustParseAddr("203.0.113.45"),
	Helo:     "WIN-8K2J4.bulk-mailer.example",
	MailFrom: "<bounce@bulk-mailer.example>",
	RcptTo:   []string{"victim1@customer.example", "Victim2@Other.example"},
	Received: time.Date(2026, 3, 2, 8, 15, 0, 0, time.UTC),
}

// golden is what a corpus message's golden file holds.
type golden struct {
	Result     *Result     `json:"result"`
	Indicators []Indicator `json:"indicators"`
}

// TestCorpus reads every message under testdata/corpus (real-world-shaped
// spam: multipart, HTML-only, encoded, obfuscated links, attachments,
// broken MIME) and compares what it carried with its golden file.
func TestCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/*.eml")
	if len(files) < 10 {
		t.Fatalf("corpus has %d messages", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r := Extract(raw, corpusEnvelope, Options{})
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(golden{r, r.Indicators(corpusEnvelope)}); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			gf := strings.TrimSuffix(f, ".eml") + ".golden.json"
			if *update {
				if err := os.WriteFile(gf, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(gf)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("extraction differs from %s (run with -update if intended):\n%s", gf, got)
			}
		})
	}
}

// TestCorpusFacts checks, beside the golden files, the facts each corpus
// message exists for, so that an -update cannot bless a regression
// unseen.
func TestCorpusFacts(t *testing.T) {
	read := func(name string) *Result {
		raw, err := os.ReadFile("testdata/corpus/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return Extract(raw, corpusEnvelope, Options{})
	}
	urls := func(r *Result) map[string]URL {
		m := map[string]URL{}
		for _, u := range r.URLs {
			m[u.URL] = u
		}
		return m
	}
	t.Run("multipart-alternative", func(t *testing.T) {
		r := read("multipart-alternative.eml")
		u := urls(r)
		phish, ok := u["https://mail-verify.secure-login.example.co.uk/owa/auth.php?id=7731&user=victim"]
		if !ok || !slices.Equal(phish.Where, []string{"href", "text"}) || phish.Domain != "example.co.uk" {
			t.Errorf("phishing link (entity-encoded in href, quoted-printable in text): %+v", phish)
		}
		if _, ok := u["https://track.bulk-mailer.example/open.gif?m=5521"]; !ok {
			t.Error("tracking pixel missing")
		}
		if _, ok := u["https://cdn.bulk-mailer.example/bg.png"]; !ok {
			t.Error("CSS background missing")
		}
		if r.Subject != "⚠ Your mailbox is almost full" || !slices.Equal(r.ReplyTo, []string{"helpdesk.recovery@freemail.example"}) {
			t.Errorf("subject %q reply-to %v", r.Subject, r.ReplyTo)
		}
		if !slices.Contains(r.ReturnPath, "bounce-5521@bulk-mailer.example") || !slices.Contains(r.ReturnPath, "bounce@bulk-mailer.example") {
			t.Errorf("return paths %v: want the header's and MAIL FROM", r.ReturnPath)
		}
	})
	t.Run("html-only-base64", func(t *testing.T) {
		r := read("html-only-base64.eml")
		u := urls(r)
		for _, want := range []struct{ url, where string }{
			{"http://payroll-update.example/hr/login", "meta"},
			{"https://payroll-update.example/hr/collect.php", "action"},
			{"https://backup-collector.example/c.php", "action"},
			{"http://img.payroll-update.example/paper.jpg", "src"},
		} {
			if got, ok := u[want.url]; !ok || !slices.Contains(got.Where, want.where) {
				t.Errorf("%s at %s: got %+v", want.url, want.where, got)
			}
		}
		if r.Subject != "Actualización de nómina pendiente" {
			t.Errorf("subject %q", r.Subject)
		}
	})
	t.Run("defanged-text", func(t *testing.T) {
		u := urls(read("defanged-text.eml"))
		for url, obfuscated := range map[string]bool{
			"https://docs-claim.example/file/88213":           true,
			"http://claims-mirror.example/view?id=88213":      true,
			"http://www.intl-trust-bank.example/portal/login": false,
			"http://192.168.42.1/portal/":                     true, // 3232246273
			"http://203.0.113.23/p/":                          true, // 0xCB007117
			"https://xn--pypal-4ve.example/secure":            false,
			"http://xn--bcher-rger-v5a6z.example/%C3%BCber":   false,
			"http://forms.claims-mirror.example/id":           false,
		} {
			got, ok := u[url]
			if !ok || got.Obfuscated != obfuscated {
				t.Errorf("%s: found %v, obfuscated %v (want %v)", url, ok, got.Obfuscated, obfuscated)
			}
		}
	})
	t.Run("redirectors", func(t *testing.T) {
		r := read("redirectors.eml")
		u := urls(r)
		if g := u["https://www.google.com/url?q=https://parcel-fee.example/pay?c%3D4471&sa=D&ust=1"]; g.Redirect != "redirector" || g.Target != "https://parcel-fee.example/pay?c=4471" {
			t.Errorf("google redirect: %+v", g)
		}
		if b := u["https://bit.ly/3xParcel"]; b.Redirect != "shortener" || !slices.Equal(b.Where, []string{"href", "text"}) {
			t.Errorf("shortener: %+v", b)
		}
		if s := u["https://u4471.ct.sendgrid.net/ls/click?upn=abcDEF123"]; s.Redirect != "redirector" || s.Target != "" {
			t.Errorf("click tracking: %+v", s)
		}
		for _, target := range []string{"https://parcel-fee.example/pay?c=4471", "https://parcel-fee.example/reschedule",
			"https://parcel-news.example/story/4471", "http://parcel-fee.example/fb"} {
			if got, ok := u[target]; !ok || !slices.Equal(got.Where, []string{"redirect"}) {
				t.Errorf("redirect target %s: %+v", target, got)
			}
		}
		if !slices.Equal(r.Contacts, []string{"support@parcel-fee.example"}) {
			t.Errorf("contacts %v", r.Contacts)
		}
		if !slices.Equal(r.Recipients, []string{"victim1@customer.example", "victim2@other.example", "victim3@customer.example", "victim4@customer.example"}) {
			t.Errorf("recipients %v", r.Recipients)
		}
		for _, d := range r.Domains {
			if d.Name == "google.com" && !slices.Equal(d.Sources, []string{"redirector"}) {
				t.Errorf("google.com is a redirector's domain, not the spammer's: %v", d.Sources)
			}
		}
	})
	t.Run("attachments", func(t *testing.T) {
		r := read("attachments.eml")
		names := map[string]string{}
		for _, a := range r.Attachments {
			names[a.Name] = a.Type
		}
		for name, typ := range map[string]string{"Invoice_2026-0311.pdf": "application/pdf", "Rechnung überfällig.html": "text/html", "invoice_2026.zip": "application/zip"} {
			if names[name] != typ {
				t.Errorf("attachment %q: %q (have %v)", name, names[name], names)
			}
		}
		u := urls(r)
		if got := u["https://invoice-portal.example/auth"]; !slices.Equal(got.Where, []string{"attachment"}) {
			t.Errorf("the HTML attachment's form: %+v", got)
		}
	})
	t.Run("nested-forward", func(t *testing.T) {
		r := read("nested-forward.eml")
		if _, ok := urls(r)["https://sign-docs.forward-trick.example/policy?doc=91"]; !ok {
			t.Error("link of the attached message missing")
		}
		if slices.Contains(r.From, "ceo@legit-company.example") || slices.Contains(r.Recipients, "all-staff@legit-company.example") {
			t.Error("the attached message's header is not the spammer's")
		}
	})
	t.Run("broken", func(t *testing.T) {
		r := read("broken.eml")
		u := urls(r)
		for _, want := range []string{"https://prize-claim.example/second?id=7", "http://prize-claim.example/third", "https://prize-claim.example/html"} {
			if _, ok := u[want]; !ok {
				t.Errorf("%s missing from %v", want, r.URLs)
			}
		}
		if len(r.Problems) < 3 {
			t.Errorf("problems %q: want the header, the base64, the charset and the QP said", r.Problems)
		}
	})
	t.Run("charsets", func(t *testing.T) {
		r := read("charsets.eml")
		if r.Subject != "Ваш аккаунт заблокирован" {
			t.Errorf("KOI8-R subject: %q", r.Subject)
		}
		if _, ok := urls(r)["https://amaz0n-jp.example/verify?acc=55"]; !ok {
			t.Errorf("ISO-2022-JP body's link missing: %v", r.URLs)
		}
	})
	t.Run("html-tricks", func(t *testing.T) {
		r := read("html-tricks.eml")
		u := urls(r)
		if got := u["https://secure.bank.example@login-check.example/session"]; got.Host != "login-check.example" || !got.Obfuscated {
			t.Errorf("user@host link: %+v", got)
		}
		for _, want := range []string{"https://base-host.example/campaign/verify.html?t=9", "http://pixel.tracker-net.example/p.gif",
			"http://split-link.example/path", "https://zerowidth.example/x"} {
			if _, ok := u[want]; !ok {
				t.Errorf("%s missing", want)
			}
		}
		for _, u := range r.URLs {
			if strings.HasPrefix(u.URL, "javascript") || strings.HasPrefix(u.URL, "cid") {
				t.Errorf("not a link: %s", u.URL)
			}
		}
		if !slices.Equal(r.Contacts, []string{"billing@login-check.example", "second@login-check.example"}) {
			t.Errorf("contacts %v", r.Contacts)
		}
		if !slices.Contains(r.From, "bulk@sender-service.example") {
			t.Errorf("Sender header: %v", r.From)
		}
	})
}

// TestLimits: a message past the limits is read up to them, and says so.
func TestLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=x\r\n\r\n")
	for i := range 50 {
		b.WriteString("--x\r\nContent-Type: text/plain\r\n\r\nhttp://host" + strings.Repeat("a", i%5) + ".example/" + string(rune('a'+i%26)) + "\r\n")
	}
	b.WriteString("--x--\r\n")
	r := Extract([]byte(b.String()), Envelope{}, Options{Limits: Limits{Parts: 10, Items: 5}})
	if r.Parts > 11 || len(r.URLs) > 5 {
		t.Errorf("parts %d, urls %d", r.Parts, len(r.URLs))
	}
	if len(r.Problems) < 2 {
		t.Errorf("problems %q", r.Problems)
	}
	// Nesting beyond the depth.
	var nest strings.Builder
	for i := range 30 {
		nest.WriteString("Content-Type: multipart/mixed; boundary=b" + string(rune('a'+i)) + "\r\n\r\n--b" + string(rune('a'+i)) + "\r\n")
	}
	nest.WriteString("Content-Type: text/plain\r\n\r\nhttp://deep.example/\r\n")
	r = Extract([]byte(nest.String()), Envelope{}, Options{})
	if len(r.URLs) != 0 || !strings.Contains(strings.Join(r.Problems, "\n"), "nested deeper") {
		t.Errorf("deep nesting: urls %v problems %q", r.URLs, r.Problems)
	}
	// Bytes: a huge part is cut at the budget.
	big := "Content-Type: text/plain\r\n\r\n" + strings.Repeat("x", 2000) + " http://after.example/"
	r = Extract([]byte(big), Envelope{}, Options{Limits: Limits{Bytes: 1000}})
	if len(r.URLs) != 0 || len(r.Problems) == 0 {
		t.Errorf("byte budget: urls %v problems %q", r.URLs, r.Problems)
	}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"HTTP://Example.COM/Path":                         "http://example.com/Path",
		"https://example.com:443/x#frag":                  "https://example.com/x",
		"http://example.com:8080/":                        "http://example.com:8080/",
		"hXXps://evil[.]example/a":                        "https://evil.example/a",
		"http[:]//evil[dot]example/":                      "http://evil.example/",
		"http://[2001:db8::1]/x":                          "http://[2001:db8::1]/x",
		"http://017700000001/":                            "http://127.0.0.1/", // octal
		"http://xn--d1acpjx3f.xn--p1ai/":                  "http://xn--d1acpjx3f.xn--p1ai/",
		"http://пример.испытание/":                        "http://xn--e1afmkfd.xn--80akhbyknj4f/",
		"https://evil.example./login":                     "https://evil.example/login",
		"ftp://files.example/pub":                         "ftp://files.example/pub",
		"http://exa\tmple.com/":                           "http://example.com/",
		"javascript:alert(1)":                             "",
		"http://localhost/":                               "",
		"http://bad_host!.example/":                       "",
		"http:///nohost":                                  "",
		"mailto:a@b.example":                              "",
		"http://" + strings.Repeat("a", 64) + ".example/": "",
	} {
		u, _, ok := normalizeURL(in)
		if got := u.URL; !ok && want != "" || ok && got != want {
			t.Errorf("normalizeURL(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// TestNamedTarget: a link naming two targets gives the same one every
// time (the parameters' names in order), not whichever a map gives first.
func TestNamedTarget(t *testing.T) {
	p, _ := url.Parse("https://r.example/go?url=https://a.example/&u=https://b.example/&q=https://c.example/")
	for range 50 {
		if got := namedTarget(p); got != "https://c.example/" {
			t.Fatalf("namedTarget = %q, want q's https://c.example/", got)
		}
	}
}

func TestRegistrable(t *testing.T) {
	for host, want := range map[string]string{
		"a.b.example.co.uk":  "example.co.uk",
		"www.example.com":    "example.com",
		"example.com":        "example.com",
		"co.uk":              "",
		"192.0.2.1":          "",
		"localhost":          "",
		"x.blogspot.com":     "x.blogspot.com", // a private suffix
		"deep.sub.evil.test": "evil.test",
	} {
		if got := registrable(host); got != want {
			t.Errorf("registrable(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestTrimURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://a.example/x.":         "http://a.example/x",
		"http://a.example/x),":        "http://a.example/x",
		"http://a.example/wiki/A_(b)": "http://a.example/wiki/A_(b)",
		"http://a.example/x]":         "http://a.example/x",
		"hxxp://a[.]example":          "hxxp://a[.]example",
	} {
		if got := trimURL(in); got != want {
			t.Errorf("trimURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodeLenient(t *testing.T) {
	got, err := decodeBase64(strings.NewReader("aGVs\r\nbG8g!d29y\nbGQ")) // no padding, a stray byte
	if string(got) != "hello world" || err == nil {
		t.Errorf("base64: %q, %v", got, err)
	}
	got, err = decodeQP(strings.NewReader("a=3Db =ZZ \x07 c=\r\nd")) // a control byte: the library gives up
	if string(got) != "a=b =ZZ \x07 cd" || err == nil {
		t.Errorf("quoted-printable: %q, %v", got, err)
	}
}

// BenchmarkExtractCorpus reads the whole corpus once per iteration.
func BenchmarkExtractCorpus(b *testing.B) {
	files, _ := filepath.Glob("testdata/corpus/*.eml")
	var msgs [][]byte
	size := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		msgs, size = append(msgs, raw), size+len(raw)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		for _, raw := range msgs {
			Extract(raw, corpusEnvelope, Options{})
		}
	}
}
