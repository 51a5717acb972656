package abuse

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/httpout"
)

// Webhook posts attack reports and each trapped message with its
// indicators to a URL as JSON, signed (httpout.SignatureHeader), with the
// report's ID in X-Rampart-Delivery so that a receiver can drop the one a
// crash made it send twice.
type Webhook struct {
	URL    string
	Secret []byte
	HTTP   *httpout.Client
	now    func() time.Time
}

var _ Reporter = (*Webhook)(nil)

func (*Webhook) Name() string { return "webhook" }

func (*Webhook) Takes(kind string) bool { return kind == KindAttack || kind == KindMessage }

func (w *Webhook) Destination(context.Context, Item) (string, error) { return hostOf(w.URL), nil }

// WebhookBody is what the webhook receives.
type WebhookBody struct {
	Event   string    `json:"event"` // "report"
	ID      int64     `json:"id"`
	Kind    string    `json:"kind"` // attack, message
	Target  string    `json:"target"`
	Created time.Time `json:"created"`
	Subject Subject   `json:"subject"`
}

func (w *Webhook) body(it Item) ([]byte, error) {
	return json.Marshal(WebhookBody{Event: "report", ID: it.ID, Kind: it.Kind, Target: it.Target, Created: it.Created, Subject: it.Subject})
}

func (w *Webhook) Send(ctx context.Context, it Item, _ string) (string, error) {
	body, err := w.body(it)
	if err != nil {
		return "", Final(err)
	}
	h := http.Header{}
	h.Set(httpout.SignatureHeader, httpout.Sign(w.Secret, nowOf(w.now), body))
	h.Set("X-Rampart-Delivery", "report-"+strconv.FormatInt(it.ID, 10))
	h.Set("X-Rampart-Event", "report."+it.Kind)
	resp, err := postJSON(ctx, w.HTTP, w.URL, body, h)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d", resp.Status), nil
}

func (w *Webhook) Render(it Item) (string, error) {
	body, err := w.body(it)
	return fmt.Sprintf("POST %s\nContent-Type: application/json\n%s: t=…,v1=…\nX-Rampart-Delivery: report-%d\n\n%s\n",
		w.URL, httpout.SignatureHeader, it.ID, body), err
}

// Postmaster mails a domain's postmaster the addresses of theirs that
// spammers sent mail to the trap to: their list has leaked.
type Postmaster struct {
	Mail   Mailer
	Sender Sender
	now    func() time.Time
}

var _ Reporter = (*Postmaster)(nil)

func (*Postmaster) Name() string { return "postmaster" }

func (*Postmaster) Takes(kind string) bool { return kind == KindRecipients }

func (p *Postmaster) Destination(_ context.Context, it Item) (string, error) {
	a := plainAddress("postmaster@" + it.Subject.Domain)
	if a == "" {
		return "", Final(fmt.Errorf("report %d: no postmaster address for %q", it.ID, it.Subject.Domain))
	}
	return a, nil
}

func (p *Postmaster) compose(it Item, to string) []byte {
	now := nowOf(p.now)
	s := it.Subject
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: <%s>\r\n", p.Sender.From.String(), to)
	fmt.Fprintf(&b, "Subject: Addresses at %s that spammers hold\r\n", headerSafe(s.Domain))
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <rampart-postmaster-%d.%d@%s>\r\n", now.Format(time.RFC1123Z), it.ID, now.Unix(), p.Sender.domain())
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nAuto-Submitted: auto-generated\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	fmt.Fprintf(&b, "Hello,\r\n\r\nBetween %s and %s, spammers sent mail to a mail trap of %s\r\naddressed to these %d addresses at %s:\r\n\r\n",
		s.First.UTC().Format("2006-01-02 15:04 MST"), s.Last.UTC().Format("2006-01-02 15:04 MST"), p.Sender.org(), len(s.Recipients), s.Domain)
	for _, r := range s.Recipients {
		fmt.Fprintf(&b, "  %s\r\n", headerSafe(r))
	}
	fmt.Fprintf(&b, "\r\nThe list of your users' addresses these spammers hold has leaked, or the\r\n"+
		"addresses were guessed. Nothing was delivered to them. This summary was written by\r\nRampart; %s asked to send it.\r\n", p.Sender.org())
	return []byte(b.String())
}

func (p *Postmaster) Send(ctx context.Context, it Item, dest string) (string, error) {
	if err := p.Mail.Send(ctx, p.Sender.From.Address, []string{dest}, p.compose(it, dest)); err != nil {
		return "", err
	}
	return "mailed", nil
}

func (p *Postmaster) Render(it Item) (string, error) {
	dest, err := p.Destination(context.Background(), it)
	if err != nil {
		return "", err
	}
	return string(p.compose(it, dest)), nil
}
