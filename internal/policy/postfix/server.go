package postfix

import (
	"bufio"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	Dropped   uint64 `json:"dropped"`   // connections closed for misbehaving or over MaxConns
	Failed    uint64 `json:"failed"`    // handler timeouts and panics, answered with FailAction
}

type counters struct {
	requests, delayed, malformed, dropped, failed atomic.Uint64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	parked, open := len(s.parked), len(s.conns)
	s.mu.Unlock()
	return Stats{
		Requests: s.stats.requests.Load(), Delayed: s.stats.delayed.Load(), Parked: parked, Open: open,
		Malformed: s.stats.malformed.Load(), Dropped: s.stats.dropped.Load(), Failed: s.stats.failed.Load(),
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
			s.stats.dropped.Add(1)
			c.Close()
			continue
		}
		cc := &conn{c: c}
		s.conns[cc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(cc)
	}
}

// conn is one client connection. Its reader is taken from a pool while a
// goroutine serves it and given back while it is parked.
type conn struct {
	c      net.Conn
	br     *bufio.Reader
	errors int    // malformed requests so far
	out    []byte // the answer being written, reused

	// The handler's watchdog, armed for each request and reused; nil while
	// parked. It fires overrun for the request in cur.
	watchdog *time.Timer
	cur      atomic.Pointer[requestContext]
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, maxLine) }}

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

// serveConn reads and answers requests until the connection ends or an
// answer is parked. It owns one s.wg count, which it passes on to the
// parked entry when it parks, or to the goroutine that serves the
// connection on when a handler overruns.
func (s *Server) serveConn(cc *conn) {
	keep := false // cc lives on: parked, or served by another goroutine
	defer func() {
		if !keep {
			s.finish(cc)
		}
	}()
	idle, read, _ := s.timeouts()
	if cc.br == nil {
		cc.br = readerPool.Get().(*bufio.Reader)
		cc.br.Reset(cc.c)
	}
	for {
		cc.c.SetReadDeadline(time.Now().Add(idle))
		if cc.br.Buffered() == 0 {
			if _, err := cc.br.Peek(1); err != nil {
				return
			}
		}
		cc.c.SetReadDeadline(time.Now().Add(read))
		req, err := readRequest(cc.br)
		var rerr *RequestError
		switch {
		case errors.Is(err, errEOF):
			return
		case errors.As(err, &rerr):
			s.stats.malformed.Add(1)
			cc.errors++
			if cc.errors >= 3 || rerr.fatal {
				s.stats.dropped.Add(1)
				s.log().Warn("policy client dropped", "remote", cc.c.RemoteAddr().String(), "err", err)
				return
			}
			if !s.write(cc, s.FailAction) {
				return
			}
			continue
		case err != nil:
			return
		}
		ans, ok := s.answer(cc, req)
		if !ok {
			keep = true
			return
		}
		s.stats.requests.Add(1)
		if ans.Delay > 0 && cc.br.Buffered() == 0 {
			s.stats.delayed.Add(1)
			readerPool.Put(cc.br)
			cc.br = nil
			cc.watchdog = nil // stopped; a parked connection costs no timer
			s.park(cc, ans.Action, time.Now().Add(ans.Delay))
			keep = true
			return
		}
		if !s.write(cc, ans.Action) {
			return
		}
	}
}

// answer calls the handler on the connection's own goroutine, with a time
// limit and a recover. When the handler overruns the limit, its context is
// cancelled and the client gets FailAction at once from a new goroutine,
// which serves the connection from then on; answer then returns false, and
// the caller, stuck in the handler until it returns, must leave cc alone.
// (A goroutine per request for the handler would cost two goroutine
// switches per decision, and a context.WithTimeout a timer, for the rare
// overrun.)
func (s *Server) answer(cc *conn, req *Request) (ans Answer, ok bool) {
	_, _, limit := s.timeouts()
	ctx := &requestContext{deadline: time.Now().Add(limit)}
	cc.cur.Store(ctx)
	if cc.watchdog == nil {
		// Armed only once stored, so overrun always sees it.
		cc.watchdog = time.AfterFunc(time.Duration(math.MaxInt64), func() { s.overrun(cc) })
	}
	cc.watchdog.Reset(limit)
	ans = s.call(ctx, req)
	if !ctx.state.CompareAndSwap(running, answered) {
		return Answer{}, false
	}
	cc.watchdog.Stop()
	ctx.cancel(context.Canceled)
	if ans.Delay < 0 {
		s.stats.failed.Add(1)
		ans.Delay = 0
	}
	if ans.Action == (Action{}) {
		ans.Action = Dunno
	}
	return ans, true
}

// call runs the handler; a panic is answered with FailAction and a
// negative Delay to count it as a failure.
func (s *Server) call(ctx context.Context, req *Request) (ans Answer) {
	defer func() {
		if p := recover(); p != nil {
			s.log().Error("policy handler panicked; answering the fail action", "panic", fmt.Sprint(p))
			ans = Answer{Action: s.FailAction, Delay: -1}
		}
	}()
	return s.Handler.ServePolicy(ctx, req)
}

// overrun runs when cc's watchdog fires. If the handler is still running
// past its deadline, overrun takes the connection over: it cancels the
// handler's context, answers FailAction and serves the connection on, in
// place of the goroutine stuck in the handler.
func (s *Server) overrun(cc *conn) {
	ctx := cc.cur.Load()
	if ctx == nil || time.Now().Before(ctx.deadline) {
		return // a late firing for an answered request; a later one is not due
	}
	if !ctx.state.CompareAndSwap(running, overran) {
		return // answered in time
	}
	ctx.cancel(context.DeadlineExceeded)
	s.stats.failed.Add(1)
	s.stats.requests.Add(1)
	if !s.write(cc, s.FailAction) {
		s.finish(cc)
		return
	}
	s.serveConn(cc)
}

// Handler states, in requestContext.state.
const (
	running uint32 = iota
	answered
	overran
)

// requestContext is the context a handler gets: done, with
// context.DeadlineExceeded, when the handler overruns its time limit, or
// with context.Canceled once it has answered. One per request, since a
// handler may keep it.
type requestContext struct {
	deadline time.Time
	state    atomic.Uint32 // running, answered, overran: who answers the client

	mu   sync.Mutex
	done chan struct{} // made by the first Done
	err  error
}

func (c *requestContext) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *requestContext) Value(any) any               { return nil }

func (c *requestContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

func (c *requestContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *requestContext) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		if c.done != nil {
			close(c.done)
		}
	}
}

func (s *Server) write(cc *conn, a Action) bool {
	cc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	cc.out = append(a.appendTo(cc.out[:0]), "\n\n"...)
	_, err := cc.c.Write(cc.out)
	return err == nil
}

func (s *Server) finish(cc *conn) {
	cc.c.Close()
	if cc.br != nil {
		cc.br.Reset(nil)
		readerPool.Put(cc.br)
		cc.br = nil
	}
	s.mu.Lock()
	delete(s.conns, cc)
	s.mu.Unlock()
	s.wg.Done()
}

// park holds cc's answer until due; the parker goroutine sends it.
func (s *Server) park(cc *conn, a Action, due time.Time) {
	s.mu.Lock()
	heap.Push(&s.parked, &parkedConn{cc: cc, action: a, due: due})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

type parkedConn struct {
	cc     *conn
	action Action
	due    time.Time
}

type parkHeap []*parkedConn

func (h parkHeap) Len() int           { return len(h) }
func (h parkHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h parkHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *parkHeap) Push(x any)        { *h = append(*h, x.(*parkedConn)) }
func (h *parkHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

// parker sends held answers when they are due, and resumes their
// connections. It is the only goroutine tarpitted connections cost.
func (s *Server) parker() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		var due []*parkedConn
		for len(s.parked) > 0 && (s.closed || !s.parked[0].due.After(now)) {
			due = append(due, heap.Pop(&s.parked).(*parkedConn))
		}
		closed := s.closed
		next := time.Hour
		if len(s.parked) > 0 {
			next = s.parked[0].due.Sub(now)
		}
		s.mu.Unlock()
		for _, p := range due {
			if closed || !s.write(p.cc, p.action) {
				s.finish(p.cc)
				continue
			}
			go s.serveConn(p.cc)
		}
		if closed {
			return
		}
		timer.Reset(next)
		select {
		case <-timer.C:
		case <-s.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
	}
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
