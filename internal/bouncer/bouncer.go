// Package bouncer serves Rampart's decisions to programs that enforce them
// elsewhere: the bouncer endpoints of the CrowdSec Local API (so CrowdSec's
// firewall, nginx and Traefik bouncers work unchanged against Rampart), and
// plain-text and JSON blocklists. Every request carries an API key
// (X-Api-Key) read from a file; the keys are compared in constant time.
package bouncer

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Decisions gives the decisions in force. The daemon's engine provides it.
type Decisions interface {
	Active(now time.Time) []event.Decision
	Banned(addr netip.Addr, now time.Time) (event.Decision, bool)
}

// Key is one bouncer's API key.
type Key struct {
	Name   string
	Secret string
}

// Server answers bouncers. Make it with New.
type Server struct {
	src  Decisions
	keys []Key
	now  func() time.Time
	log  *slog.Logger

	mu   sync.Mutex
	sent map[string]map[netip.Prefix]sentBan // per bouncer: what its stream has been sent
}

type sentBan struct {
	id  int64
	end time.Time
}

// New returns a Server answering from src to the holders of keys.
func New(src Decisions, keys []Key, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{src: src, keys: keys, now: time.Now, log: log, sent: map[string]map[netip.Prefix]sentBan{}}
}

// Handler routes the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/decisions/stream", s.auth(s.stream))
	mux.HandleFunc("GET /v1/decisions", s.auth(s.decisions))
	mux.HandleFunc("POST /v1/usage-metrics", s.auth(func(w http.ResponseWriter, _ *http.Request, _ string) { w.WriteHeader(http.StatusCreated) }))
	mux.HandleFunc("GET /v1/blocklist.txt", s.auth(s.blocklistText))
	mux.HandleFunc("GET /v1/blocklist.json", s.auth(s.blocklistJSON))
	return mux
}

// auth lets a request through with a valid X-Api-Key, naming its bouncer.
func (s *Server) auth(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("X-Api-Key"))
		name := ""
		for _, k := range s.keys {
			if subtle.ConstantTimeCompare(got, []byte(k.Secret)) == 1 && len(got) > 0 {
				name = k.Name
			}
		}
		if name == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "access forbidden"})
			return
		}
		h(w, r, name)
	}
}

// Decision is a decision as the CrowdSec Local API writes it.
type Decision struct {
	ID       int64  `json:"id"`
	Origin   string `json:"origin"`
	Type     string `json:"type"`
	Scope    string `json:"scope"`
	Value    string `json:"value"`
	Duration string `json:"duration"`
	Scenario string `json:"scenario"`
	Until    string `json:"until,omitempty"`
}

// StreamResponse is GET /v1/decisions/stream's answer.
type StreamResponse struct {
	New     []Decision `json:"new"`
	Deleted []Decision `json:"deleted"`
}

// stream answers GET /v1/decisions/stream: with startup=true every
// decision in force; after that, what is new since the bouncer's last
// pull, and what has ended or been lifted. Filters: scopes (ip, range;
// ip alone when none is named, as the Local API does), origins.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	now := s.now()
	keep := filter(q)
	active := map[netip.Prefix]event.Decision{}
	for _, d := range s.src.Active(now) {
		if d.Action == event.Ban || d.Action == event.Trap {
			if keep(d) {
				active[d.Target] = d
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sent := s.sent[name]
	if sent == nil || q.Get("startup") == "true" {
		sent = map[netip.Prefix]sentBan{}
		s.sent[name] = sent
	}
	resp := StreamResponse{New: []Decision{}, Deleted: []Decision{}}
	for p, sb := range sent {
		if d, ok := active[p]; !ok || !d.End().Equal(sb.end) {
			if !ok {
				resp.Deleted = append(resp.Deleted, Decision{ID: sb.id, Origin: "rampart", Type: "ban", Scope: scope(p), Value: value(p), Duration: "0s"})
			}
			delete(sent, p)
		}
	}
	for p, d := range active {
		if _, ok := sent[p]; ok {
			continue
		}
		cd := convert(d, now)
		sent[p] = sentBan{id: cd.ID, end: d.End()}
		resp.New = append(resp.New, cd)
	}
	sortDecisions(resp.New)
	sortDecisions(resp.Deleted)
	writeJSON(w, http.StatusOK, resp)
}

// decisions answers GET /v1/decisions?ip=ADDR (the decisions covering
// the address) or ?range=PREFIX (the decision on exactly it); null when
// none, as the Local API does.
func (s *Server) decisions(w http.ResponseWriter, r *http.Request, _ string) {
	q := r.URL.Query()
	now := s.now()
	var out []Decision
	switch {
	case q.Get("ip") != "":
		a, err := netip.ParseAddr(q.Get("ip"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": fmt.Sprintf("ip %q is not an address", q.Get("ip"))})
			return
		}
		if d, ok := s.src.Banned(a.Unmap(), now); ok && (d.Action == event.Ban || d.Action == event.Trap) {
			out = append(out, convert(d, now))
		}
	case q.Get("range") != "":
		p, err := netip.ParsePrefix(q.Get("range"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": fmt.Sprintf("range %q is not a CIDR prefix", q.Get("range"))})
			return
		}
		for _, d := range s.src.Active(now) {
			if d.Target == p.Masked() {
				out = append(out, convert(d, now))
			}
		}
	default:
		keep := filter(q)
		for _, d := range s.src.Active(now) {
			if keep(d) {
				out = append(out, convert(d, now))
			}
		}
	}
	if len(out) == 0 {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("null\n"))
		return
	}
	sortDecisions(out)
	writeJSON(w, http.StatusOK, out)
}

// blocklistText writes one address or CIDR prefix a line, sorted.
func (s *Server) blocklistText(w http.ResponseWriter, _ *http.Request, _ string) {
	ds := s.src.Active(s.now())
	targets := make([]netip.Prefix, 0, len(ds))
	for _, d := range ds {
		if d.Action == event.Ban || d.Action == event.Trap {
			targets = append(targets, d.Target)
		}
	}
	slices.SortFunc(targets, netip.Prefix.Compare)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	for _, p := range targets {
		b.WriteString(value(p))
		b.WriteByte('\n')
	}
	w.Write([]byte(b.String()))
}

// Entry is one line of the JSON blocklist.
type Entry struct {
	Target   string    `json:"target"`
	End      time.Time `json:"end,omitzero"` // zero: until revoked
	Scenario string    `json:"scenario"`
	Origin   string    `json:"origin"`
}

func (s *Server) blocklistJSON(w http.ResponseWriter, _ *http.Request, _ string) {
	out := []Entry{}
	for _, d := range s.src.Active(s.now()) {
		if d.Action == event.Ban || d.Action == event.Trap {
			out = append(out, Entry{Target: d.Target.String(), End: d.End(), Scenario: d.Scenario, Origin: d.Origin})
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Target, b.Target) })
	writeJSON(w, http.StatusOK, out)
}

// filter returns the scopes= and origins= filters of a query.
func filter(q map[string][]string) func(event.Decision) bool {
	split := func(k string) []string {
		var out []string
		for _, v := range q[k] {
			for _, x := range strings.Split(v, ",") {
				if x = strings.ToLower(strings.TrimSpace(x)); x != "" {
					out = append(out, x)
				}
			}
		}
		return out
	}
	scopes, origins := split("scopes"), split("origins")
	if len(scopes) == 0 {
		// As the Local API: a bouncer that names no scope gets addresses
		// only (some cannot hold ranges).
		scopes = []string{"ip"}
	}
	return func(d event.Decision) bool {
		if !slices.Contains(scopes, strings.ToLower(scope(d.Target))) {
			return false
		}
		return len(origins) == 0 || slices.Contains(origins, strings.ToLower(origin(d)))
	}
}

func convert(d event.Decision, now time.Time) Decision {
	cd := Decision{ID: id(d), Origin: origin(d), Type: "ban", Scope: scope(d.Target), Value: value(d.Target), Scenario: d.Scenario}
	if d.Duration > 0 {
		left := d.End().Sub(now)
		cd.Duration = left.Round(time.Second).String()
		cd.Until = d.End().UTC().Format(time.RFC3339)
	} else {
		cd.Duration = "87600h0m0s" // until revoked: ten years
	}
	return cd
}

// origin is how the Local API names where a decision came from: "rampart"
// for this node's, the peer's origin ("fleet:NAME") for the others.
func origin(d event.Decision) string {
	if d.Origin == "" || d.Origin == "local" {
		return "rampart"
	}
	return d.Origin
}

func scope(p netip.Prefix) string {
	if p.IsSingleIP() {
		return "Ip"
	}
	return "Range"
}

func value(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// id numbers a decision by its target and start, the same on every pull.
func id(d event.Decision) int64 {
	h := uint64(14695981039346656037)
	for _, b := range []byte(d.Target.String()) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	h = (h ^ uint64(d.Start.Unix())) * 1099511628211
	return int64(h>>2) + 1
}

func sortDecisions(ds []Decision) {
	slices.SortFunc(ds, func(a, b Decision) int { return strings.Compare(a.Value, b.Value) })
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
