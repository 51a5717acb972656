package postfix

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/policy"
)

// JudgeHandler answers Postfix from a policy.Judge:
//
//	banned, or sprayed user               → REJECT Access denied (554 5.7.1)
//	enumerating, at RCPT                  → DEFER for every recipient (450 4.7.1), valid or not
//	suspicious                            → DUNNO, held back by the tarpit delay
//	otherwise                             → DUNNO at once
//
// A request carrying sasl_username is a successful login, and a request at
// END-OF-MESSAGE (from smtpd_end_of_data_restrictions) answered DUNNO is
// mail accepted: the client is a delivering relay. Both are reported, so
// that the client becomes good, only when TrustSASL is set: the protocol
// has no authentication, and anyone who can reach a TCP port could claim a
// login or a delivery for any address and so exempt it from every
// cross-address scenario. Set it for a unix socket only Postfix can reach.
type JudgeHandler struct {
	Judge     *policy.Judge
	Jail      string // the jail events are counted in; "" lets the engine pick by service
	TrustSASL bool

	rejected, blinded atomic.Uint64
}

// JudgeStats counts the handler's verdicts other than DUNNO.
type JudgeStats struct {
	Rejected uint64 // REJECT: banned, or a sprayed user
	Blinded  uint64 // DEFER for every recipient: an enumerator
}

// Stats returns the counters.
func (h *JudgeHandler) Stats() JudgeStats {
	return JudgeStats{Rejected: h.rejected.Load(), Blinded: h.blinded.Load()}
}

var _ Handler = (*JudgeHandler)(nil)

// Replies, in one place. The texts read like Postfix's own.
var (
	denied    = Reject("Access denied")
	blindness = Defer("Service temporarily unavailable, try again later")
)

// ServePolicy implements Handler.
func (h *JudgeHandler) ServePolicy(ctx context.Context, r *Request) Answer {
	addr := r.Client()
	user := r.Get("sasl_username")
	if user != "" && addr.IsValid() && h.TrustSASL {
		h.Judge.Report(event.Event{Time: time.Now(), Service: "postfix", Kind: event.AuthSuccess, Addr: addr, User: user, Origin: "postfix-policy", Jail: h.Jail})
	}
	v := h.Judge.Judge(addr, user, r.State() == "RCPT")
	switch v.Outcome {
	case policy.Reject:
		h.rejected.Add(1)
		return Answer{Action: denied}
	case policy.Blind:
		h.blinded.Add(1)
		return Answer{Action: blindness}
	}
	if r.State() == "END-OF-MESSAGE" && addr.IsValid() && h.TrustSASL {
		h.Judge.Report(event.Event{Time: time.Now(), Service: "postfix", Kind: event.MailAccepted, Addr: addr, Origin: "postfix-policy", Jail: h.Jail})
	}
	if v.Outcome == policy.Delay {
		return Answer{Action: Dunno, Delay: v.Delay}
	}
	return Answer{Action: Dunno}
}
