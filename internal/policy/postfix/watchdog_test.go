package postfix

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestHandlerOverrun checks the watchdog: a handler past its limit sees its
// context end with DeadlineExceeded, the client gets the fail action at
// once and is served on while the handler is still stuck, and a handler
// that answered in time finds its context cancelled afterwards.
func TestHandlerOverrun(t *testing.T) {
	stuck := make(chan error, 1)
	release := make(chan struct{})
	kept := make(chan context.Context, 1)
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, r *Request) Answer {
		switch r.Get("recipient") {
		case "block@x":
			<-ctx.Done()
			stuck <- ctx.Err()
			<-release // still stuck after the deadline
			return Answer{Action: Reject("too late")}
		case "keep@x":
			kept <- ctx
		}
		return Answer{Action: Reject("in time")}
	}), HandlerTimeout: 100 * time.Millisecond, FailAction: Defer("try later")}
	addr := startServer(t, s)
	c := dial(t, addr)
	start := time.Now()
	if got := c.ask(t, "recipient=block@x\n\n"); got != "action=DEFER try later" {
		t.Fatalf("overrun answered %q", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("fail action after %v", d)
	}
	if err := <-stuck; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handler context ended with %v", err)
	}
	// The stuck handler still holds its goroutine; the connection goes on.
	if got := c.ask(t, "recipient=keep@x\n\n"); got != "action=REJECT in time" {
		t.Fatalf("next request answered %q", got)
	}
	if ctx := <-kept; !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("context of an answered request: %v", ctx.Err())
	} else if _, ok := ctx.Deadline(); !ok {
		t.Fatal("handler context without a deadline")
	}
	close(release)
	if got := c.ask(t, sample); got != "action=REJECT in time" {
		t.Fatalf("after the stuck handler returned: %q", got)
	}
	if st := s.Stats(); st.Failed != 1 || st.Requests != 3 {
		t.Fatalf("stats = %+v", st)
	}
}
