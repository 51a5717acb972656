package action

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/rampart-dev/rampart/internal/httpout"
)

// Webhook posts each event as JSON: the event itself, or the body its
// template writes. Template fields are escaped for use inside JSON
// strings ("{{.Reason}}" is safe whatever the reason holds); a body that
// is not valid JSON is not sent. With a secret, the body is signed
// (httpout.SignatureHeader).
type Webhook struct {
	URL      string
	Secret   []byte
	Template *template.Template // nil: the event as JSON
	HTTP     *httpout.Client
	now      func() time.Time
}

// Body returns what is posted for ev.
func (w *Webhook) Body(ev Event) ([]byte, error) {
	if w.Template == nil {
		return json.Marshal(ev)
	}
	data := map[string]string{}
	for k, v := range ev.Fields() {
		q, _ := json.Marshal(v)
		data[k] = string(q[1 : len(q)-1])
	}
	var b bytes.Buffer
	if err := w.Template.Execute(&b, data); err != nil {
		return nil, err
	}
	if !json.Valid(b.Bytes()) {
		return nil, fmt.Errorf("the template's body is not JSON: %.200s", b.String())
	}
	return b.Bytes(), nil
}

func (w *Webhook) Handle(ctx context.Context, ev Event) error {
	body, err := w.Body(ev)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Rampart-Event", ev.Type)
	if len(w.Secret) > 0 {
		now := time.Now()
		if w.now != nil {
			now = w.now()
		}
		req.Header.Set(httpout.SignatureHeader, httpout.Sign(w.Secret, now, body))
	}
	_, err = w.HTTP.Do(ctx, req)
	return err
}

// Mailer submits mail (a smarthost.Mailer).
type Mailer interface {
	Send(ctx context.Context, from string, to []string, msg []byte) error
}

// Digest mails the events of each interval as one plain-text message:
// at most maxDigest events listed, the rest counted. A digest that cannot
// be sent is kept (within the same bound) for the next interval.
type Digest struct {
	Mail    Mailer
	From    string // "Rampart <rampart@example.org>"
	To      []string
	Subject *template.Template // fields: those of an event's (the first), and .Count
	Every   time.Duration
	Host    string
	now     func() time.Time

	mu   sync.Mutex
	evs  []Event
	more int // events beyond maxDigest
}

const maxDigest = 1000

func (m *Digest) Interval() time.Duration { return m.Every }

func (m *Digest) Handle(_ context.Context, ev Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.evs) >= maxDigest {
		m.more++
		return nil
	}
	m.evs = append(m.evs, ev)
	return nil
}

func (m *Digest) Flush(ctx context.Context) (int, error) {
	m.mu.Lock()
	evs, more := m.evs, m.more
	m.evs, m.more = nil, 0
	m.mu.Unlock()
	if len(evs) == 0 {
		return 0, nil
	}
	msg, err := m.compose(evs, more)
	if err == nil {
		from := m.From
		if i := strings.LastIndexByte(from, '<'); i >= 0 {
			from = strings.Trim(from[i:], "<> ")
		}
		err = m.Mail.Send(ctx, from, m.To, msg)
	}
	if err != nil {
		m.mu.Lock()
		keep := min(len(evs), maxDigest-len(m.evs))
		m.evs = append(evs[:keep:keep], m.evs...)
		m.more += more + len(evs) - keep
		m.mu.Unlock()
		return len(evs) + more, err
	}
	return 0, nil
}

func (m *Digest) compose(evs []Event, more int) ([]byte, error) {
	now := time.Now()
	if m.now != nil {
		now = m.now()
	}
	data := map[string]any{"Count": len(evs) + more}
	for k, v := range evs[0].Fields() {
		data[k] = v
	}
	var subj bytes.Buffer
	if err := m.Subject.Execute(&subj, data); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\n", m.From, strings.Join(m.To, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", oneLine(subj.String()))
	fmt.Fprintf(&b, "Date: %s\r\nMIME-Version: 1.0\r\nAuto-Submitted: auto-generated\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "%d events on %s:\r\n\r\n", len(evs)+more, m.Host)
	for _, ev := range evs {
		fmt.Fprintf(&b, "%s  %-6s %-39s", ev.Time.UTC().Format("2006-01-02 15:04:05Z"), ev.Type, oneLine(ev.IP))
		switch {
		case ev.Type == Report:
			fmt.Fprintf(&b, " %s %s of %s to %s", ev.Reporter, ev.Kind, oneLine(ev.Target), oneLine(ev.Destination))
		default:
			fmt.Fprintf(&b, " %s/%s", ev.Jail, ev.Scenario)
			if ev.DurationS > 0 {
				fmt.Fprintf(&b, " for %s", time.Duration(ev.DurationS)*time.Second)
			}
			if ev.Reason != "" {
				fmt.Fprintf(&b, ": %s", oneLine(ev.Reason))
			}
		}
		b.WriteString("\r\n")
	}
	if more > 0 {
		fmt.Fprintf(&b, "\r\nand %d more.\r\n", more)
	}
	return b.Bytes(), nil
}

// oneLine drops line breaks and other control characters from a value
// (an attacker's user name in a reason) before it goes on a mail line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
