package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net/http"
	"net/mail"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/evidence"
	"github.com/rampart-dev/rampart/internal/insight"
	"github.com/rampart-dev/rampart/internal/store"
)

// Every page is built from one data value, which the page's template
// renders and its /api/ twin serves as JSON: the API is, by construction,
// every view's data.

// pages holds the parsed templates, one set per page.
type pages struct {
	sets map[string]*template.Template
}

var funcs = template.FuncMap{
	"periods": func() []string { return []string{"24h", "7d", "30d", "365d"} },
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"pct": func(x float64) string { return strconv.FormatFloat(100*x, 'f', 1, 64) + "%" },
	"indent": func(raw json.RawMessage) string {
		var b bytes.Buffer
		if json.Indent(&b, raw, "", "  ") != nil {
			return string(raw)
		}
		return b.String()
	},
	"name": func(s insight.Section, r insight.Row) string { return s.Name(r) },
	"width": func(x float64) string {
		// A bar's width as a CSS class step (no inline styles under the CSP).
		return "w" + strconv.Itoa(int(x*20+0.5)*5)
	},
	"bytes": func(n int64) string {
		switch {
		case n >= 1<<20:
			return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
		case n >= 1<<10:
			return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
		}
		return strconv.FormatInt(n, 10) + " B"
	},
}

// pageNames lists the pages; each has templates/NAME.html beside layout.html.
var pageNames = []string{"overview", "attackers", "decisions", "quarantine", "message", "reports", "report", "ban", "login"}

func parsePages() (*pages, error) {
	p := &pages{sets: map[string]*template.Template{}}
	for _, n := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html")
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", n, err)
		}
		p.sets[n] = t
	}
	return p, nil
}

// view is what the layout gets: the page's data and what every page shows.
type view struct {
	Page       string
	Title      string
	CSRF       string
	Quarantine bool // the store has the trap's quarantine
	Flash      string
	API        string // the page's data as JSON
	Data       any
}

// errNotFound is a data builder's "no such thing": 404.
type errNotFound struct{ what string }

func (e errNotFound) Error() string { return e.what + " not found" }

// errBadRequest is a data builder's "the request is wrong": 400.
type errBadRequest struct{ msg string }

func (e errBadRequest) Error() string { return e.msg }

func status(err error) int {
	var nf errNotFound
	var br errBadRequest
	switch {
	case errors.As(err, &nf):
		return http.StatusNotFound
	case errors.As(err, &br):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// page serves a page rendered from build's data.
func (s *Server) page(name string, build func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data, err := build(r)
		if err != nil {
			code := status(err)
			if code == http.StatusInternalServerError {
				s.log.Error("web: page failed", "page", name, "err", err)
			}
			http.Error(w, err.Error(), code)
			return
		}
		s.render(w, r, name, data)
	}
}

// api serves build's data as JSON.
func (s *Server) api(build func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data, err := build(r)
		if err != nil {
			code := status(err)
			if code == http.StatusInternalServerError {
				s.log.Error("web: api failed", "path", r.URL.Path, "err", err)
			}
			writeJSON(w, code, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, data)
	}
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	api := "/api" + r.URL.Path
	switch name {
	case "overview", "login":
		api = "/api/overview"
	}
	v := view{Page: name, Title: titles[name], CSRF: s.csrf(), Quarantine: s.tables["quarantine"], Flash: r.URL.Query().Get("done"), API: api, Data: data}
	var buf bytes.Buffer
	if err := s.pages.sets[name].Execute(&buf, v); err != nil {
		s.log.Error("web: render failed", "page", name, "err", err)
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

var titles = map[string]string{
	"overview": "Overview", "attackers": "Attackers", "decisions": "Decisions", "quarantine": "Quarantine",
	"message": "Quarantined message", "reports": "Abuse reports", "report": "Abuse report", "ban": "Ban and unban", "login": "Log in",
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// sinceParam reads ?since= (an age such as 24h or 7d; default def) as a
// time before now.
func (s *Server) sinceParam(r *http.Request, def time.Duration) (time.Time, string, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		return s.now().Add(-def), config.FormatDuration(def), nil
	}
	d, err := parseAge(v)
	if err != nil {
		return time.Time{}, "", errBadRequest{fmt.Sprintf("since=%q: want an age such as 24h or 7d, up to 400d", v)}
	}
	return s.now().Add(-d), config.FormatDuration(d), nil
}

// parseAge reads an age as the configuration and `rampart report --since`
// do ("90m", "24h", "7d", "1d12h"), at most 400 days.
func parseAge(v string) (time.Duration, error) {
	d, err := config.ParseDuration(v)
	if err != nil || d <= 0 || d > 400*24*time.Hour {
		return 0, errors.New("bad age")
	}
	return d, nil
}

// Overview is the overview page's data.
type Overview struct {
	Snapshot
	Since  string          `json:"since"`
	Report *insight.Report `json:"report"`
}

func (s *Server) overview(r *http.Request) (any, error) {
	since, text, err := s.sinceParam(r, 48*time.Hour)
	if err != nil {
		return nil, err
	}
	rep, err := insight.Build(r.Context(), []insight.Source{{Name: "local", Store: s.opt.Store}}, insight.Options{Since: since.Truncate(time.Hour), Top: 5}, s.opt.Locator)
	if err != nil {
		return nil, err
	}
	return Overview{Snapshot: s.opt.Backend.Snapshot(), Since: text, Report: rep}, nil
}

// Attackers is the attackers page's data.
type Attackers struct {
	Since    string            `json:"since"`
	Report   *insight.Report   `json:"report"`
	Sections []insight.Section `json:"-"`
}

func (s *Server) attackers(r *http.Request) (any, error) {
	since, text, err := s.sinceParam(r, 7*24*time.Hour)
	if err != nil {
		return nil, err
	}
	rep, err := insight.Build(r.Context(), []insight.Source{{Name: "local", Store: s.opt.Store}},
		insight.Options{Since: since.Truncate(time.Hour), Jail: r.URL.Query().Get("jail"), Top: 20}, s.opt.Locator)
	if err != nil {
		return nil, err
	}
	var secs []insight.Section
	for _, sec := range rep.Sections() {
		switch sec.ID {
		case "countries", "asns", "prefixes", "users", "scenarios":
			secs = append(secs, sec)
		}
	}
	return Attackers{Since: text, Report: rep, Sections: secs}, nil
}

// Decision is one entry of the decisions feed: a decision as it was
// taken (Action ban, trap, …), or the lifting of one (Revoked).
type Decision struct {
	ID      int64  `json:"id"`
	Revoked bool   `json:"revocation"`
	Action  string `json:"action"`
	Active
}

// Decisions is the decisions page's data: the newest first.
type Decisions struct {
	Decisions []Decision `json:"decisions"`
}

func (s *Server) decisions(r *http.Request) (any, error) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, errBadRequest{"limit: want 1 to 1000"}
		}
		limit = n
	}
	var after int64
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, errBadRequest{"after: want a decision id"}
		}
		after = n
	}
	hist, err := s.opt.Store.History(r.Context(), store.HistoryFilter{Limit: limit, After: after})
	if err != nil {
		return nil, err
	}
	out := Decisions{Decisions: []Decision{}}
	for _, h := range hist {
		d := h.Decision
		out.Decisions = append(out.Decisions, Decision{ID: h.ID, Revoked: h.Revocation, Action: d.Action.String(), Active: Active{
			Target: targetText(d.Target), Jail: d.Jail, Scenario: d.Scenario, Reason: d.Reason,
			Start: d.Start, End: d.End(), Country: h.Place.Country, ASN: h.Place.ASN, Org: h.Place.Org}})
	}
	return out, nil
}

// targetText writes a decision's target as the daemon's status does: an
// address alone, a wider prefix with its length.
func targetText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// Message is a quarantined message as the dashboard shows it: its
// envelope and headers as text, never its body.
type Message struct {
	ID        int64     `json:"id"`
	QueueID   string    `json:"queue_id"`
	Received  time.Time `json:"received"`
	Client    string    `json:"client"`
	Country   string    `json:"country,omitempty"`
	ASN       uint32    `json:"asn,omitempty"`
	Org       string    `json:"as_org,omitempty"`
	Port      int       `json:"port"`
	Helo      string    `json:"helo"`
	Account   string    `json:"account"`
	TLS       bool      `json:"tls"`
	MailFrom  string    `json:"mail_from"`
	RcptTo    []string  `json:"rcpt_to"`
	Size      int64     `json:"size"`
	Truncated bool      `json:"truncated"`
	Subject   string    `json:"subject"`
	Headers   []Header  `json:"headers,omitempty"`
	// What the message carried, once read for evidence ([evidence]): its
	// indicators, each with how many quarantined messages carried it, and
	// the extractor's reading (links with where they were found,
	// attachments, what could not be read). Absent before it is read.
	Indicators []store.IndicatorCount `json:"indicators,omitempty"`
	Evidence   *evidence.Result       `json:"evidence,omitempty"`
	Extracted  time.Time              `json:"extracted,omitzero"`
}

// Header is one header field, decoded for reading.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Quarantine is the quarantine page's data: the newest first, and the
// domains and links carried by the most messages.
type Quarantine struct {
	Messages []Message              `json:"messages"`
	Top      []store.IndicatorCount `json:"top_indicators"`
}

func (s *Server) quarantine(r *http.Request) (any, error) {
	if !s.tables["quarantine"] {
		return nil, errNotFound{"the quarantine"}
	}
	list, err := s.opt.Store.QuarantineList(r.Context(), 200)
	if err != nil {
		return nil, err
	}
	out := Quarantine{Messages: []Message{}, Top: []store.IndicatorCount{}}
	if s.tables["indicators"] {
		top, err := s.opt.Store.Indicators(r.Context(), store.IndicatorFilter{Kinds: []string{evidence.KindDomain, evidence.KindURL}, Limit: 10})
		if err != nil {
			return nil, err
		}
		if top != nil {
			out.Top = top
		}
	}
	ids := make([]int64, len(list))
	for i, q := range list {
		ids[i] = q.ID
	}
	heads, err := s.opt.Store.QuarantineHeads(r.Context(), ids, 16<<10)
	if err != nil {
		return nil, err
	}
	for _, q := range list {
		m := s.messageOf(q)
		if h, err := readHeader(heads[q.ID]); err == nil {
			m.Subject = subjectOf(h)
		}
		out.Messages = append(out.Messages, m)
	}
	return out, nil
}

func (s *Server) message(r *http.Request) (any, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, errBadRequest{"a message id is a number"}
	}
	q, err := s.opt.Store.QuarantineGet(r.Context(), id)
	if err != nil {
		return nil, errNotFound{fmt.Sprintf("message %d", id)}
	}
	m := s.messageOf(q)
	if h, err := readHeader(q.Raw); err != nil {
		m.Headers = []Header{{Name: "(unreadable header)", Value: err.Error()}}
	} else {
		m.Headers, m.Subject = headersOf(h), subjectOf(h)
	}
	if err := s.carried(r.Context(), &m); err != nil {
		return nil, err
	}
	return m, nil
}

// carried adds what message m carried, when it was read for evidence.
func (s *Server) carried(ctx context.Context, m *Message) error {
	if !s.tables["extracted"] {
		return nil
	}
	res, at, err := s.opt.Store.Extraction(ctx, m.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil // not read yet
	case err != nil:
		return err
	}
	var ev evidence.Result
	if err := json.Unmarshal(res, &ev); err != nil {
		ev = evidence.Result{Problems: []string{"the saved reading is unreadable: " + err.Error()}}
	}
	inds, err := s.opt.Store.Indicators(ctx, store.IndicatorFilter{Message: m.ID})
	if err != nil {
		return err
	}
	m.Evidence, m.Extracted, m.Indicators = &ev, at, inds
	if m.Indicators == nil {
		m.Indicators = []store.IndicatorCount{}
	}
	return nil
}

func (s *Server) messageOf(q store.Quarantined) Message {
	m := Message{ID: q.ID, QueueID: q.QueueID, Received: q.Received, Client: q.Client.String(), Port: q.Port, Helo: q.Helo,
		Account: q.Account, TLS: q.TLS, MailFrom: q.MailFrom, RcptTo: q.RcptTo, Size: q.Size, Truncated: q.Truncated}
	if m.RcptTo == nil {
		m.RcptTo = []string{}
	}
	pl := insight.Placed(q.Place, q.Client, s.opt.Locator)
	m.Country, m.ASN, m.Org = pl.Country, pl.ASN, pl.Org
	return m
}

// readHeader parses a message's header, within its first 256 KiB.
func readHeader(raw []byte) (mail.Header, error) {
	msg, err := mail.ReadMessage(io.LimitReader(bytes.NewReader(raw), 256<<10))
	if err != nil {
		return nil, err
	}
	return msg.Header, nil
}

// headersOf lists a header's fields (at most 200 of 2,000 characters,
// RFC 2047 words decoded): text for a table, never markup.
func headersOf(h mail.Header) []Header {
	var out []Header
	dec := new(mimeDecoder)
	for _, name := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[name] {
			if len(out) == 200 {
				return out
			}
			out = append(out, Header{Name: clip(name, 100), Value: clip(dec.decode(v), 2000)})
		}
	}
	return out
}

func subjectOf(h mail.Header) string {
	return clip(new(mimeDecoder).decode(h.Get("Subject")), 200)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
