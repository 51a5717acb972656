package postfix

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/policy"
)

func judgeRequest(t *testing.T, attrs string) *Request {
	t.Helper()
	r, err := readRequest(bufio.NewReaderSize(strings.NewReader(attrs+"\n"), maxLine))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A sasl_username over a connection anyone may open proves nothing: only a
// handler told to trust it (the daemon does, for its unix socket) reports
// the login, making the client known-good.
func TestJudgeHandlerSASLTrust(t *testing.T) {
	for _, trust := range []bool{false, true} {
		e, err := engine.New(engine.DefaultConfig(engine.Jail{Name: "postfix", Services: []string{"postfix"}, MaxRetry: 5, FindTime: 10 * time.Minute, BanTime: time.Hour}))
		if err != nil {
			t.Fatal(err)
		}
		var good []event.Event
		h := &JudgeHandler{Judge: &policy.Judge{Engine: e, KnownGood: func(ev event.Event) { good = append(good, ev) }}, TrustSASL: trust}
		h.ServePolicy(context.Background(), judgeRequest(t, "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.8\nsasl_username=alice\n"))
		if got := len(good) == 1; got != trust {
			t.Errorf("TrustSASL %v: known-good reports %v", trust, good)
		}
	}
}

// The handler counts what it refuses and whom it blinds.
func TestJudgeHandlerCounts(t *testing.T) {
	cfg := engine.DefaultConfig(engine.Jail{Name: "postfix", Services: []string{"postfix"}, MaxRetry: 5, FindTime: 10 * time.Minute, BanTime: time.Hour})
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &JudgeHandler{Judge: &policy.Judge{Engine: e}}
	now := time.Now()
	for i := range 3 {
		e.Observe(event.Event{Time: now, Service: "postfix", Kind: event.RecipientUnknown, Addr: netip.MustParseAddr("192.0.2.30"), User: fmt.Sprintf("nobody%d@example.org", i)})
	}
	for range 5 {
		e.Observe(event.Event{Time: now, Service: "postfix", Kind: event.AuthFailure, Addr: netip.MustParseAddr("192.0.2.31"), User: "bob"})
	}
	rcpt := "request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=alice@example.org\nclient_address="
	if a := h.ServePolicy(context.Background(), judgeRequest(t, rcpt+"192.0.2.30\n")); a.Action != blindness {
		t.Fatalf("enumerator: %#v", a.Action)
	}
	if a := h.ServePolicy(context.Background(), judgeRequest(t, rcpt+"192.0.2.31\n")); a.Action != denied {
		t.Fatalf("banned: %#v", a.Action)
	}
	if st := h.Stats(); st.Rejected != 1 || st.Blinded != 1 {
		t.Fatalf("stats %+v", st)
	}
}
