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
}

// ReplayProgressEvery is how many lines a replay reads between two calls
// of its progress function.
const ReplayProgressEvery = 1 << 13

// Replay runs historical logs through the pipeline, using the logs' own
// time stamps as the clock, and calls emit for every decision in the order
// they took effect. Several files are merged by time stamp so that, say,
// auth.log and mail.log interleave as they happened. "-" reads stdin.
// progress, unless nil, is called with the counts so far every
// ReplayProgressEvery lines. Errors name the file, not the replay: the
// caller says what it was doing.
func Replay(ctx context.Context, p *Pipeline, parser *logline.Parser, files []string, emit func(event.Decision), progress func(ReplayStats)) (ReplayStats, error) {
	var st ReplayStats
	lr, err := p.Matchers(nil)
	if err != nil {
		return st, err
	}
	decide := func(ds []event.Decision) {
		st.Decisions += len(ds)
		for _, d := range ds {
			emit(d)
		}
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
		fr := &fileReader{name: name, order: i, parser: parser, stats: &st, lines: source.NewLineReader(r)}
		if fr.advance() {
			heap.Push(h, fr)
		}
		if fr.err != nil {
			return st, fr.err
		}
	}
	var lastTick time.Time
	nextProgress := ReplayProgressEvery
	for h.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if progress != nil && st.Lines >= nextProgress {
			progress(st)
			nextProgress = st.Lines + ReplayProgressEvery
		}
		fr := (*h)[0]
		l := fr.cur
		if t := l.Time; !t.IsZero() && t.Sub(lastTick) >= time.Second {
			decide(p.Engine.Tick(t))
			lastTick = t
		}
		if ev, n, ok := lr.Event(&l); ok {
			st.Events += n
			for range n {
				decide(p.Engine.Observe(ev))
			}
		}
		if fr.advance() {
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
	return st, nil
}

// fileReader holds one file's next parsed line.
type fileReader struct {
	name   string
	order  int
	parser *logline.Parser
	lines  *source.LineReader
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
		l, err := fr.parser.Parse(string(rec))
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
