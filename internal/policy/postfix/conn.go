package postfix

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Who owns a connection. A connection has one owner at a time, and the
// owner holds the connection's count in s.wg:
//
//   - Serve accepts it and starts a goroutine in serveConn, which owns it;
//   - serveConn hands it to the park heap when an answer is held back
//     (park), or, when a handler overruns its time limit, to the watchdog's
//     goroutine (overrun), which answers and serves it on; either way
//     serveConn returns without touching it again;
//   - the parker takes a due connection off the heap and starts a
//     goroutine in serveConn with the held answer to write first.
//
// The owner that sees the connection end calls finish, once: it closes the
// socket, returns the reader, forgets the connection and releases its
// count. Close and Shutdown close sockets they do not own, to end reads in
// progress; only the owner finishes. serveConn recovers from a panic
// anywhere in its connection, not only in the handler: the connection is
// dropped and counted, and the server goes on.

// conn is one client connection. Its reader is taken from a pool while a
// goroutine serves it and given back while it is parked.
type conn struct {
	c      net.Conn
	br     *bufio.Reader
	errors int    // malformed requests so far
	spoke  bool   // the peer has sent a byte
	out    []byte // the answer being written, reused

	// The handler's watchdog, armed for each request and reused; nil while
	// parked. It fires overrun for the request in cur.
	watchdog *time.Timer
	cur      atomic.Pointer[requestContext]
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, maxLine) }}

// serveConn writes held, if any (an answer that was parked, or the fail
// action after an overrun), then reads and answers requests until the
// connection ends or its owner changes (see "Who owns a connection").
func (s *Server) serveConn(cc *conn, held *Action) {
	keep := false // cc has passed to another owner
	defer func() {
		if p := recover(); p != nil && !keep {
			s.stats.dropped.Add(1)
			s.log().Error("policy connection panicked; dropping it", "remote", cc.c.RemoteAddr().String(), "panic", fmt.Sprint(p))
		}
		if !keep {
			s.finish(cc)
		}
	}()
	if held != nil && !s.write(cc, *held) {
		return
	}
	idle, read, _ := s.timeouts()
	silent := s.SilentTimeout
	if silent <= 0 {
		silent = 10 * time.Second
	}
	if cc.br == nil {
		cc.br = readerPool.Get().(*bufio.Reader)
		cc.br.Reset(cc.c)
	}
	for {
		wait := idle
		if !cc.spoke {
			wait = min(silent, idle)
		}
		cc.c.SetReadDeadline(time.Now().Add(wait))
		if cc.br.Buffered() == 0 {
			if _, err := cc.br.Peek(1); err != nil {
				var ne net.Error
				if !cc.spoke && errors.As(err, &ne) && ne.Timeout() {
					s.stats.silent.Add(1)
				}
				return
			}
		}
		cc.spoke = true
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
			keep = true // overrun serves it
			return
		}
		s.stats.requests.Add(1)
		if ans.Delay > 0 && cc.br.Buffered() == 0 {
			s.stats.delayed.Add(1)
			readerPool.Put(cc.br)
			cc.br = nil
			cc.watchdog = nil // stopped; a parked connection costs no timer
			keep = true       // before park: from its push on, the parker owns cc
			s.park(cc, ans.Action, time.Now().Add(ans.Delay))
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
	fail := s.FailAction
	s.serveConn(cc, &fail)
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
