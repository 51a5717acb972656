package abuse

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/evidence"
	"github.com/rampart-dev/rampart/internal/store"
)

// Mailer submits mail (a smarthost.Mailer).
type Mailer interface {
	Send(ctx context.Context, from string, to []string, msg []byte) error
}

// AbuseContacts mails reports to the abuse contact RDAP names: X-ARF
// (version 3, https://github.com/abusix/xarf) for an attacking address,
// to its network's contact; ARF (RFC 5965) with the trapped message for a
// spamming address, to its network's contact, and for a domain the spam
// advertised, to its registrar's.
type AbuseContacts struct {
	RDAP      *RDAP
	Mail      Mailer
	Sender    Sender
	Addresses bool // report attacking and spamming addresses
	Domains   bool // report advertised domains
	Store     *store.Store
	Redact    *Redactor
	now       func() time.Time
}

var _ Reporter = (*AbuseContacts)(nil)

func (*AbuseContacts) Name() string { return "abuse_contacts" }

func (c *AbuseContacts) Takes(kind string) bool {
	return c.Addresses && (kind == KindAttack || kind == KindSpam) || c.Domains && kind == KindDomain
}

func (c *AbuseContacts) Destination(ctx context.Context, it Item) (string, error) {
	if it.Kind == KindDomain {
		return c.RDAP.DomainContact(ctx, it.Subject.Domain)
	}
	a, err := netip.ParseAddr(it.Subject.Addr)
	if err != nil {
		return "", Final(fmt.Errorf("report %d: bad address %q", it.ID, it.Subject.Addr))
	}
	return c.RDAP.AddressContact(ctx, a)
}

func (c *AbuseContacts) Send(ctx context.Context, it Item, dest string) (string, error) {
	msg, id, err := c.compose(ctx, it, dest)
	if err != nil {
		return "", Final(err)
	}
	if err := c.Mail.Send(ctx, c.Sender.From.Address, []string{dest}, msg); err != nil {
		return "", err
	}
	return "Message-ID <" + id + ">", nil
}

func (c *AbuseContacts) Render(it Item) (string, error) {
	dest := it.Destination
	if dest == "" {
		dest = "abuse-contact@looked-up.when.sent"
	}
	msg, _, err := c.compose(context.Background(), it, dest)
	return string(msg), err
}

// compose writes the report mail and returns it with its Message-ID.
func (c *AbuseContacts) compose(ctx context.Context, it Item, to string) ([]byte, string, error) {
	now := nowOf(c.now)
	id := fmt.Sprintf("rampart-report-%d.%d", it.ID, now.Unix())
	s := it.Subject
	ua := c.Sender.userAgent()
	switch it.Kind {
	case KindAttack:
		typ, service := "LoginAttack", s.Jail
		if s.Jail == "portscan" {
			typ = "PortScan"
		}
		human := fmt.Sprintf("Hello,\n\nThe address %s, in your network, attacked a server of %s: %s (%s, scenario %s), from %s.\n\n"+
			"%s\n\nA machine-readable report (X-ARF version 3) is attached. Please stop the abuse. This report was written by Rampart;\n"+
			"what it says of the server is redacted.\n", s.Addr, c.Sender.org(), strings.ToLower(splitCamel(typ)), service, s.Scenario,
			s.First.UTC().Format(time.RFC1123), s.Reason)
		x := xarfReport{Version: "3", Disclosure: true, ReporterInfo: c.reporterInfo(),
			Report: xarfActivity{ReportClass: "Activity", ReportType: typ, Date: s.First.UTC().Format(time.RFC3339), SourceIp: s.Addr, Ongoing: true,
				Samples: []xarfSample{{ContentType: "text/plain", Description: "What the server saw (redacted)", Payload: s.Reason}}}}
		ev, err := xarfPart(x)
		if err != nil {
			return nil, "", err
		}
		feedback := []string{"Feedback-Type: xarf", "User-Agent: " + ua, "Version: 1"}
		msg, err := reportMail(c.Sender, to, fmt.Sprintf("Abuse report: %s from %s", strings.ToLower(splitCamel(typ)), s.Addr), id, now, human, feedback, ev)
		return msg, id, err
	case KindSpam, KindDomain:
		m := s.Message
		if m == nil {
			return nil, "", errors.New("a mail report without its message")
		}
		feedback := []string{"Feedback-Type: abuse", "User-Agent: " + ua, "Version: 1",
			"Arrival-Date: " + m.Received.UTC().Format(time.RFC1123Z), "Source-IP: " + m.Client}
		if m.MailFrom != "" {
			feedback = append(feedback, "Original-Mail-From: <"+headerSafe(m.MailFrom)+">")
		}
		var subject, human string
		if it.Kind == KindDomain {
			feedback = append(feedback, "Reported-Domain: "+headerSafe(s.Domain))
			for i, u := range s.URLs {
				if i < 10 {
					feedback = append(feedback, "Reported-Uri: "+headerSafe(u))
				}
			}
			subject = fmt.Sprintf("Abuse report: domain %s advertised in spam", s.Domain)
			human = fmt.Sprintf("Hello,\n\nThe domain %s, registered with you, was advertised in spam that %s sent to a mail trap of %s on %s:\n\n  %s\n\n"+
				"The message is attached (its recipients redacted). Please stop the abuse. This report was written by Rampart.\n",
				s.Domain, m.Client, c.Sender.org(), m.Received.UTC().Format(time.RFC1123), strings.Join(s.URLs, "\n  "))
		} else {
			for _, u := range m.URLs {
				if u.Redirect == "" && len(feedback) < 20 {
					feedback = append(feedback, "Reported-Uri: "+headerSafe(u.URL))
				}
			}
			subject = fmt.Sprintf("Abuse report: spam from %s", m.Client)
			human = fmt.Sprintf("Hello,\n\nThe address %s, in your network, sent spam to a mail trap of %s on %s (%d recipients).\n\n"+
				"The message is attached (its recipients redacted). Please stop the abuse. This report was written by Rampart.\n",
				m.Client, c.Sender.org(), m.Received.UTC().Format(time.RFC1123), m.Recipients)
		}
		msg, err := reportMail(c.Sender, to, subject, id, now, human, feedback, c.evidence(ctx, m))
		return msg, id, err
	}
	return nil, "", fmt.Errorf("abuse_contacts does not report %q", it.Kind)
}

// evidence is the trapped message, redacted; when it is no longer kept,
// the header lines the report still knows.
func (c *AbuseContacts) evidence(ctx context.Context, m *Message) mailPart {
	if q, err := c.Store.QuarantineGet(ctx, m.ID); err == nil && q.QueueID == m.QueueID {
		rcpts := q.RcptTo
		inds, _ := c.Store.Indicators(ctx, store.IndicatorFilter{Kinds: []string{evidence.KindRecipient}, Message: m.ID})
		for _, i := range inds {
			rcpts = append(rcpts, i.Value)
		}
		return messagePart(c.Redact.Message(q.Raw, rcpts))
	}
	var h strings.Builder
	if len(m.From) > 0 {
		fmt.Fprintf(&h, "From: %s\r\n", headerSafe(m.From[0]))
	}
	fmt.Fprintf(&h, "Subject: %s\r\n", headerSafe(m.Subject))
	return mailPart{header: textproto.MIMEHeader{"Content-Type": {"text/rfc822-headers"}}, body: []byte(h.String())}
}

func (c *AbuseContacts) reporterInfo() xarfReporter {
	return xarfReporter{ReporterOrg: c.Sender.org(), ReporterOrgDomain: c.Sender.domain(), ReporterOrgEmail: c.Sender.From.Address}
}

// headerSafe makes a value chosen by a spammer safe on a header line: no
// line breaks or other control characters.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// splitCamel turns "LoginAttack" into "Login Attack".
func splitCamel(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
