package abuse

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/httpout"
	"github.com/rampart-dev/rampart/internal/smarthost"
	"github.com/rampart-dev/rampart/internal/smarthost/smarthosttest"
	"github.com/rampart-dev/rampart/internal/store"
)

// part is one MIME part of a report mail.
type part struct {
	header textproto.MIMEHeader
	body   []byte
}

// reportParts reads a multipart/report mail into its header and parts
// (transfer encodings decoded).
func reportParts(t *testing.T, data []byte) (mail.Header, []part) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "feedback-report" {
		t.Fatalf("content type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []part
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			b, _ = io.ReadAll(base64Reader(b))
		}
		parts = append(parts, part{p.Header, b})
	}
	return m.Header, parts
}

func base64Reader(b []byte) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, strings.NewReader(strings.Join(strings.Fields(string(b)), "")))
}

// TestAbuseContacts: reports go to the abuse contact RDAP names (found
// through IANA's bootstrap, a redirect between RIRs, a registrar's nested
// entity; kept in the store), as X-ARF for an attack and ARF with the
// redacted message for spam and for an advertised domain, through the
// smarthost. An address with a line break in RDAP's answer is never used.
func TestAbuseContacts(t *testing.T) {
	l := newLab(t)
	rdapSrv := newFakeRDAP(t)
	relay := smarthosttest.New(t, smarthosttest.Options{Username: "rampart", Password: "relay-pw"})
	hc := httpout.New(httpout.Options{Redirects: 3, Transport: rdapSrv.Client().Transport})
	from, _ := mail.ParseAddress("Our Abuse Desk <abuse@our-org.test>")
	c := &AbuseContacts{
		RDAP:      &RDAP{Bootstrap: rdapSrv.URL + "/", HTTP: hc, Store: l.st, TTL: 7 * 24 * time.Hour, now: l.clock.Now},
		Mail:      smarthost.New(smarthost.Config{Addr: relay.Addr, Username: "rampart", Password: "relay-pw", TLSConfig: relay.ClientTLS}),
		Sender:    Sender{From: *from, Version: "1.2.3"},
		Addresses: true, Domains: true, Store: l.st, Redact: l.redact, now: l.clock.Now,
	}
	q := l.queue(Config{PerHour: map[string]int{"abuse_contacts": 4}}, c)
	ctx := context.Background()
	q.Decision(ctx, l.decision("203.0.113.7", "sshd", "ip-failures", sshReason))
	q.Decision(ctx, l.decision("198.51.100.9", "dovecot", "ip-failures", "5 failures"))
	q.Decision(ctx, l.decision("192.0.2.200", "sshd", "ip-failures", "5 failures")) // no RDAP server for it answers
	m, r, inds := l.trapped("redirectors.eml", "203.0.113.45")
	q.Message(ctx, m, r, inds, false)
	q.Process(ctx)
	got := relay.Wait(t, 5, 10*time.Second)
	to := map[string][]smarthosttest.Message{}
	for _, msg := range got {
		if msg.From != "abuse@our-org.test" || !msg.TLS || msg.User != "rampart" || len(msg.To) != 1 {
			t.Errorf("envelope %+v", msg)
		}
		to[msg.To[0]] = append(to[msg.To[0]], msg)
	}
	if len(to["abuse@hosting.test"]) != 2 || len(to["abuse@isp.test"]) != 1 || len(to["domain-abuse@registrar.test"]) != 2 {
		t.Fatalf("mailed to %v", keys(to))
	}
	// The attack: X-ARF.
	for _, msg := range to["abuse@hosting.test"] {
		h, parts := reportParts(t, msg.Data)
		if len(parts) != 3 {
			t.Fatalf("%d parts", len(parts))
		}
		fb := string(parts[1].body)
		switch {
		case strings.Contains(fb, "Feedback-Type: xarf"):
			if !strings.Contains(h.Get("Subject"), "login attack from 203.0.113.7") || h.Get("Auto-Submitted") != "auto-generated" {
				t.Errorf("header %v", h)
			}
			var x xarfReport
			if err := json.Unmarshal(parts[2].body, &x); err != nil {
				t.Fatalf("xarf.json: %v\n%s", err, parts[2].body)
			}
			if x.Version != "3" || x.Report.ReportType != "LoginAttack" || x.Report.SourceIp != "203.0.113.7" || x.Report.Date != "2026-03-01T10:00:00Z" ||
				x.ReporterInfo.ReporterOrgEmail != "abuse@our-org.test" || x.ReporterInfo.ReporterOrg != "Our Abuse Desk" {
				t.Errorf("xarf %+v", x)
			}
			for _, leak := range []string{"alice", "our-host", "192.0.2.10"} {
				if bytes.Contains(msg.Data, []byte(leak)) || strings.Contains(string(parts[0].body), leak) {
					t.Errorf("X-ARF report leaks %q", leak)
				}
			}
		case strings.Contains(fb, "Feedback-Type: abuse"):
			if !strings.Contains(fb, "Source-IP: 203.0.113.45") || !strings.Contains(fb, "User-Agent: Rampart/1.2.3") ||
				!strings.Contains(fb, "Reported-Uri: https://parcel-fee.example/pay?c=4471") || parts[2].header.Get("Content-Type") != "message/rfc822" {
				t.Errorf("ARF feedback:\n%s", fb)
			}
			if bytes.Contains(parts[2].body, []byte("victim")) || bytes.Contains(parts[2].body, []byte("Victim")) {
				t.Errorf("recipients not redacted:\n%s", parts[2].body)
			}
			if !bytes.Contains(parts[2].body, []byte("Subject: Your parcel is waiting")) {
				t.Errorf("the message is not the evidence:\n%s", parts[2].body)
			}
		default:
			t.Errorf("unknown report:\n%s", fb)
		}
	}
	for _, msg := range to["domain-abuse@registrar.test"] {
		_, parts := reportParts(t, msg.Data)
		if fb := string(parts[1].body); !strings.Contains(fb, "Reported-Domain: parcel-") {
			t.Errorf("domain report:\n%s", fb)
		}
	}
	if bytes.Contains(got[0].Data, []byte("Bcc:")) {
		t.Error("an address RDAP gave with a line break was used")
	}
	// One lookup per /24 and per domain: the second spam address of the
	// same network comes from the store.
	if n := rdapSrv.hits("/rir1/ip/203.0.113.7") + rdapSrv.hits("/rir1/ip/203.0.113.45"); n != 1 {
		t.Errorf("%d lookups for one /24", n)
	}
	failed := l.reports(store.ReportFailed)
	if len(failed) != 1 || failed[0].Target != "192.0.2.200" || !strings.Contains(failed[0].LastError, "no abuse contact") {
		t.Errorf("failed %+v", failed)
	}
	// Per contact rate: a fifth report to abuse@hosting.test within the hour waits.
	for i := range 3 {
		q.Decision(ctx, l.decision("203.0.113."+string(rune('1'+i)), "sshd", "ip-failures", "5"))
	}
	q.Process(ctx)
	if n := len(relay.Messages()); n != 7 {
		t.Errorf("%d mailed; want 7 (abuse@hosting.test's fifth waits for the next hour)", n)
	}
	if pending := l.reports(store.ReportPending); len(pending) != 1 || pending[0].Destination != "abuse@hosting.test" {
		t.Errorf("pending %+v", pending)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestPostmasterSummary: the postmaster of a listed domain is mailed the
// addresses of theirs spammers sent to, once per interval; other domains'
// postmasters are not.
func TestPostmasterSummary(t *testing.T) {
	l := newLab(t)
	relay := smarthosttest.New(t, smarthosttest.Options{})
	from, _ := mail.ParseAddress("Abuse <abuse@our-org.test>")
	p := &Postmaster{Mail: smarthost.New(smarthost.Config{Addr: relay.Addr, TLSConfig: relay.ClientTLS}), Sender: Sender{From: *from}, now: l.clock.Now}
	q := l.queue(Config{PostmasterDomains: []string{"customer.example"}, PostmasterInterval: 24 * time.Hour}, p)
	ctx := context.Background()
	since := l.clock.Now()
	l.trapped("redirectors.eml", "203.0.113.45") // victim1..4: customer.example, other.example
	l.clock.Advance(time.Hour)
	if err := q.Postmasters(ctx, since); err != nil {
		t.Fatal(err)
	}
	q.Process(ctx)
	got := relay.Wait(t, 1, 5*time.Second)
	if len(got) != 1 || got[0].To[0] != "postmaster@customer.example" {
		t.Fatalf("mailed %+v", got)
	}
	body := string(got[0].Data)
	for _, want := range []string{"victim1@customer.example", "victim3@customer.example", "victim4@customer.example", "3 addresses at customer.example"} {
		if !strings.Contains(body, want) {
			t.Errorf("summary lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "other.example") {
		t.Errorf("another domain's address in the summary:\n%s", body)
	}
	l.clock.Advance(time.Hour)
	q.Postmasters(ctx, since)
	q.Process(ctx)
	if n := len(relay.Messages()); n != 1 {
		t.Errorf("%d summaries within one interval", n)
	}
}
