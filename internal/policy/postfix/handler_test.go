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

// A message that reaches END-OF-MESSAGE and is let through makes its client
// a delivering relay, reported once per ten minutes (a busy relay's every
// message need not reach the store), and only over a trusted connection;
// a banned client's message is refused and makes nothing.
func TestJudgeHandlerDeliveringRelay(t *testing.T) {
	for _, trust := range []bool{false, true} {
		e, err := engine.New(engine.DefaultConfig(engine.Jail{Name: "postfix", Services: []string{"postfix"}, MaxRetry: 5, FindTime: 10 * time.Minute, BanTime: time.Hour}))
		if err != nil {
			t.Fatal(err)
		}
		var good []event.Event
		var carves []event.Decision
		h := &JudgeHandler{Judge: &policy.Judge{Engine: e, KnownGood: func(ev event.Event) { good = append(good, ev) },
			Decided: func(ds []event.Decision) { carves = append(carves, ds...) }}, TrustSASL: trust}
		eom := "request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\nrecipient_count=1\nclient_address="
		for range 3 {
			if a := h.ServePolicy(context.Background(), judgeRequest(t, eom+"209.85.220.41\n")); a.Action != Dunno {
				t.Fatalf("end of message: %#v", a.Action)
			}
		}
		h.ServePolicy(context.Background(), judgeRequest(t, "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=209.85.220.42\n"))
		if !trust {
			if len(good) != 0 || e.IsRelay(netip.MustParseAddr("209.85.220.41"), time.Now()) {
				t.Fatalf("untrusted: relay reported: %v", good)
			}
			continue
		}
		if len(good) != 1 || good[0].Kind != event.MailAccepted || good[0].Addr != netip.MustParseAddr("209.85.220.41") {
			t.Fatalf("relay reports %v, want one mail-accepted for 209.85.220.41", good)
		}
		if !e.IsRelay(netip.MustParseAddr("209.85.220.41"), time.Now()) || e.IsRelay(netip.MustParseAddr("209.85.220.42"), time.Now()) {
			t.Fatal("the engine does not know the relay, or counts a RCPT stage as a delivery")
		}
		if len(carves) != 1 || carves[0].Action != event.Allow || carves[0].Scenario != "relay" {
			t.Fatalf("decisions %+v, want the relay's carve-out", carves)
		}
	}
}
