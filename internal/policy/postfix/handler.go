package postfix

import (
	"context"
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
// A request carrying sasl_username is a successful login: it is reported so
// the client becomes known-good.
type JudgeHandler struct {
	Judge *policy.Judge
	Jail  string // the jail events are counted in; "" lets the engine pick by service
}

var _ Handler = (*JudgeHandler)(nil)

// Replies, in one place. The texts read like Postfix's own.
var (
	denied  = Reject("Access denied")
	blinded = Defer("Service temporarily unavailable, try again later")
)

// ServePolicy implements Handler.
func (h *JudgeHandler) ServePolicy(ctx context.Context, r *Request) Answer {
	addr := r.Client()
	user := r.Get("sasl_username")
	if user != "" && addr.IsValid() {
		h.Judge.Report(event.Event{Time: time.Now(), Service: "postfix", Kind: event.AuthSuccess, Addr: addr, User: user, Origin: "postfix-policy", Jail: h.Jail})
	}
	v := h.Judge.Judge(addr, user, r.State() == "RCPT")
	switch v.Outcome {
	case policy.Reject:
		return Answer{Action: denied}
	case policy.Blind:
		return Answer{Action: blinded}
	case policy.Delay:
		return Answer{Action: Dunno, Delay: v.Delay}
	}
	return Answer{Action: Dunno}
}
