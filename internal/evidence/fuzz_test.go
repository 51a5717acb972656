package evidence

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzExtract feeds hostile messages to the extractor: it must not panic,
// must stay within its limits, and what it returns must be what it
// promises (absolute http, https or ftp URLs with lower-case hosts, valid
// UTF-8, no control characters in the subject).
func FuzzExtract(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.eml")
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: text/html\r\n\r\n<a href=hxxp://x[.]example>"))
	f.Add([]byte("Content-Transfer-Encoding: base64\r\n\r\n====!!!!"))
	lim := Limits{Bytes: 1 << 20, Parts: 64, Depth: 8, Items: 100}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := Extract(raw, corpusEnvelope, Options{Limits: lim})
		if len(r.URLs) > lim.Items || len(r.Recipients) > lim.Items || len(r.Attachments) > lim.Items || len(r.Problems) > 50 {
			t.Fatalf("over the limits: %d urls, %d recipients, %d attachments, %d problems", len(r.URLs), len(r.Recipients), len(r.Attachments), len(r.Problems))
		}
		for _, u := range r.URLs {
			p, err := url.Parse(u.URL)
			if err != nil || !p.IsAbs() || p.Host == "" || (p.Scheme != "http" && p.Scheme != "https" && p.Scheme != "ftp") {
				t.Fatalf("bad URL %q: %v", u.URL, err)
			}
			if u.Host != strings.ToLower(u.Host) || !utf8.ValidString(u.URL) || len(u.Where) == 0 {
				t.Fatalf("bad URL entry %+v", u)
			}
		}
		if !utf8.ValidString(r.Subject) || strings.ContainsAny(r.Subject, "\x00\x1b\r\n") {
			t.Fatalf("unsafe subject %q", r.Subject)
		}
		for _, ind := range r.Indicators(corpusEnvelope) {
			if ind.Value == "" || !utf8.ValidString(ind.Value) {
				t.Fatalf("bad indicator %+v", ind)
			}
		}
	})
}
