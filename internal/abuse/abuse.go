// Package abuse reports attackers, and what their mail advertised, to
// those who can act on them: AbuseIPDB (addresses), Netcraft (links), the
// abuse contacts RDAP names for a network or a domain (X-ARF and ARF mail
// through a smarthost), a signed JSON webhook, and domains' postmasters
// (their addresses that spammers hold).
//
// Every report goes through one persistent queue in the store (Queue):
// deduplicated per reporter and target across restarts, held for review
// or recorded without sending when the mode says so, rate-limited per
// destination, retried with backoff, paused as a service's 429 and
// Retry-After ask. What is sent is redacted (Redactor): this host's names
// and addresses, user names from log-derived reasons, the trapped mail's
// recipients.
package abuse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-dev/rampart/internal/evidence"
	"github.com/rampart-dev/rampart/internal/store"
)

// Kinds of reports.
const (
	KindAttack     = "attack"     // an address a jail banned (or trapped) for what it did
	KindSpam       = "spam"       // an address that sent mail to the trap
	KindMessage    = "message"    // a trapped message and everything it carried (webhook)
	KindURL        = "url"        // a link trapped mail advertised
	KindDomain     = "domain"     // a registrable domain trapped mail advertised
	KindRecipients = "recipients" // a domain's addresses that spammers hold (postmaster)
)

// Subject is what one report is about; the queue keeps it as JSON.
// Every text in it is redacted when the report is queued.
type Subject struct {
	Addr     string    `json:"addr,omitempty"`
	URL      string    `json:"url,omitempty"`
	Domain   string    `json:"domain,omitempty"`
	Jail     string    `json:"jail,omitempty"`
	Scenario string    `json:"scenario,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	First    time.Time `json:"first,omitzero"` // when it began (the decision, the message's arrival)
	Last     time.Time `json:"last,omitzero"`
	// Categories are AbuseIPDB's for this report.
	Categories []int `json:"categories,omitempty"`
	// Message is the trapped message the report is about, or that
	// advertised the URL or domain.
	Message *Message `json:"message,omitempty"`
	// URLs are a domain report's links.
	URLs []string `json:"urls,omitempty"`
	// Recipients are a domain's leaked addresses (postmaster), or a
	// message's recipients (webhook, with recipients = true).
	Recipients []string `json:"recipients,omitempty"`
	// Indicators are a message's (webhook).
	Indicators []store.Indicator `json:"indicators,omitempty"`
}

// Message is a trapped message as reports describe it.
type Message struct {
	ID          int64                 `json:"id"`
	QueueID     string                `json:"queue_id"`
	Received    time.Time             `json:"received"`
	Client      string                `json:"client"`
	Port        int                   `json:"port,omitempty"`
	Helo        string                `json:"helo,omitempty"`
	MailFrom    string                `json:"mail_from,omitempty"`
	Recipients  int                   `json:"recipients"`
	Subject     string                `json:"subject,omitempty"`
	From        []string              `json:"from,omitempty"`
	ReplyTo     []string              `json:"reply_to,omitempty"`
	URLs        []evidence.URL        `json:"urls,omitempty"`
	Attachments []evidence.Attachment `json:"attachments,omitempty"`
}

// Item is a queued report with its subject decoded.
type Item struct {
	store.Report
	Subject Subject
}

func itemOf(r store.Report) (Item, error) {
	it := Item{Report: r}
	if err := json.Unmarshal(r.Subject, &it.Subject); err != nil {
		return it, fmt.Errorf("report %d: bad subject: %w", r.ID, err)
	}
	return it, nil
}

// Reporter sends reports of the kinds it takes to one service.
type Reporter interface {
	// Name is its name in the queue, the configuration and status.
	Name() string
	// Takes reports whether it reports this kind.
	Takes(kind string) bool
	// Destination returns where a report goes: the service's host, or the
	// abuse mailbox it looks up. A Final error means there is nobody to
	// send it to; any other is tried again later.
	Destination(ctx context.Context, it Item) (string, error)
	// Send sends the report to dest and returns the service's receipt (a
	// submission id, a score). A Final error, a 4xx answer other than 429
	// or an SMTP 5xx is given up; a 429 pauses the reporter for as long as
	// the service asked; anything else is tried again with backoff.
	Send(ctx context.Context, it Item, dest string) (receipt string, err error)
	// Render returns what Send would send (without secrets), for review
	// and dry runs. It contacts nothing.
	Render(it Item) (string, error)
}

// finalError is a failure that trying again cannot mend.
type finalError struct{ err error }

func (e *finalError) Error() string { return e.err.Error() }
func (e *finalError) Unwrap() error { return e.err }

// nowOf returns now(), or the time when now is nil: the reporters' now
// fields are set by tests alone.
func nowOf(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}

// Final marks err as not worth trying again.
func Final(err error) error {
	if err == nil {
		return nil
	}
	return &finalError{err}
}

// IsFinal reports whether err was marked Final.
func IsFinal(err error) bool {
	var fe *finalError
	return errors.As(err, &fe)
}
