// Package dovecot serves Dovecot's authentication policy protocol
// (auth_policy_server_url): HTTP POSTs of JSON objects with ?command=allow
// before a login is checked and ?command=report after, answered with
// {"status": S, "msg": "..."}: S < 0 rejects (msg is shown to the client),
// 0 allows, S > 0 makes Dovecot delay its answer by S seconds.
package dovecot

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/policy"
)

// Request is the JSON object Dovecot posts. With the default
// auth_policy_request_attributes it carries login, pwhash, remote,
// device_id, protocol and session_id; a report adds success and
// policy_reject. Other attributes are ignored.
type Request struct {
	Login        string `json:"login"`
	PwHash       string // truncated hash of nonce, login and password; never the password
	Remote       string `json:"remote"`
	DeviceID     string `json:"device_id"`
	Protocol     string `json:"protocol"`
	SessionID    string `json:"session_id"`
	Success      *bool  `json:"success"`
	PolicyReject *bool  `json:"policy_reject"`
}

// Response is the answer.
type Response struct {
	Status int    `json:"status"`
	Msg    string `json:"msg"`
}

// maxBody bounds a request body; Dovecot's are a few hundred bytes.
const maxBody = 64 << 10

// Handler answers Dovecot from a policy.Judge. It is an http.Handler.
//
//	allow:  banned, or a sprayed user from an unknown address → reject (status -1,
//	        no message: the client sees a wrong password)
//	        suspicious → delay by the tarpit seconds (for SMTP AUTH, within
//	        Postfix's 10s budget: see smtpBudget); otherwise → allow
//	report: success → the address becomes known-good (only with Auth set);
//	        failure → a failed login event
type Handler struct {
	Judge *policy.Judge
	Jail  string // the jail events are counted in; "" lets the engine pick by service
	// Auth is the Authorization header value Dovecot must send
	// (auth_policy_server_api_header). Empty accepts any request and then
	// never takes a reported success as proof of a good client: anyone who
	// can reach the port could exempt an address from every cross-address
	// scenario. The daemon always sets it.
	Auth string
	// FailureDelay is Dovecot's auth_failure_delay, part of the SMTP
	// budget. Default 2s, Dovecot's.
	FailureDelay time.Duration
	Logger       *slog.Logger

	checks    checks
	penalties penalties

	requests, rejected, delayed, reports, bad, unauthorized atomic.Uint64
}

// Stats counts what the handler did. A login is counted once: Delayed
// counts logins held back before their password was checked, not the
// question Dovecot asks again after a correct one.
type Stats struct {
	Requests     uint64 `json:"requests"`     // allow and report requests answered
	Rejected     uint64 `json:"rejected"`     // logins refused
	Delayed      uint64 `json:"delayed"`      // logins held back by the tarpit
	Reports      uint64 `json:"reports"`      // outcomes reported
	Bad          uint64 `json:"bad"`          // malformed requests
	Unauthorized uint64 `json:"unauthorized"` // requests without the shared secret
}

// Stats returns the counters.
func (h *Handler) Stats() Stats {
	return Stats{h.requests.Load(), h.rejected.Load(), h.delayed.Load(), h.reports.Load(), h.bad.Load(), h.unauthorized.Load()}
}

// rejectMsg is what a rejected client is told: nothing. Dovecot passes a
// non-empty msg on as the failure's reason, which IMAP shows as
// "NO [ALERT] msg" and Postfix's SASL as "535 5.7.8 Error: authentication
// failed: msg", both unlike a wrong password ("NO [AUTHENTICATIONFAILED]
// Authentication failed.", "... failed: (reason unavailable)"). Without
// one the client gets the answer to a wrong password, and the policy
// reveals nothing (seen with Dovecot 2.3.19 and Postfix 3.7).
const rejectMsg = ""

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if h.Auth != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(h.Auth)) != 1 {
		h.unauthorized.Add(1)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody+1))
	if err := dec.Decode(&req); err != nil {
		h.bad.Add(1)
		msg := "bad request: " + err.Error()
		if errors.Is(err, io.ErrUnexpectedEOF) {
			msg = "bad request: truncated or larger than 64 KiB"
		}
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	addr, err := netip.ParseAddr(req.Remote)
	if err != nil {
		h.bad.Add(1)
		http.Error(w, "bad request: remote is not an address", http.StatusBadRequest)
		return
	}
	addr = addr.Unmap().WithZone("")
	h.requests.Add(1)
	switch command(r) {
	case "allow":
		writeJSON(w, h.allow(addr, &req))
	case "report":
		h.report(addr, &req)
		writeJSON(w, Response{})
	default:
		h.bad.Add(1)
		http.Error(w, "unknown command (want allow or report)", http.StatusBadRequest)
	}
}

// command reads ?command=, which Dovecot appends with '?' or, when the
// configured URL already ends in '&', as the last parameter.
func command(r *http.Request) string {
	return strings.ToLower(r.URL.Query().Get("command"))
}

func (h *Handler) allow(addr netip.Addr, req *Request) Response {
	now := time.Now()
	first := h.checks.first(addr, req, now)
	v := h.Judge.Judge(addr, req.Login, false)
	switch v.Outcome {
	case policy.Reject:
		h.rejected.Add(1)
		return Response{Status: -1, Msg: rejectMsg}
	case policy.Delay:
		if !first {
			return Response{} // after the password: Dovecot would not wait
		}
		secs := int(math.Ceil(v.Delay.Seconds()))
		if budgeted(req.Protocol) {
			secs = min(secs, h.smtpCap(addr, now))
		}
		if secs <= 0 {
			return Response{}
		}
		h.delayed.Add(1)
		return Response{Status: secs}
	}
	return Response{}
}

func (h *Handler) report(addr netip.Addr, req *Request) {
	h.checks.done(addr, req)
	if req.Success == nil {
		return
	}
	h.reports.Add(1)
	ev := event.Event{Time: time.Now(), Service: "dovecot", Addr: addr, User: req.Login, Origin: "dovecot-policy", Jail: h.Jail}
	if *req.Success {
		h.penalties.succeeded(addr)
		if h.Auth == "" {
			return // unauthenticated: not proof of a good client
		}
		ev.Kind = event.AuthSuccess
	} else {
		h.penalties.failed(addr, ev.Time)
		ev.Kind = event.AuthFailure
	}
	h.Judge.Report(ev)
}

func writeJSON(w http.ResponseWriter, v Response) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
