package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/rampart-dev/rampart/internal/store"
)

// The report queue page: the abuse reports held for review, with approve
// and reject buttons, and the latest others. The queue is read from the
// store; approving and rejecting go through the daemon's queue
// (Options.Reports), which wakes its sender.

// ReportQueue approves or rejects the abuse reports held for review, and
// says what one sends: the daemon's reporting queue.
type ReportQueue interface {
	// Review approves (to send) or rejects the reports among ids held for
	// review, and returns the IDs it changed; a report not held for review
	// is left as it is.
	Review(ctx context.Context, ids []int64, approve bool) ([]int64, error)
	// Render returns what report id sends, secrets left out.
	Render(ctx context.Context, id int64) (string, error)
}

// QueuedReport is a report as the dashboard shows it, with its subject.
type QueuedReport struct {
	store.Report
	Subject json.RawMessage `json:"subject"`
}

// Reports is the report queue page's data.
type Reports struct {
	// Reporting says the daemon's reporters are on: approve and reject
	// work. Off, the queue is shown as it is.
	Reporting   bool           `json:"reporting"`
	Review      []QueuedReport `json:"review"`       // held for review, newest first (at most ListedReports)
	ReviewTotal int            `json:"review_total"` // all those held
	Recent      []QueuedReport `json:"recent"`       // the latest in other states
	Error       string         `json:"error,omitempty"`
}

// ListedReports is how many reports of each table the page lists.
const ListedReports = 200

// otherStates are the states of the reports listed as recent.
var otherStates = []string{store.ReportPending, store.ReportSending, store.ReportSent, store.ReportFailed, store.ReportRejected, store.ReportDryRun}

func queued(rs []store.Report) []QueuedReport {
	out := make([]QueuedReport, 0, len(rs))
	for _, r := range rs {
		subject := json.RawMessage(r.Subject)
		if !json.Valid(subject) {
			// Never served as JSON it is not: as a string.
			subject, _ = json.Marshal(string(r.Subject))
		}
		out = append(out, QueuedReport{Report: r, Subject: subject})
	}
	return out
}

func (s *Server) reports(r *http.Request) (any, error) {
	ctx := r.Context()
	review, err := s.opt.Store.Reports(ctx, store.ReportFilter{States: []string{store.ReportReview}, Limit: ListedReports})
	if err != nil {
		return nil, err
	}
	recent, err := s.opt.Store.Reports(ctx, store.ReportFilter{States: otherStates, Limit: 50})
	if err != nil {
		return nil, err
	}
	counts, err := s.opt.Store.ReportCounts(ctx)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, c := range counts {
		total += c[store.ReportReview]
	}
	return Reports{Reporting: s.opt.Reports != nil, Review: queued(review), ReviewTotal: total, Recent: queued(recent),
		Error: r.URL.Query().Get("error")}, nil
}

// ReportPage is one report's page: the report, its subject and what it
// sends.
type ReportPage struct {
	QueuedReport
	Reporting bool   `json:"reporting"`
	Sends     string `json:"sends,omitempty"` // what it sends, secrets left out; "" with reporting off
}

func (s *Server) report(r *http.Request) (any, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, errBadRequest{"a report id is a number"}
	}
	rep, err := s.opt.Store.Report(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errNotFound{fmt.Sprintf("report %d", id)}
	case err != nil:
		return nil, err
	}
	p := ReportPage{QueuedReport: queued([]store.Report{rep})[0], Reporting: s.opt.Reports != nil}
	if s.opt.Reports != nil {
		if p.Sends, err = s.opt.Reports.Render(r.Context(), id); err != nil {
			p.Sends = "(" + err.Error() + ")"
		}
	}
	return p, nil
}

// reviewForm handles a report's approve and reject buttons, then sends
// the browser back to the queue, which says what happened.
func (s *Server) reviewForm(w http.ResponseWriter, r *http.Request) {
	back := func(key, msg string) { backTo(w, r, "/reports", key, msg) }
	id, err := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
	if err != nil || id <= 0 {
		back("error", "a report id is a number")
		return
	}
	var approve bool
	switch r.PostFormValue("action") {
	case "approve":
		approve = true
	case "reject":
	default:
		back("error", "approve or reject?")
		return
	}
	msg, err := s.review(r, []int64{id}, approve)
	if err != nil {
		back("error", err.Error())
		return
	}
	back("done", msg)
}

// ReviewRequest is POST /api/reports/review's body: the reports to approve
// or reject, or all held for review.
type ReviewRequest struct {
	IDs     []int64 `json:"ids"`
	All     bool    `json:"all"`
	Approve bool    `json:"approve"`
}

func (s *Server) reviewAPI(w http.ResponseWriter, r *http.Request) {
	var req ReviewRequest
	if !jsonBody(w, r, &req) {
		return
	}
	if len(req.IDs) == 0 && !req.All {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "name the reports (ids), or all"})
		return
	}
	if req.All {
		req.IDs = nil
	}
	changed, err := s.reviewIDs(r, req.IDs, req.Approve)
	switch {
	case errors.Is(err, errReportingOff):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	if changed == nil {
		changed = []int64{}
	}
	writeJSON(w, http.StatusOK, map[string][]int64{"changed": changed})
}

var errReportingOff = errors.New("reporting is off: no reporter is enabled in [reporting]")

// review approves or rejects ids and says what it did.
func (s *Server) review(r *http.Request, ids []int64, approve bool) (string, error) {
	changed, err := s.reviewIDs(r, ids, approve)
	if err != nil {
		return "", err
	}
	if len(changed) == 0 {
		return fmt.Sprintf("report %d was not held for review: nothing %s", ids[0], reviewed(approve)), nil
	}
	return fmt.Sprintf("%s report %d", reviewed(approve), changed[0]), nil
}

// reviewIDs approves or rejects ids (nil: all held for review) through
// the daemon's queue, logs what changed and returns it.
func (s *Server) reviewIDs(r *http.Request, ids []int64, approve bool) ([]int64, error) {
	if s.opt.Reports == nil {
		return nil, errReportingOff
	}
	changed, err := s.opt.Reports.Review(r.Context(), ids, approve)
	if err != nil {
		s.log.Error("web: review failed", "err", err)
		return nil, err
	}
	if len(changed) > 0 {
		s.log.Info("web: reports "+reviewed(approve), "count", len(changed), "remote", r.RemoteAddr)
	}
	return changed, nil
}

func reviewed(approve bool) string {
	if approve {
		return "approved"
	}
	return "rejected"
}
