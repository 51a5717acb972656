// Package action runs what the operator asked for beside the firewall
// when a decision or a report happens — fail2ban's custom actions, done
// safely: a signed webhook with a templated JSON body, a mail digest, a
// program run with an argument vector (no shell unless asked, fields
// shell-quoted then), a row in an SQL table (SQLite or PostgreSQL).
//
// Nothing here can hold up the engine: Publish never blocks. Each action
// has a bounded queue and a goroutine of its own; an event finding the
// queue full is dropped and counted, an action that fails is counted,
// and status and metrics show both.
package action

import (
	"container/heap"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Event types.
const (
	Ban    = "ban"
	Unban  = "unban"
	Trap   = "trap"
	Report = "report"
)

// Event is what an action acts on.
type Event struct {
	Type      string    `json:"type"` // ban, unban, trap, report
	Time      time.Time `json:"time"`
	IP        string    `json:"ip,omitempty"` // an address or a prefix
	Jail      string    `json:"jail,omitempty"`
	Scenario  string    `json:"scenario,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	DurationS int64     `json:"duration_s,omitempty"` // 0: until revoked (or not a ban)
	End       time.Time `json:"end,omitzero"`
	Origin    string    `json:"origin,omitempty"`
	Host      string    `json:"host"` // this host's name
	// A report's: who it went to, what it reported, where.
	Reporter    string `json:"reporter,omitempty"`
	Kind        string `json:"kind,omitempty"`
	Target      string `json:"target,omitempty"`
	Destination string `json:"destination,omitempty"`
}

// Fields are the event's values as text, by the names templates use
// ({{.IP}}, {{.Reason}}, ...).
func (e Event) Fields() map[string]string {
	end := ""
	if !e.End.IsZero() {
		end = e.End.UTC().Format(time.RFC3339)
	}
	return map[string]string{
		"Type": e.Type, "Time": e.Time.UTC().Format(time.RFC3339), "IP": e.IP, "Jail": e.Jail, "Scenario": e.Scenario,
		"Reason": e.Reason, "DurationS": strconv.FormatInt(e.DurationS, 10), "End": end, "Origin": e.Origin, "Host": e.Host,
		"Reporter": e.Reporter, "Kind": e.Kind, "Target": e.Target, "Destination": e.Destination,
	}
}

// FromDecision is the event of an applied decision: a ban or a trap.
func FromDecision(d event.Decision, host string) Event {
	t := Ban
	if d.Action == event.Trap {
		t = Trap
	}
	return Event{Type: t, Time: d.Start, IP: target(d.Target), Jail: d.Jail, Scenario: d.Scenario, Reason: d.Reason,
		DurationS: int64(d.Duration / time.Second), End: d.End(), Origin: d.Origin, Host: host}
}

func target(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// Sink is what one action does with an event. An error counts as a
// failure (logged; the event is not tried again).
type Sink interface {
	Handle(ctx context.Context, ev Event) error
}

// Batcher is a sink that takes the events waiting together (SQL: one
// transaction).
type Batcher interface {
	HandleBatch(ctx context.Context, evs []Event) error
}

// Flusher is a sink that collects events (Handle takes them: done) and
// acts on them every Interval (the mail digest), and once more when the
// daemon stops. Flush returns how many events an error failed.
type Flusher interface {
	Flush(ctx context.Context) (int, error)
	Interval() time.Duration
}

// Closer is a sink holding something to release at the end (a database).
type Closer interface{ Close() error }

// Filter says which events an action takes.
type Filter struct {
	On        []string // event types
	Jails     []string // empty: every jail's
	Scenarios []string // empty: every scenario's
}

func (f Filter) match(ev Event) bool {
	return slices.Contains(f.On, ev.Type) &&
		(len(f.Jails) == 0 || slices.Contains(f.Jails, ev.Jail)) &&
		(len(f.Scenarios) == 0 || slices.Contains(f.Scenarios, ev.Scenario))
}

// Action is one configured action.
type Action struct {
	Name    string
	Type    string // webhook, mail, exec, sql
	Filter  Filter
	Sink    Sink
	Queue   int           // events waiting at most
	Timeout time.Duration // per Handle call

	ch                            chan Event
	queued, done, failed, dropped atomic.Uint64
}

// Stats is one action's counters since start.
type Stats struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Queued  uint64 `json:"queued"`  // events taken
	Done    uint64 `json:"done"`    // events acted on
	Failed  uint64 `json:"failed"`  // events the action failed on
	Dropped uint64 `json:"dropped"` // events not taken: the queue was full
	Waiting int    `json:"waiting"` // events in the queue now
}

// Dispatcher hands events to the actions that take them, and makes the
// unban events of bans that expire (the kernel lifts them by itself).
type Dispatcher struct {
	actions []*Action
	log     *slog.Logger
	host    string
	unbans  bool // an action takes unban events: expiries are tracked
	now     func() time.Time

	mu      sync.Mutex
	expiry  expiries
	untrack atomic.Uint64 // bans not tracked for expiry: the table was full
}

// maxTracked bounds the bans whose expiry is tracked for unban events.
const maxTracked = 1_000_000

// NewDispatcher returns a dispatcher for actions; host names this host
// in events.
func NewDispatcher(actions []*Action, host string, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{actions: actions, log: log, host: host, now: time.Now, expiry: expiries{ends: map[netip.Prefix]event.Decision{}}}
	for _, a := range actions {
		a.ch = make(chan Event, max(a.Queue, 1))
		if a.Timeout <= 0 {
			a.Timeout = 10 * time.Second
		}
		d.unbans = d.unbans || slices.Contains(a.Filter.On, Unban)
	}
	return d
}

// Publish hands ev to every action that takes it, without waiting: an
// action whose queue is full drops it (counted).
func (d *Dispatcher) Publish(ev Event) {
	if d == nil {
		return
	}
	if ev.Host == "" {
		ev.Host = d.host
	}
	for _, a := range d.actions {
		if !a.Filter.match(ev) {
			continue
		}
		select {
		case a.ch <- ev:
			a.queued.Add(1)
		default:
			a.dropped.Add(1)
		}
	}
}

// Decided publishes the applied decisions (bans and traps), and tracks
// their ends for the unban events.
func (d *Dispatcher) Decided(ds []event.Decision) {
	if d == nil {
		return
	}
	for _, dec := range ds {
		if dec.Action != event.Ban && dec.Action != event.Trap {
			continue
		}
		d.Track(dec)
		d.Publish(FromDecision(dec, d.host))
	}
}

// Track remembers when a ban ends, for its unban event (restored bans
// too, which are not published again).
func (d *Dispatcher) Track(dec event.Decision) {
	if d == nil || !d.unbans || dec.Duration <= 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.expiry.ends[dec.Target]; !ok && len(d.expiry.ends) >= maxTracked {
		d.untrack.Add(1)
		return
	}
	d.expiry.track(dec)
}

// Unbanned publishes the unban of a ban lifted before its end (by hand).
func (d *Dispatcher) Unbanned(p netip.Prefix, why string) {
	if d == nil {
		return
	}
	ev := Event{Type: Unban, Time: d.now(), IP: target(p), Reason: why, Host: d.host}
	d.mu.Lock()
	if dec, ok := d.expiry.ends[p]; ok {
		ev.Jail, ev.Scenario, ev.Origin = dec.Jail, dec.Scenario, dec.Origin
		delete(d.expiry.ends, p)
	}
	d.mu.Unlock()
	d.Publish(ev)
}

// expire publishes the unban events of the bans that ended by now.
func (d *Dispatcher) expire(now time.Time) {
	d.mu.Lock()
	ended := d.expiry.due(now)
	d.mu.Unlock()
	for _, dec := range ended {
		d.Publish(Event{Type: Unban, Time: dec.End(), IP: target(dec.Target), Jail: dec.Jail, Scenario: dec.Scenario,
			Reason: "expired", Origin: dec.Origin, Host: d.host})
	}
}

// Run runs every action until ctx ends, then gives each a moment (its
// timeout) to finish what is queued and flush.
func (d *Dispatcher) Run(ctx context.Context) {
	if d == nil {
		return
	}
	var wg sync.WaitGroup
	for _, a := range d.actions {
		wg.Add(1)
		go func() { defer wg.Done(); d.run(ctx, a) }()
	}
	if d.unbans {
		t := time.NewTicker(time.Second)
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-t.C:
				d.expire(d.now())
			}
		}
		t.Stop()
	}
	wg.Wait()
}

func (d *Dispatcher) run(ctx context.Context, a *Action) {
	fl, _ := a.Sink.(Flusher)
	var tick <-chan time.Time
	if fl != nil {
		t := time.NewTicker(fl.Interval())
		defer t.Stop()
		tick = t.C
	}
	defer func() {
		// Drain and flush on the way out, bounded by the timeout.
		end, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.Timeout)
		defer cancel()
		for len(a.ch) > 0 && end.Err() == nil {
			d.handle(end, a, <-a.ch)
		}
		if fl != nil {
			d.flush(end, a, fl)
		}
		if c, ok := a.Sink.(Closer); ok {
			c.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			d.flush(ctx, a, fl)
		case ev := <-a.ch:
			d.handle(ctx, a, ev)
		}
	}
}

// handle runs the sink on ev, and on the events waiting behind it when
// the sink takes batches.
func (d *Dispatcher) handle(ctx context.Context, a *Action, ev Event) {
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	evs := []Event{ev}
	var err error
	if b, ok := a.Sink.(Batcher); ok {
		for len(evs) < 256 && len(a.ch) > 0 {
			evs = append(evs, <-a.ch)
		}
		err = b.HandleBatch(ctx, evs)
	} else {
		err = a.Sink.Handle(ctx, ev)
	}
	if err != nil {
		a.failed.Add(uint64(len(evs)))
		d.log.Warn("action failed", "action", a.Name, "type", a.Type, "event", ev.Type, "addr", ev.IP, "events", len(evs), "err", err)
		return
	}
	a.done.Add(uint64(len(evs)))
}

func (d *Dispatcher) flush(ctx context.Context, a *Action, fl Flusher) {
	if n, err := fl.Flush(ctx); err != nil {
		a.failed.Add(uint64(n))
		d.log.Warn("action failed", "action", a.Name, "type", a.Type, "events", n, "err", err)
	}
}

// Stats returns every action's counters.
func (d *Dispatcher) Stats() []Stats {
	if d == nil {
		return nil
	}
	out := make([]Stats, 0, len(d.actions))
	for _, a := range d.actions {
		out = append(out, Stats{Name: a.Name, Type: a.Type, Queued: a.queued.Load(), Done: a.done.Load(),
			Failed: a.failed.Load(), Dropped: a.dropped.Load(), Waiting: len(a.ch)})
	}
	return out
}

// expiries tracks when bans end: a map for the latest ban of each
// target, a heap to find the next to end (entries whose target was banned
// again or lifted are skipped when they come up).
type expiries struct {
	ends map[netip.Prefix]event.Decision
	h    endHeap
}

func (x *expiries) track(d event.Decision) {
	x.ends[d.Target] = d
	heap.Push(&x.h, endEntry{end: d.End(), target: d.Target})
}

func (x *expiries) due(now time.Time) []event.Decision {
	var out []event.Decision
	for x.h.Len() > 0 && !x.h[0].end.After(now) {
		e := heap.Pop(&x.h).(endEntry)
		if d, ok := x.ends[e.target]; ok && d.End().Equal(e.end) {
			delete(x.ends, e.target)
			out = append(out, d)
		}
	}
	return out
}

type endEntry struct {
	end    time.Time
	target netip.Prefix
}

type endHeap []endEntry

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return h[i].end.Before(h[j].end) }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(endEntry)) }
func (h *endHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
