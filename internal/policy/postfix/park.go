package postfix

import (
	"container/heap"
	"time"
)

// Parking: a connection whose answer is held back (a tarpit) waits in a
// heap ordered by when it is due, with no goroutine and no timer of its
// own; one parker goroutine wakes for the soonest.

// park holds cc's answer until due. From the push on, the heap owns cc.
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

// parker hands each parked connection, when its answer is due, to a new
// goroutine that writes the answer and serves the connection on. It is
// the only goroutine tarpitted connections cost.
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
			if closed {
				s.finish(p.cc)
				continue
			}
			// The answer is written by the connection's goroutine: a client
			// that does not read must not hold up the others' answers.
			go s.serveConn(p.cc, &p.action)
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
