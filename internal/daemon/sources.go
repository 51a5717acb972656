package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/logline"
	"github.com/rampart-dev/rampart/internal/source"
)

// sourcePlan is one source to run and the jails that read it.
type sourcePlan struct {
	key   string // "file:/var/log/auth.log", "journal:sshd", "syslog"; also the store's position key
	jails []string
	file  string
	jrnl  *config.Journal
	udp   string // syslog listen addresses
	tcp   string
}

// same reports whether a running source for p can go on serving q: the
// same file, the same journal selection, the same listen addresses. Only
// the jails it feeds may differ.
func (p *sourcePlan) same(q *sourcePlan) bool {
	return p.key == q.key && p.file == q.file && p.udp == q.udp && p.tcp == q.tcp &&
		(p.jrnl == nil) == (q.jrnl == nil) &&
		(p.jrnl == nil || slices.Equal(p.jrnl.Units, q.jrnl.Units) && slices.Equal(p.jrnl.Identifiers, q.jrnl.Identifiers) &&
			slices.Equal(p.jrnl.Matches, q.jrnl.Matches) && p.jrnl.Directory == q.jrnl.Directory)
}

// journaldRunning reports whether journald is there to be read.
func journaldRunning() bool {
	if _, err := exec.LookPath("journalctl"); err != nil {
		return false
	}
	_, err := os.Stat("/run/systemd/journal/socket")
	return err == nil
}

// planSources groups the enabled jails by the sources they read. A jail
// naming both journal and files reads the journal when journald runs (or
// the journal is a directory's) and the files otherwise, so one
// configuration serves both kinds of host.
func planSources(cfg *config.Config, jails []string, haveJournal bool) []*sourcePlan {
	byKey := map[string]*sourcePlan{}
	var order []string
	add := func(key string, p sourcePlan, jail string) {
		sp, ok := byKey[key]
		if !ok {
			sp = &p
			sp.key = key
			byKey[key] = sp
			order = append(order, key)
		}
		if !slices.Contains(sp.jails, jail) {
			sp.jails = append(sp.jails, jail)
		}
	}
	for _, name := range jails {
		j := cfg.Jails[name]
		useJournal := j.Journal != nil && (haveJournal || j.Journal.Directory != "" || len(j.Files) == 0)
		if useJournal {
			add("journal:"+name, sourcePlan{jrnl: j.Journal}, name)
		} else {
			for _, f := range j.Files {
				add("file:"+f, sourcePlan{file: f}, name)
			}
		}
		if j.Syslog {
			add("syslog", sourcePlan{udp: cfg.Syslog.UDP, tcp: cfg.Syslog.TCP}, name)
		}
	}
	out := make([]*sourcePlan, 0, len(order))
	for _, k := range order {
		out = append(out, byKey[k])
	}
	return out
}

// describe says where a plan reads, for logs and status.
func (sp *sourcePlan) describe() string {
	switch {
	case sp.file != "":
		return sp.file
	case sp.jrnl != nil:
		var parts []string
		for _, u := range sp.jrnl.Units {
			parts = append(parts, "-u "+u)
		}
		for _, t := range sp.jrnl.Identifiers {
			parts = append(parts, "-t "+t)
		}
		parts = append(parts, sp.jrnl.Matches...)
		if d := sp.jrnl.Directory; d != "" {
			parts = append(parts, "in "+d)
		}
		return "journald " + strings.Join(parts, " ")
	default:
		return "syslog listener"
	}
}

// positioned is a running source whose position can be saved.
type positioned interface {
	position() string
}

type fileSource struct{ *source.File }

func (f fileSource) position() string { return f.Position().String() }

type journalSource struct{ *source.Journal }

func (j journalSource) position() string { return j.Cursor() }

// ParsePosition reads back a source.Position written by its String method.
func ParsePosition(s string) (source.Position, error) {
	var p source.Position
	_, err := fmt.Sscanf(s, "dev=%d inode=%d offset=%d head=%d:%x", &p.Dev, &p.Inode, &p.Offset, &p.HeadLen, &p.HeadHash)
	if err != nil {
		return p, fmt.Errorf("bad file position %q: %w", s, err)
	}
	return p, nil
}

// newParser returns the envelope parser live sources use.
func newParser() *logline.Parser { return &logline.Parser{} }

// runningSource is one source being read. A reload that keeps the source
// (see sourcePlan.same) keeps it running, with its counters and position,
// and only gives it a new router: no line is read twice or skipped.
type runningSource struct {
	plan    *sourcePlan
	src     source.Source
	stats   interface{ Stats() source.Stats }
	problem func() string // why it is not reading now; nil when it cannot tell
	pos     positioned    // nil for sources without a position
	syslog  *source.Syslog
	// handover: a syslog listener that binds only once the one it replaces
	// has closed (it needs one of its addresses).
	handover bool

	jails atomic.Pointer[[]string] // the jails it feeds, for status

	router  atomic.Pointer[LineRouter] // the jails it feeds; swapped by reloads
	maxFind atomic.Int64               // lines older than this are stale
	stale   atomic.Uint64              // lines too old to count

	stop    context.CancelFunc // nil until started
	done    chan struct{}      // closed when Run returned
	stopped atomic.Pointer[string]
}

// prepareSource makes the source for plan without starting it. Only a
// syslog listener can fail here (its addresses are bound now, so that a
// reload can refuse an address the host does not have before it stops
// anything). A file resumes from its saved position, if any.
func (d *Daemon) prepareSource(plan *sourcePlan, positions map[string]string) (*runningSource, error) {
	rs := &runningSource{plan: plan}
	parser := newParser()
	switch {
	case plan.file != "":
		f := &source.File{Path: plan.file, Parser: parser, Logger: d.log}
		if s, ok := positions[plan.key]; ok {
			if p, err := ParsePosition(s); err == nil {
				f.Start = &p
			}
		}
		rs.src, rs.stats, rs.pos, rs.problem = f, f, fileSource{f}, f.Problem
	case plan.jrnl != nil:
		j := &source.Journal{Units: plan.jrnl.Units, Identifiers: plan.jrnl.Identifiers, Matches: plan.jrnl.Matches, AfterCursor: positions[plan.key], Parser: parser, Logger: d.log}
		if dir := plan.jrnl.Directory; dir != "" {
			j.Args = []string{"--directory=" + dir}
		}
		rs.src, rs.stats, rs.pos, rs.problem = j, j, journalSource{j}, j.Problem
	default:
		s, err := source.ListenSyslog(plan.udp, plan.tcp)
		if err != nil {
			return nil, err
		}
		s.Parser, s.Logger, s.Budget = parser, d.log, d.peers
		rs.src, rs.stats, rs.syslog = s, s, s
	}
	return rs, nil
}

// start runs the source until ctx ends or stop is called.
func (d *Daemon) start(ctx context.Context, rs *runningSource) {
	sctx, stop := context.WithCancel(ctx)
	rs.stop, rs.done = stop, make(chan struct{})
	d.log.Info("reading", "source", rs.plan.describe(), "jails", fmt.Sprint(rs.feeds()))
	d.srcWG.Add(1)
	go func() {
		defer d.srcWG.Done()
		defer close(rs.done)
		err := rs.src.Run(sctx, func(l logline.Line) {
			d.line(rs, &l)
			d.apply.throttle(sctx)
		})
		if sctx.Err() == nil {
			if err == nil {
				err = errors.New("ended")
			}
			msg := err.Error()
			rs.stopped.Store(&msg)
		}
	}()
}

// feeds returns the jails the source feeds.
func (rs *runningSource) feeds() []string {
	if j := rs.jails.Load(); j != nil {
		return *j
	}
	return rs.plan.jails
}

// halt stops a started source and waits for it; a source never started
// has its sockets closed.
func (rs *runningSource) halt() {
	if rs.stop == nil {
		if rs.syslog != nil {
			rs.syslog.Close()
		}
		return
	}
	rs.stop()
	<-rs.done
}

// alive reports whether the source was started and has not stopped.
func (rs *runningSource) alive() bool {
	if rs.done == nil {
		return false
	}
	select {
	case <-rs.done:
		return false
	default:
		return true
	}
}

// line handles one live line: filters, engine, then the applier.
func (d *Daemon) line(rs *runningSource, l *logline.Line) {
	now := l.Read
	if now.IsZero() {
		now = time.Now()
	}
	if l.Time.IsZero() || l.Time.After(now.Add(time.Minute)) {
		l.Time = now
	} else if now.Sub(l.Time) > time.Duration(rs.maxFind.Load()) {
		// A backlog line too old to matter for any window.
		rs.stale.Add(1)
		return
	}
	absorbed := false
	ev, n, ds := rs.router.Load().observe(l, func(ev event.Event) bool { absorbed = d.live.absorb(ev, now); return absorbed })
	// The trap learns user names from every line, those a policy server
	// counted already included (it reports no "unknown user").
	d.trap.observe(ev, n)
	if absorbed {
		n-- // a policy server reported it, and it was counted then
	}
	d.insight.Observe(ev, n)
	if n > 0 && ev.Kind.Good() && ev.Addr.IsValid() {
		d.apply.knownGood(ev)
	}
	d.apply.submit(ds)
	d.fleet.observed(ev, ds)
	d.feeds.observed(ev, ds)
}
