package web

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// BanPage is the ban page's data: the bans in force, to unban.
type BanPage struct {
	Active      []Active `json:"active"`       // the most recent
	ActiveTotal int      `json:"active_total"` // all of them
	Error       string   `json:"error,omitempty"`
}

func (s *Server) banPage(r *http.Request) (any, error) {
	snap := s.opt.Backend.Snapshot()
	return BanPage{Active: snap.Active, ActiveTotal: snap.ActiveTotal, Error: r.URL.Query().Get("error")}, nil
}

// form serves a form's POST: its body limited, its CSRF token required.
func (s *Server) form(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if !s.checkCSRF(r) {
			http.Error(w, "the form is stale or was not sent from this dashboard: reload the page and try again", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

// banForm handles the ban form: on success or failure it sends the
// browser back to the ban page, which says what happened.
func (s *Server) banForm(w http.ResponseWriter, r *http.Request) {
	d, err := formDuration(r.PostFormValue("duration"))
	if err != nil {
		backTo(w, r, "/ban", "error", err.Error())
		return
	}
	done, err := s.opt.Backend.Ban(r.Context(), r.PostFormValue("ip"), d, strings.TrimSpace(r.PostFormValue("reason")))
	if err != nil {
		backTo(w, r, "/ban", "error", err.Error())
		return
	}
	s.log.Info("web: ban", "addr", r.PostFormValue("ip"), "remote", r.RemoteAddr)
	backTo(w, r, "/ban", "done", done)
}

func (s *Server) unbanForm(w http.ResponseWriter, r *http.Request) {
	ip := r.PostFormValue("ip")
	removed, err := s.opt.Backend.Unban(r.Context(), ip)
	switch {
	case err != nil:
		backTo(w, r, "/ban", "error", err.Error())
	case !removed:
		backTo(w, r, "/ban", "done", ip+" was not banned")
	default:
		s.log.Info("web: unban", "addr", ip, "remote", r.RemoteAddr)
		backTo(w, r, "/ban", "done", "unbanned "+ip)
	}
}

// backTo sends the browser back to page with what happened: key "done"
// or "error" and its message.
func backTo(w http.ResponseWriter, r *http.Request, page, key, msg string) {
	http.Redirect(w, r, page+"?"+url.Values{key: {clip(msg, 300)}}.Encode(), http.StatusSeeOther)
}

// formDuration reads a duration field: "" for the default, "90m", "12h",
// "7d".
func formDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	d, err := parseAge(v)
	if err != nil {
		return 0, errBadRequest{"duration " + clip(v, 20) + ": want 90m, 12h or 7d (at most 400d)"}
	}
	return d, nil
}

// BanRequest is POST /api/ban's body.
type BanRequest struct {
	IP        string `json:"ip"`
	DurationS int64  `json:"duration_s,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// jsonBody decodes a JSON request body into v; on failure it has
// answered. Only application/json is taken: a cross-site form cannot send
// it.
func jsonBody(w http.ResponseWriter, r *http.Request, v any) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "send application/json"})
		return false
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request: " + err.Error()})
		return false
	}
	return true
}

func (s *Server) banAPI(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	if !jsonBody(w, r, &req) {
		return
	}
	if req.DurationS < 0 || req.DurationS > 400*86400 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "duration_s: want 0 (the default) to 400 days"})
		return
	}
	done, err := s.opt.Backend.Ban(r.Context(), req.IP, time.Duration(req.DurationS)*time.Second, req.Reason)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.log.Info("web: ban", "addr", req.IP, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"done": done})
}

func (s *Server) unbanAPI(w http.ResponseWriter, r *http.Request) {
	var req struct {
		IP string `json:"ip"`
	}
	if !jsonBody(w, r, &req) {
		return
	}
	removed, err := s.opt.Backend.Unban(r.Context(), req.IP)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if removed {
		s.log.Info("web: unban", "addr", req.IP, "remote", r.RemoteAddr)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"removed": removed})
}

// mimeDecoder decodes RFC 2047 encoded words in header values, and
// replaces control characters: a header is shown as one line of text.
type mimeDecoder struct{ d mime.WordDecoder }

func (m *mimeDecoder) decode(v string) string {
	if s, err := m.d.DecodeHeader(v); err == nil {
		v = s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, v)
}
