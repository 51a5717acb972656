package postfix

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestShutdownServeReturns checks that Serve reports ErrServerClosed after
// Shutdown, as after Close, not the closed listener's accept error (which
// the daemon would log as a failure at every stop).
func TestShutdownServeReturns(t *testing.T) {
	s := &Server{Handler: HandlerFunc(func(context.Context, *Request) Answer { return Answer{Action: Dunno} })}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	c := dial(t, l.Addr().String())
	if got := c.ask(t, sample); got != "action=DUNNO" {
		t.Fatalf("got %q", got)
	}
	c.c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v, want ErrServerClosed", err)
	}
	if err := s.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}
