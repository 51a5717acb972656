package abuse

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/evidence"
	"github.com/rampart-dev/rampart/internal/httpout"
	"github.com/rampart-dev/rampart/internal/store"
)

// Modes a reporter runs in.
const (
	ModeSend   = "send"    // reports are sent as they come
	ModeReview = "review"  // reports wait for `rampart abuse approve`
	ModeDryRun = "dry-run" // reports are recorded, never sent
)

// Config is how the queue runs.
type Config struct {
	Dedup       time.Duration     // a reporter reports a target once in this long
	MaxAttempts int               // a report failing this many times is given up
	Modes       map[string]string // by reporter; ModeSend when absent
	PerHour     map[string]int    // reports a reporter sends one destination per hour; 0: no limit
	Jails       []string          // whose decisions are reported; empty: every jail's
	Scenarios   []string          // which scenarios'; empty: all but "manual" and "adopted"
	Ignore      []string          // domains never reported (with the built-in ones and this host's)
	// Postmaster: the domains whose postmasters get their leaked
	// recipients ("*": all), every Interval.
	PostmasterDomains  []string
	PostmasterInterval time.Duration
}

// Queue is the one way reports leave Rampart. Its methods are safe for
// concurrent use; Run sends.
type Queue struct {
	st     *store.Store
	cfg    Config
	reps   map[string]Reporter
	names  []string // reporters, in the order they were given
	redact *Redactor
	log    *slog.Logger
	now    func() time.Time
	ignore map[string]bool
	wake   chan struct{}

	// Sent, when set, is told of each report sent (the actions' "report"
	// events). It must not block.
	Sent func(Item)

	mu     sync.Mutex
	paused map[string]time.Time // reporter → until (a 429)
	stats  map[string]*Counters
}

// Counters are one reporter's, since start.
type Counters struct {
	Queued     atomic.Uint64 // reports added to the queue
	Duplicates atomic.Uint64 // reports not added: the same target within the dedup period
	Sent       atomic.Uint64
	Failed     atomic.Uint64 // given up
	Retried    atomic.Uint64 // failed, to be tried again
	Limited    atomic.Uint64 // held back by the per-destination rate or a 429
}

// NewQueue returns a queue sending through reps.
func NewQueue(st *store.Store, cfg Config, reps []Reporter, redact *Redactor, log *slog.Logger) *Queue {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if redact == nil {
		redact = NewRedactor(nil, nil)
	}
	q := &Queue{st: st, cfg: cfg, reps: map[string]Reporter{}, redact: redact, log: log, now: time.Now,
		wake: make(chan struct{}, 1), paused: map[string]time.Time{}, stats: map[string]*Counters{}, ignore: map[string]bool{}}
	for _, r := range reps {
		q.reps[r.Name()] = r
		q.names = append(q.names, r.Name())
		q.stats[r.Name()] = &Counters{}
	}
	for _, d := range append(slices.Clone(bigProviders), cfg.Ignore...) {
		q.ignore[strings.ToLower(d)] = true
	}
	for _, n := range redact.names {
		q.ignore[n] = true
	}
	return q
}

// Reporters returns the reporters' names, in order.
func (q *Queue) Reporters() []string { return q.names }

// Stats returns a reporter's counters (nil for an unknown one).
func (q *Queue) Stats(name string) *Counters { return q.stats[name] }

// Mode returns a reporter's mode.
func (q *Queue) Mode(name string) string {
	if m := q.cfg.Modes[name]; m != "" {
		return m
	}
	return ModeSend
}

// PausedUntil returns until when a reporter is paused by a 429 (zero:
// not paused).
func (q *Queue) PausedUntil(name string) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t := q.paused[name]; t.After(q.now()) {
		return t
	}
	return time.Time{}
}

// Wake makes Run look at the queue now (after an approval).
func (q *Queue) Wake() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// enqueue queues a report of target for every reporter taking kind.
func (q *Queue) enqueue(ctx context.Context, kind, target string, s Subject, dedup time.Duration) {
	data, err := json.Marshal(s)
	if err != nil {
		q.log.Error("abuse: cannot encode a report", "kind", kind, "err", err)
		return
	}
	now := q.now()
	for _, name := range q.names {
		if !q.reps[name].Takes(kind) {
			continue
		}
		state := store.ReportPending
		switch q.Mode(name) {
		case ModeReview:
			state = store.ReportReview
		case ModeDryRun:
			state = store.ReportDryRun
		}
		id, err := q.st.EnqueueReport(ctx, store.Report{Reporter: name, Kind: kind, Target: target, State: state,
			Subject: data, Created: now, Next: now}, dedup)
		switch {
		case err != nil:
			q.log.Warn("abuse: queueing a report failed", "reporter", name, "kind", kind, "target", target, "err", err)
		case id == 0:
			q.stats[name].Duplicates.Add(1)
		default:
			q.stats[name].Queued.Add(1)
			q.log.Info("abuse: report queued", "reporter", name, "report", id, "kind", kind, "target", target, "state", state)
		}
	}
	q.Wake()
}

// Decision queues reports of an attacking address: a ban or a trap of one
// address, decided here (not by hand, unless the scenarios list "manual";
// not by a peer), of a jail and scenario reported.
func (q *Queue) Decision(ctx context.Context, d event.Decision) {
	if d.Action != event.Ban && d.Action != event.Trap || !d.Target.IsSingleIP() || d.Origin != "local" && d.Origin != "" {
		return
	}
	if len(q.cfg.Jails) > 0 && !slices.Contains(q.cfg.Jails, d.Jail) {
		return
	}
	if len(q.cfg.Scenarios) > 0 && !slices.Contains(q.cfg.Scenarios, d.Scenario) ||
		len(q.cfg.Scenarios) == 0 && (d.Scenario == "manual" || d.Scenario == "adopted") {
		return
	}
	a := d.Target.Addr()
	if !reportable(a) {
		return
	}
	q.enqueue(ctx, KindAttack, a.String(), Subject{
		Addr: a.String(), Jail: d.Jail, Scenario: d.Scenario, Reason: q.redact.Text(d.Reason, 500, a), First: d.Start,
	}, q.cfg.Dedup)
}

// reportable reports whether an address is on the public internet:
// loopback, private, link-local and multicast ones are nobody's abuse
// desk's business.
func reportable(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback()
}

// Per message, at most this many links and domains are reported: a
// message with thousands of links is reported by its first ones.
const (
	maxURLsPerMessage    = 20
	maxDomainsPerMessage = 10
)

// Message queues the reports a trapped message calls for: its sender
// (spam), the message and its indicators (webhook), the links it
// advertised (not redirectors: their targets are reported instead) and
// their domains, unless ignored (big providers, this host's, configured).
func (q *Queue) Message(ctx context.Context, m store.Quarantined, r *evidence.Result, inds []store.Indicator, withRecipients bool) {
	client := m.Client.Unmap()
	// Phishing links often carry the recipient's address (…/login?user=…):
	// what leaves this host carries none of them (redactLink).
	victims := append(append([]string(nil), m.RcptTo...), r.Recipients...)
	urls := make([]evidence.URL, 0, min(len(r.URLs), 50))
	for _, u := range r.URLs[:min(len(r.URLs), 50)] {
		u.URL, u.Target = redactLink(u.URL, victims), redactLink(u.Target, victims)
		urls = append(urls, u)
	}
	msg := &Message{ID: m.ID, QueueID: m.QueueID, Received: m.Received, Client: client.String(), Port: m.Port,
		Helo: q.redact.Text(m.Helo, 255), MailFrom: q.redact.Text(m.MailFrom, 255), Recipients: len(m.RcptTo),
		Subject: q.redact.Text(r.Subject, 300), From: r.From, ReplyTo: r.ReplyTo,
		URLs: urls, Attachments: r.Attachments[:min(len(r.Attachments), 20)]}
	if reportable(client) {
		q.enqueue(ctx, KindSpam, client.String(), Subject{Addr: client.String(), First: m.Received, Message: msg}, q.cfg.Dedup)
	}
	// The message whole, for the operator's own webhook: with its
	// recipients (and the links as they are) only when asked.
	whole := Subject{Addr: client.String(), First: m.Received, Message: msg}
	if withRecipients {
		own := *msg
		own.URLs = r.URLs[:min(len(r.URLs), 50)]
		whole.Message, whole.Recipients = &own, r.Recipients
	}
	for _, ind := range inds {
		switch {
		case withRecipients:
		case ind.Kind == evidence.KindRecipient:
			continue
		case ind.Kind == evidence.KindURL:
			ind.Value = redactLink(ind.Value, victims)
		}
		whole.Indicators = append(whole.Indicators, ind)
	}
	// Each message once: its queue id and number (a queue id can repeat).
	q.enqueue(ctx, KindMessage, fmt.Sprintf("message %d %s", m.ID, m.QueueID), whole, q.cfg.Dedup)
	n := 0
	byDomain := map[string][]string{}
	for _, u := range r.URLs {
		if u.Redirect == "redirector" || q.ignored(u.Domain, u.Host) || n >= maxURLsPerMessage {
			continue
		}
		n++
		link := redactLink(u.URL, victims)
		q.enqueue(ctx, KindURL, link, Subject{URL: link, Domain: u.Domain, First: m.Received, Message: msg}, q.cfg.Dedup)
		if u.Domain != "" && u.Redirect == "" {
			byDomain[u.Domain] = append(byDomain[u.Domain], link)
		}
	}
	domains := 0
	for _, d := range r.Domains {
		if _, ok := byDomain[d.Name]; !ok || domains >= maxDomainsPerMessage {
			continue
		}
		domains++
		q.enqueue(ctx, KindDomain, d.Name, Subject{Domain: d.Name, URLs: byDomain[d.Name], First: m.Received, Message: msg}, q.cfg.Dedup)
	}
}

// redactLink replaces the recipients' addresses a link carries, as they
// are, percent-encoded or in base64, with "redacted@example.invalid" in
// the same form.
func redactLink(link string, victims []string) string {
	const placeholder = "redacted@example.invalid"
	for _, v := range victims {
		v = strings.ToLower(strings.Trim(strings.TrimSpace(v), "<>"))
		if !strings.Contains(v, "@") || len(v) < 3 {
			continue
		}
		for _, f := range []struct{ old, new string }{
			{v, placeholder},
			{strings.ReplaceAll(v, "@", "%40"), strings.ReplaceAll(placeholder, "@", "%40")},
		} {
			link = string(replaceFold([]byte(link), f.old, f.new))
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			link = strings.ReplaceAll(link, enc.EncodeToString([]byte(v)), enc.EncodeToString([]byte(placeholder)))
		}
	}
	return link
}

// ignored reports whether a link's domain or host is never reported.
func (q *Queue) ignored(domain, host string) bool {
	return q.ignore[domain] || q.ignore[host] || domain == "" && !addrHost(host)
}

func addrHost(h string) bool {
	a, err := netip.ParseAddr(h)
	return err == nil && reportable(a)
}

// Postmasters queues, for each domain whose postmaster is to be told, the
// addresses of theirs that trapped mail was sent to since since.
func (q *Queue) Postmasters(ctx context.Context, since time.Time) error {
	if len(q.cfg.PostmasterDomains) == 0 {
		return nil
	}
	inds, err := q.st.Indicators(ctx, store.IndicatorFilter{Kinds: []string{evidence.KindRecipient}, Since: since})
	if err != nil {
		return err
	}
	all := slices.Contains(q.cfg.PostmasterDomains, "*")
	byDomain := map[string][]string{}
	for _, ind := range inds {
		at := strings.LastIndexByte(ind.Value, '@')
		if at < 0 {
			continue
		}
		d := ind.Value[at+1:]
		if all || slices.Contains(q.cfg.PostmasterDomains, d) {
			byDomain[d] = append(byDomain[d], ind.Value)
		}
	}
	dedup := q.cfg.PostmasterInterval - time.Minute
	for d, rcpts := range byDomain {
		slices.Sort(rcpts)
		q.enqueue(ctx, KindRecipients, d, Subject{Domain: d, Recipients: rcpts, First: since, Last: q.now()}, dedup)
	}
	return nil
}

// Run sends reports as they fall due until ctx ends, and queues the
// postmasters' summaries every interval. Reports a crash left being sent
// are sent again: a receiver may see one twice (the webhook's delivery
// id tells it), never none.
func (q *Queue) Run(ctx context.Context) {
	if n, err := q.st.ResumeReports(ctx, q.now()); err != nil {
		q.log.Warn("abuse: resuming reports failed", "err", err)
	} else if n > 0 {
		q.log.Warn("abuse: reports interrupted while being sent will be sent again", "count", n)
	}
	lastSummary := q.now()
	for {
		q.Process(ctx)
		if iv := q.cfg.PostmasterInterval; len(q.cfg.PostmasterDomains) > 0 && iv > 0 && q.now().Sub(lastSummary) >= iv {
			if err := q.Postmasters(ctx, lastSummary); err != nil {
				q.log.Warn("abuse: postmaster summaries failed", "err", err)
			}
			lastSummary = q.now()
			continue
		}
		wait := time.Minute
		if next, ok, err := q.st.NextReportDue(ctx); err == nil && ok {
			wait = min(wait, max(next.Sub(q.now()), 10*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-q.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Process sends the reports due now and returns how many it handled.
func (q *Queue) Process(ctx context.Context) int {
	n := 0
	for ctx.Err() == nil {
		due, err := q.st.DueReports(ctx, q.now(), 32)
		if err != nil {
			q.log.Warn("abuse: reading the queue failed", "err", err)
			return n
		}
		for _, r := range due {
			q.handle(ctx, r)
			n++
		}
		if len(due) < 32 {
			return n
		}
	}
	return n
}

func (q *Queue) handle(ctx context.Context, r store.Report) {
	now := q.now()
	rep := q.reps[r.Reporter]
	if rep == nil {
		r.State, r.LastError = store.ReportFailed, "reporter not configured any more"
		q.save(ctx, r)
		return
	}
	if until := q.PausedUntil(r.Reporter); !until.IsZero() {
		r.Next = until
		q.save(ctx, r)
		return
	}
	it, err := itemOf(r)
	if err != nil {
		q.fail(ctx, r, Final(err))
		return
	}
	if r.Destination == "" {
		dest, err := rep.Destination(ctx, it)
		if err != nil {
			q.fail(ctx, r, err)
			return
		}
		r.Destination, it.Destination = dest, dest
	}
	if limit := q.cfg.PerHour[r.Reporter]; limit > 0 {
		n, first, err := q.st.SentReports(ctx, r.Reporter, r.Destination, now.Add(-time.Hour))
		if err == nil && n >= limit {
			r.Next = first.Add(time.Hour)
			q.stats[r.Reporter].Limited.Add(1)
			q.save(ctx, r)
			return
		}
	}
	r.State = store.ReportSending
	if !q.save(ctx, r) {
		return
	}
	receipt, err := rep.Send(ctx, it, r.Destination)
	if err != nil {
		q.fail(ctx, r, err)
		return
	}
	r.State, r.Sent, r.Receipt, r.LastError = store.ReportSent, q.now(), receipt, ""
	r.Attempts++
	q.save(ctx, r)
	q.stats[r.Reporter].Sent.Add(1)
	q.log.Info("abuse: report sent", "reporter", r.Reporter, "report", r.ID, "kind", r.Kind, "target", r.Target,
		"destination", r.Destination, "receipt", receipt)
	if q.Sent != nil {
		it.Report = r
		q.Sent(it)
	}
}

// fail records a failed attempt: given up, paused (a 429), or to try
// again after a backoff doubling from a minute to six hours.
func (q *Queue) fail(ctx context.Context, r store.Report, err error) {
	now := q.now()
	r.LastError = truncate(err.Error(), 500)
	st := q.stats[r.Reporter]
	if wait, limited := httpout.RateLimited(err); limited && !IsFinal(err) {
		if wait <= 0 {
			wait = time.Minute
		}
		q.mu.Lock()
		q.paused[r.Reporter] = now.Add(wait)
		q.mu.Unlock()
		r.State, r.Next = store.ReportPending, now.Add(wait)
		st.Limited.Add(1)
		q.log.Warn("abuse: service asks to slow down; reporter paused", "reporter", r.Reporter, "report", r.ID, "wait_s", int(wait.Seconds()))
		q.save(ctx, r)
		return
	}
	r.Attempts++
	if final(err) || r.Attempts >= q.cfg.MaxAttempts {
		r.State = store.ReportFailed
		st.Failed.Add(1)
		q.log.Warn("abuse: report given up", "reporter", r.Reporter, "report", r.ID, "target", r.Target, "attempts", r.Attempts, "err", r.LastError)
	} else {
		r.State, r.Next = store.ReportPending, now.Add(backoff(r.Attempts))
		st.Retried.Add(1)
		q.log.Info("abuse: report failed; trying again", "reporter", r.Reporter, "report", r.ID, "attempts", r.Attempts,
			"next", r.Next.Format(time.RFC3339), "err", r.LastError)
	}
	q.save(ctx, r)
}

// final reports whether trying again cannot help: Final, a 4xx answer
// (not 408, 425, 429), an SMTP 5xx.
func final(err error) bool {
	if IsFinal(err) {
		return true
	}
	var se *httpout.StatusError
	if errors.As(err, &se) {
		return !httpout.Temporary(err)
	}
	var me *smtp.SMTPError
	if errors.As(err, &me) {
		return !me.Temporary()
	}
	return false
}

func backoff(attempts int) time.Duration {
	d := time.Minute << min(attempts-1, 20)
	return min(d, 6*time.Hour)
}

func (q *Queue) save(ctx context.Context, r store.Report) bool {
	if err := q.st.UpdateReport(context.WithoutCancel(ctx), r); err != nil {
		q.log.Warn("abuse: saving a report's state failed", "report", r.ID, "err", err)
		return false
	}
	return true
}

// Review approves or rejects reports held for review (all of them when
// ids is empty) and returns the IDs changed.
func (q *Queue) Review(ctx context.Context, ids []int64, approve bool) ([]int64, error) {
	changed, err := q.st.ReviewReports(ctx, ids, approve, q.now())
	if err == nil && approve && len(changed) > 0 {
		q.Wake()
	}
	return changed, err
}

// Render returns what report id would send.
func (q *Queue) Render(ctx context.Context, id int64) (store.Report, string, error) {
	r, err := q.st.Report(ctx, id)
	if err != nil {
		return r, "", err
	}
	rep := q.reps[r.Reporter]
	if rep == nil {
		return r, "", fmt.Errorf("report %d: reporter %q is not configured", id, r.Reporter)
	}
	it, err := itemOf(r)
	if err != nil {
		return r, "", err
	}
	text, err := rep.Render(it)
	return r, text, err
}

// bigProviders are domains a spammer's mail links to without being
// theirs (logos, fonts, share buttons, an unsubscribe at a mail service):
// never reported.
var bigProviders = []string{
	"google.com", "googleapis.com", "gstatic.com", "googleusercontent.com", "gmail.com", "youtube.com", "goo.gl",
	"microsoft.com", "outlook.com", "office.com", "live.com", "hotmail.com", "office365.com", "sharepoint.com", "windows.net", "azureedge.net",
	"apple.com", "icloud.com", "amazon.com", "amazonaws.com", "cloudfront.net", "facebook.com", "fbcdn.net", "instagram.com",
	"whatsapp.com", "twitter.com", "x.com", "t.co", "linkedin.com", "yahoo.com", "github.com", "githubusercontent.com",
	"wikipedia.org", "w3.org", "schema.org", "cloudflare.com", "akamaihd.net", "jsdelivr.net", "mozilla.org", "paypal.com",
}
