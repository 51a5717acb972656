package postfix

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Handler answers one request. A Delay holds the answer back (a tarpit);
// the server then keeps the connection parked on a timer, with no
// goroutine, until it is due.
type Handler interface {
	ServePolicy(ctx context.Context, r *Request) Answer
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, r *Request) Answer

// ServePolicy calls f.
func (f HandlerFunc) ServePolicy(ctx context.Context, r *Request) Answer { return f(ctx, r) }

var _ Handler = HandlerFunc(nil)

// Answer is a handler's reply.
type Answer struct {
	Action Action
	Delay  time.Duration
}

// Server serves the policy protocol. Its lifecycle is net/http's: Serve,
// Close, Shutdown.
type Server struct {
	Handler Handler
	Logger  *slog.Logger // nil discards

	// IdleTimeout closes a connection with no request for this long; Postfix
	// itself closes idle ones after smtpd_policy_service_max_idle (300s).
	// Default 330s.
	IdleTimeout time.Duration
	// SilentTimeout closes a new connection that sends nothing for this
	// long: Postfix connects when it has a question, so a silent peer only
	// holds a descriptor. Default 10s.
	SilentTimeout time.Duration
	// ReadTimeout bounds reading one request once it has started. Default 10s.
	ReadTimeout time.Duration
	// HandlerTimeout bounds the handler: when it is exceeded, or the handler
	// panics, the client gets FailAction at once and the event is counted.
	// Postfix must never hang on Rampart. Default 1s.
	HandlerTimeout time.Duration
	// FailAction is the answer when the handler fails: DUNNO (fail open) by
	// default, or e.g. Defer("try again later") to fail closed.
	FailAction Action
	// MaxConns bounds open connections, parked ones included; more are
	// closed at once. Default 20,000.
	MaxConns int

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	shutdown  bool // Shutdown has begun: accept no more
	parked    parkHeap
	wake      chan struct{}
	parkerRun bool
	wg        sync.WaitGroup

	stats counters
}

// Stats counts what a Server did.
type Stats struct {
	Requests  uint64 `json:"requests"`  // requests answered
	Delayed   uint64 `json:"delayed"`   // answers held back
	Rejected  uint64 `json:"rejected"`  // REJECT answers (the daemon fills these two from its JudgeHandler)
	Blinded   uint64 `json:"blinded"`   // DEFER answers to an enumerator
	Parked    int    `json:"parked"`    // connections waiting for a held answer now
	Open      int    `json:"open"`      // connections open now
	Malformed uint64 `json:"malformed"` // malformed requests
	Dropped   uint64 `json:"dropped"`   // connections closed for misbehaving
	Refused   uint64 `json:"refused"`   // connections closed at once: MaxConns (or, filled in by the daemon, its descriptor budget) reached
	Silent    uint64 `json:"silent"`    // new connections closed for sending nothing within SilentTimeout
	Failed    uint64 `json:"failed"`    // handler timeouts and panics, answered with FailAction
}

type counters struct {
	requests, delayed, malformed, dropped, failed, refused, silent atomic.Uint64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	parked, open := len(s.parked), len(s.conns)
	s.mu.Unlock()
	return Stats{
		Requests: s.stats.requests.Load(), Delayed: s.stats.delayed.Load(), Parked: parked, Open: open,
		Malformed: s.stats.malformed.Load(), Dropped: s.stats.dropped.Load(), Failed: s.stats.failed.Load(),
		Refused: s.stats.refused.Load(), Silent: s.stats.silent.Load(),
	}
}

// ErrServerClosed is returned by Serve after Close or Shutdown.
var ErrServerClosed = errors.New("policy server closed")

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) init() {
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
		s.wake = make(chan struct{}, 1)
	}
	if s.FailAction == (Action{}) {
		s.FailAction = Dunno
	}
}

// Serve accepts connections on l until Close or Shutdown. Temporary accept
// errors back off; Serve always returns a non-nil error.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.closed || s.shutdown {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	if !s.parkerRun {
		s.parkerRun = true
		s.wg.Add(1)
		go s.parker()
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed || s.shutdown
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log().Warn("policy server: accept failed; backing off", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("policy server: accept: %w", err)
		}
		backoff = 0
		s.mu.Lock()
		maxConns := s.MaxConns
		if maxConns <= 0 {
			maxConns = 20_000
		}
		if s.closed || s.shutdown || len(s.conns) >= maxConns {
			s.mu.Unlock()
			s.stats.refused.Add(1)
			c.Close()
			continue
		}
		cc := &conn{c: c}
		s.conns[cc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(cc, nil)
	}
}

func (s *Server) timeouts() (idle, read, handler time.Duration) {
	idle, read, handler = s.IdleTimeout, s.ReadTimeout, s.HandlerTimeout
	if idle <= 0 {
		idle = 330 * time.Second
	}
	if read <= 0 {
		read = 10 * time.Second
	}
	if handler <= 0 {
		handler = time.Second
	}
	return
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.init()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for cc := range s.conns {
		cc.c.Close()
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Shutdown stops accepting, answers parked connections at once, and waits
// for connections to end (clients close them) until ctx ends, then closes
// the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.init()
	s.shutdown = true
	for l := range s.listeners {
		l.Close()
	}
	for _, p := range s.parked {
		p.due = time.Time{}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	done := make(chan struct{})
	go func() {
		// Idle connections end when their clients close them or their idle
		// timeout passes; give them until ctx ends.
		for {
			s.mu.Lock()
			n := len(s.conns)
			s.mu.Unlock()
			if n == 0 {
				break
			}
			select {
			case <-ctx.Done():
				close(done)
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		close(done)
	}()
	<-done
	s.Close()
	s.wg.Wait()
	return ctx.Err()
}
