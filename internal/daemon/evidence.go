package daemon

// The daemon's side of evidence (issue 14, docs/reporting.md): the trap's
// quarantined messages are read as they arrive, what they carried is
// saved with them and counted across messages, and handed on (to the
// reporters and actions, see report.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/evidence"
	"github.com/rampart-dev/rampart/internal/store"
)

// evidencer reads quarantined messages: nil when [evidence] is off. Its
// methods are nil-safe.
type evidencer struct {
	st    *store.Store
	opt   evidence.Options
	keep  time.Duration // indicators' retention
	every time.Duration // how often the quarantine is checked for new mail
	log   *slog.Logger
	// found is told of each message read, with what it carried (the
	// reporters); nil: nobody.
	found func(ctx context.Context, m store.Quarantined, r *evidence.Result, inds []store.Indicator)

	messages, indicators, problems, failed atomic.Uint64
}

func newEvidencer(cfg *config.Config, st *store.Store, every time.Duration, log *slog.Logger) *evidencer {
	if !cfg.Evidence.Enabled {
		return nil
	}
	if every <= 0 {
		every = 5 * time.Second
	}
	return &evidencer{st: st, opt: evidence.Options{Shorteners: cfg.Evidence.Shorteners},
		keep: cfg.Evidence.Retention.D(), every: every, log: log}
}

// run reads new messages every e.every until ctx ends.
func (e *evidencer) run(ctx context.Context) {
	if e == nil {
		return
	}
	t := time.NewTicker(e.every)
	defer t.Stop()
	for {
		e.readNew(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readNew reads every message not read yet, a batch at a time.
func (e *evidencer) readNew(ctx context.Context) {
	for ctx.Err() == nil {
		ms, err := e.st.Unextracted(ctx, 16)
		if err != nil {
			e.log.Warn("evidence: listing new quarantined mail failed", "err", err)
			return
		}
		if len(ms) == 0 {
			return
		}
		for _, m := range ms {
			if err := e.read(ctx, m); err != nil {
				e.failed.Add(1)
				e.log.Warn("evidence: saving what a message carried failed; trying again later", "message", m.ID, "err", err)
				return
			}
		}
	}
}

// read extracts one message and saves what it carried. A message the
// extractor cannot read (it never panics on the fuzzed inputs; this is
// the last line) is saved with the problem, so it is not read again.
func (e *evidencer) read(ctx context.Context, m store.Quarantined) error {
	env := evidence.Envelope{Client: m.Client, Helo: m.Helo, MailFrom: m.MailFrom, RcptTo: m.RcptTo, Received: m.Received}
	r := extractSafely(m.Raw, env, e.opt)
	if m.Truncated {
		r.Problems = append(r.Problems, fmt.Sprintf("the quarantine kept only the first %d of %d bytes", len(m.Raw), m.Size))
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	inds := r.Indicators(env)
	sinds := make([]store.Indicator, len(inds))
	for i, ind := range inds {
		sinds[i] = store.Indicator(ind)
	}
	fresh, err := e.st.SaveExtraction(ctx, m.ID, m.Received, time.Now(), data, sinds)
	if errors.Is(err, store.ErrNotFound) {
		return nil // pruned meanwhile
	}
	if err != nil || !fresh {
		return err
	}
	e.messages.Add(1)
	e.indicators.Add(uint64(len(inds)))
	e.problems.Add(uint64(len(r.Problems)))
	e.log.Info("evidence: message read", "message", m.ID, "queue_id", m.QueueID, "addr", m.Client.String(),
		"urls", len(r.URLs), "recipients", len(r.Recipients), "attachments", len(r.Attachments), "problems", len(r.Problems))
	if e.found != nil {
		e.found(ctx, m, r, sinds)
	}
	return nil
}

func extractSafely(raw []byte, env evidence.Envelope, opt evidence.Options) (r *evidence.Result) {
	defer func() {
		if p := recover(); p != nil {
			r = &evidence.Result{Problems: []string{fmt.Sprintf("the extractor failed: %v", p)}}
		}
	}()
	return evidence.Extract(raw, env, opt)
}

// prune forgets the indicators past their retention.
func (e *evidencer) prune(ctx context.Context, now time.Time) {
	if e == nil {
		return
	}
	if n, err := e.st.PruneIndicators(ctx, now.Add(-e.keep)); err != nil {
		e.log.Warn("evidence: pruning indicators failed", "err", err)
	} else if n > 0 {
		e.log.Info("evidence: indicators past their retention forgotten", "count", n)
	}
}

// EvidenceStatus is evidence's part of status.
type EvidenceStatus struct {
	Messages   uint64 `json:"messages"`   // quarantined messages read since start
	Indicators uint64 `json:"indicators"` // indicators they carried
	Problems   uint64 `json:"problems"`   // parts or values that could not be read
	Failed     uint64 `json:"failed"`     // saves that failed (retried)
}

func (e *evidencer) status() *EvidenceStatus {
	if e == nil {
		return nil
	}
	return &EvidenceStatus{Messages: e.messages.Load(), Indicators: e.indicators.Load(), Problems: e.problems.Load(), Failed: e.failed.Load()}
}

// Control socket: indicators and a message's evidence, for `rampart
// evidence`. They read the store, so they answer with the trap off too.

func (c *control) indicators(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.IndicatorFilter{Limit: 100}
	if k := q.Get("kind"); k != "" {
		f.Kinds = strings.Split(k, ",")
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil {
		f.Limit = n
	}
	if id, err := strconv.ParseInt(q.Get("message"), 10, 64); err == nil {
		f.Message = id
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "since %q is not an RFC 3339 time", s)
			return
		}
		f.Since = t
	}
	inds, err := c.d.store.Indicators(r.Context(), f)
	writeList(w, inds, err)
}

func (c *control) messageEvidence(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "message")
	if !ok {
		return
	}
	data, _, err := c.d.store.Extraction(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "message %d was not read (not quarantined, pruned, or [evidence] is off)", id)
	case err != nil:
		writeError(w, http.StatusInternalServerError, "%v", err)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(data)
	}
}

// Indicators lists indicators: kinds ("" all), up to limit (0: the
// server's default of 100), those carried by message (0: any).
func (c *Client) Indicators(ctx context.Context, kinds string, limit int, message int64) ([]store.IndicatorCount, error) {
	var out []store.IndicatorCount
	q := url.Values{"kind": {kinds}, "limit": {strconv.Itoa(limit)}, "message": {strconv.FormatInt(message, 10)}}
	err := c.call(ctx, http.MethodGet, "/v1/evidence/indicators?"+q.Encode(), nil, &out)
	return out, err
}

// MessageEvidence returns what quarantined message id carried.
func (c *Client) MessageEvidence(ctx context.Context, id int64) (evidence.Result, error) {
	var r evidence.Result
	err := c.call(ctx, http.MethodGet, "/v1/evidence/messages/"+strconv.FormatInt(id, 10), nil, &r)
	return r, err
}

// evidenceMetrics are evidence's, reporting's and actions' families in
// metricTable; there is no series while the part is off.
func evidenceMetrics() []metric {
	ev := func(f func(*EvidenceStatus) uint64) func(*Status) (float64, bool) {
		return func(s *Status) (float64, bool) {
			if s.Evidence == nil {
				return 0, false
			}
			return float64(f(s.Evidence)), true
		}
	}
	return []metric{
		{name: "rampart_evidence_messages_total", help: "Quarantined messages read for what they carried.", kind: counter, value: ev(func(e *EvidenceStatus) uint64 { return e.Messages })},
		{name: "rampart_evidence_indicators_total", help: "Indicators (links, domains, addresses, attachments) the messages read carried.", kind: counter, value: ev(func(e *EvidenceStatus) uint64 { return e.Indicators })},
		{name: "rampart_evidence_problems_total", help: "Parts or values of quarantined messages that could not be read.", kind: counter, value: ev(func(e *EvidenceStatus) uint64 { return e.Problems })},
		{name: "rampart_evidence_failed_total", help: "Saves of what a message carried that failed (tried again).", kind: counter, value: ev(func(e *EvidenceStatus) uint64 { return e.Failed })},
		{name: "rampart_report_queued_total", help: "Reports queued, per reporter.", kind: counter, label: "reporter", values: rep(func(r ReporterStatus) float64 { return float64(r.Queued) })},
		{name: "rampart_report_duplicates_total", help: "Reports not queued: the same target was reported within the dedup period.", kind: counter, label: "reporter", values: rep(func(r ReporterStatus) float64 { return float64(r.Duplicates) })},
		{name: "rampart_report_sent_total", help: "Reports sent, per reporter.", kind: counter, label: "reporter", values: rep(func(r ReporterStatus) float64 { return float64(r.Sent) })},
		{name: "rampart_report_failed_total", help: "Reports given up, per reporter.", kind: counter, label: "reporter", values: rep(func(r ReporterStatus) float64 { return float64(r.Failed) })},
		{name: "rampart_report_retried_total", help: "Report attempts that failed and will be tried again.", kind: counter, label: "reporter", values: rep(func(r ReporterStatus) float64 { return float64(r.Retried) })},
		{name: "rampart_report_limited_total", help: "Reports held back by the per-destination rate or a service's 429.", kind: counter, label: "reporter", values: rep(func(r ReporterStatus) float64 { return float64(r.Limited) })},
		{name: "rampart_report_review", help: "Reports held for review now.", kind: gauge, label: "reporter", values: rep(func(r ReporterStatus) float64 { return float64(r.Review) })},
		{name: "rampart_report_pending", help: "Reports waiting to be sent now.", kind: gauge, label: "reporter", values: rep(func(r ReporterStatus) float64 { return float64(r.Pending) })},
		{name: "rampart_report_dropped_total", help: "Decisions not reported because the reporting intake was full.", kind: counter, value: func(s *Status) (float64, bool) {
			if s.Reporting == nil {
				return 0, false
			}
			return float64(s.Reporting.Dropped), true
		}},
	}
}

// rep reads one value per reporter; no series while reporting is off.
func rep(f func(ReporterStatus) float64) func(*Status) map[string]float64 {
	return func(s *Status) map[string]float64 {
		if s.Reporting == nil {
			return nil
		}
		m := map[string]float64{}
		for _, r := range s.Reporting.Reporters {
			m[r.Name] = f(r)
		}
		return m
	}
}
