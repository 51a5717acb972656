package daemon

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
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
	// Stages times each stage into ReplayStats.Stages. One line in
	// stageSample is timed and the times scaled up: reading the clock
	// around every stage of every line would cost a fifth of the run.
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
		ok := fr.advance()
		clock.lap(&st.Stages.Read)
		if ok {
			heap.Push(h, fr)
		}
		if fr.err != nil {
			return st, fr.err
		}
	}
	var lastTick, nextTick time.Time // nextTick: lastTick + replayTick, once a line has a time
	nextProgress := ReplayProgressEvery
	gov := newHeapGovernor()
	defer gov.release()
	for h.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if st.Lines >= nextProgress {
			gov.check()
			if opt.Progress != nil {
				opt.Progress(st)
			}
			nextProgress = st.Lines + ReplayProgressEvery
		}
		if opt.Stages {
			if clock.cost == 0 {
				clock.calibrate()
				lr.clockCost = clock.cost
			}
			clock.sample(st.Lines, lr, &st.Stages)
		}
		fr := (*h)[0]
		l := fr.cur
		if t := l.Time; !t.IsZero() && !t.Before(nextTick) {
			decide(p.Engine.Tick(t))
			clock.lap(&st.Stages.Engine)
			lastTick, nextTick = t, t.Add(replayTick)
		}
		if _, n, ds := lr.observe(&l, nil); n > 0 {
			st.Events += n
			decide(ds)
		}
		clock.lap(&st.Stages.Engine)
		ok := fr.advance()
		clock.lap(&st.Stages.Read)
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
			if fr.err != nil {
				return st, fr.err
			}
		}
	}
	// Deferred bans decided near the end take effect after the last line,
	// as they would have in the daemon.
	if !lastTick.IsZero() {
		decide(p.Engine.Tick(lastTick.Add(time.Hour)))
	}
	if opt.Stages {
		sg := &st.Stages
		sg.Read, sg.Filter, sg.Engine, sg.Output = sg.Read*stageSample, sg.Filter*stageSample, sg.Engine*stageSample, sg.Output*stageSample
	}
	return st, nil
}

// replayTick is how often replay advances the engine's clock between
// events (the daemon: every second). It changes nothing in the decisions
// or their order: each event first takes effect the bans due by its time
// (Engine.Observe), so a Tick only matters where no event comes; and
// entries expire a little later, which matters only to a table so full it
// evicts.
const replayTick = time.Minute

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

// sample turns the clock on for one line in stageSample (lines counted
// so far: n), and the filters' timing with it.
func (c *stageClock) sample(n int, lr *LineRouter, to *StageTimes) {
	c.on = n%stageSample == 0
	lr.stages = nil
	if c.on {
		c.last = time.Now()
		lr.stages = to
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
		l, err := fr.parser.Parse(rec)
		if err != nil {
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
		fr.cur = l
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
