package daemon

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/logline"
	"github.com/rampart-dev/rampart/internal/source"
)

// ReplayStats counts what a replay read.
type ReplayStats struct {
	Lines, Skipped, Events, Decisions int
	Stages                            StageTimes // with ReplayOptions.Stages
}

// StageTimes is the time a replay spent in each stage of the pipeline.
// Replay runs on one goroutine, so each is the CPU time of its stage too.
type StageTimes struct {
	Read   time.Duration // reading lines and parsing their envelope
	Filter time.Duration // the filters: line to event
	Engine time.Duration // the engine: events and the clock to decisions
	Output time.Duration // the caller's emit
}

// ReplayOptions are Replay's optional parts.
type ReplayOptions struct {
	// Progress, unless nil, is called with the counts so far every
	// ReplayProgressEvery lines.
	Progress func(ReplayStats)
	// Stages times each stage into ReplayStats.Stages. Reading and the
	// filters are timed for one line in stageSample and the times scaled
	// up (reading the clock around every stage of every line would cost a
	// fifth of the run); the engine and emit are timed a batch at a time.
	Stages bool
}

// ReplayProgressEvery is how many lines a replay reads between two calls
// of its progress function.
const ReplayProgressEvery = 1 << 13

// Replay runs historical logs through the pipeline, using the logs' own
// time stamps as the clock, and calls emit for every decision in the order
// they took effect. Several files are merged by time stamp so that, say,
// auth.log and mail.log interleave as they happened. "-" reads stdin.
// Lines go through the daemon's own path (LineRouter). Errors name the
// file, not the replay: the caller says what it was doing.
//
// Year-less stamps in the future are judged against the time Replay
// started (parser.Now, when set, wins), not the clock at every line.
func Replay(ctx context.Context, p *Pipeline, parser *logline.Parser, files []string, emit func(event.Decision), opt ReplayOptions) (ReplayStats, error) {
	var st ReplayStats
	lr, err := p.Matchers(nil)
	if err != nil {
		return st, err
	}
	var clock stageClock
	if parser.Now == nil {
		started := time.Now()
		parser = &logline.Parser{Year: parser.Year, Location: parser.Location, Now: func() time.Time { return started }}
	}
	decide := func(ds []event.Decision) {
		st.Decisions += len(ds)
		if len(ds) == 0 {
			return
		}
		clock.lap(&st.Stages.Engine)
		for _, d := range ds {
			emit(d)
		}
		clock.lap(&st.Stages.Output)
	}
	h := &lineHeap{}
	for i, name := range files {
		var r io.Reader = os.Stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return st, err
			}
			defer f.Close()
			r = f
		}
		fr := &fileReader{name: name, order: i, parser: parser, stats: &st, lines: source.NewLines(r)}
		if fr.advance() {
			heap.Push(h, fr)
		}
		if fr.err != nil {
			return st, fr.err
		}
	}
	if opt.Stages {
		clock.calibrate()
	}
	var b replayBatch
	apply := func() {
		clock.start(opt.Stages)
		for _, bl := range b.lines {
			if !bl.tick.IsZero() {
				decide(p.Engine.Tick(bl.tick))
			}
			if found := b.evs[bl.from:bl.to]; len(found) > 0 {
				st.Events += found[0].n
				b.ds = lr.apply(b.ds[:0], found, nil)
				decide(b.ds)
			}
		}
		clock.lap(&st.Stages.Engine)
		b.lines, b.evs = b.lines[:0], b.evs[:0]
	}
	var sampled StageTimes // reading and the filters, for one line in stageSample
	// The engine ticks at the first line with a time, then once a line is
	// replayTick past the last tick. The next tick is kept as seconds and
	// nanoseconds: compared inline, where time.Time.Before is a call (30
	// instructions a line).
	var lastTick time.Time
	nextSec, nextNsec := int64(math.MinInt64), 0
	nextProgress := ReplayProgressEvery
	gov := newHeapGovernor()
	defer gov.release()
	for n := 0; h.Len() > 0; n++ {
		if n%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		if st.Lines >= nextProgress {
			apply()
			gov.check()
			if opt.Progress != nil {
				opt.Progress(st)
			}
			nextProgress = st.Lines + ReplayProgressEvery
		}
		clock.start(opt.Stages && st.Lines%stageSample == 0)
		fr := (*h)[0]
		l := &fr.cur // matched before advance replaces it; events keep its strings, not it
		bl := batchLine{from: len(b.evs)}
		if t := l.Time; !t.IsZero() {
			if sec := t.Unix(); sec > nextSec || sec == nextSec && t.Nanosecond() >= nextNsec {
				bl.tick, lastTick = t, t
				next := t.Add(replayTick)
				nextSec, nextNsec = next.Unix(), next.Nanosecond()
			}
		}
		b.evs = lr.match(l, b.evs)
		if bl.to = len(b.evs); bl.to > bl.from || !bl.tick.IsZero() {
			b.lines = append(b.lines, bl)
		}
		clock.lap(&sampled.Filter)
		ok := fr.advance()
		clock.lap(&sampled.Read)
		if ok {
			if h.Len() > 1 { // one file's reader stays on top
				heap.Fix(h, 0)
			}
		} else {
			heap.Pop(h)
			if fr.err != nil {
				apply()
				return st, fr.err
			}
		}
		if len(b.lines) == replayBatchLines {
			apply()
		}
	}
	apply()
	// Deferred bans decided near the end take effect after the last line,
	// as they would have in the daemon.
	if !lastTick.IsZero() {
		clock.start(opt.Stages)
		decide(p.Engine.Tick(lastTick.Add(time.Hour)))
		clock.lap(&st.Stages.Engine)
	}
	st.Stages.Read = sampled.Read * stageSample
	st.Stages.Filter = sampled.Filter * stageSample
	return st, nil
}

// replayTick is how often replay advances the engine's clock between
// events (the daemon: every second). It changes nothing in the decisions
// or their order: each event first takes effect the bans due by its time
// (Engine.Observe), so a Tick only matters where no event comes; and
// entries expire a little later, which matters only to a table so full it
// evicts.
const replayTick = time.Minute

// replayBatch holds the filters' events for the lines read since the
// engine last ran. Replay runs up to replayBatchLines lines that have
// events (or move the clock) through the filters, then all their events
// through the engine, rather than one line through both at a time: the
// code of each stage then stays in the processor's instruction cache over
// the batch instead of evicting the other's at every line (simulated
// first-level instruction cache misses halve, and data cache misses fall
// by a fifth). The filters never look at the engine, so the events, the
// decisions and their order are the same.
type replayBatch struct {
	lines []batchLine
	evs   []jailEvent
	ds    []event.Decision // one line's decisions, emitted before the next line's
}

// batchLine is a line of a batch that the engine has work for.
type batchLine struct {
	tick     time.Time // first advance the engine's clock to it (zero: no)
	from, to int       // the line's events: evs[from:to]
}

const replayBatchLines = 32

// ctxEvery: replay checks for cancellation once in this many lines (a
// check costs a call through an interface and a lock).
const ctxEvery = 64

// stageSample: one line in this many is timed stage by stage.
const stageSample = 8

// stageClock charges the time since its last lap to a stage, while on;
// off, a lap costs a branch.
type stageClock struct {
	on   bool
	last time.Time
	cost time.Duration // of one clock read, taken off every lap
}

// calibrate measures what a clock read costs.
func (c *stageClock) calibrate() {
	const n = 10_000
	start := time.Now()
	for range n {
		c.last = time.Now()
	}
	c.cost = c.last.Sub(start) / n
}

// start turns the clock on, from now, or off.
func (c *stageClock) start(on bool) {
	c.on = on
	if on {
		c.last = time.Now()
	}
}

// lap is small enough to be inlined: off, it costs its caller a branch.
func (c *stageClock) lap(to *time.Duration) {
	if c.on {
		c.charge(to)
	}
}

func (c *stageClock) charge(to *time.Duration) {
	now := time.Now()
	*to += max(0, now.Sub(c.last)-c.cost)
	c.last = now
}

// fileReader holds one file's next parsed line.
type fileReader struct {
	name   string
	order  int
	parser *logline.Parser
	lines  *source.Lines
	cur    logline.Line
	last   time.Time // time of the previous line, for lines without a stamp
	err    error
	stats  *ReplayStats
}

// advance reads the next usable line; false at the end or on error.
func (fr *fileReader) advance() bool {
	for {
		rec, tooLong, err := fr.lines.Next()
		if err == io.EOF {
			return false
		}
		if err != nil {
			fr.err = fmt.Errorf("read %s: %w", fr.name, err)
			return false
		}
		fr.stats.Lines++
		if tooLong {
			fr.stats.Skipped++
			continue
		}
		// In place: the line matched last is done with (see Replay).
		l := &fr.cur
		if err := fr.parser.ParseInto(l, rec); err != nil {
			if !errors.Is(err, logline.ErrEmpty) {
				fr.stats.Skipped++
			}
			continue
		}
		if l.Time.IsZero() {
			l.Time = fr.last
		} else {
			fr.last = l.Time
		}
		l.Origin = fr.name
		return true
	}
}

// lineHeap orders files by the time of their next line, then by file order.
type lineHeap []*fileReader

func (h lineHeap) Len() int { return len(h) }
func (h lineHeap) Less(i, j int) bool {
	ti, tj := h[i].cur.Time, h[j].cur.Time
	if !ti.Equal(tj) {
		return ti.Before(tj)
	}
	return h[i].order < h[j].order
}
func (h lineHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *lineHeap) Push(x any)   { *h = append(*h, x.(*fileReader)) }
func (h *lineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
