// Package filter turns log Lines into Events. A filter is data: a name, the
// programs whose lines it reads, modes, and rules whose patterns (see
// pattern.go) capture the client address and the user. Built-in filters live
// in filters/*.toml and are compiled once; a Matcher applies one filter in one
// mode, and a Router sends each line only to the filters of its program.
package filter

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/logline"
)

// kindContext marks a rule that emits nothing: it remembers the client (and
// user) of a session for later lines of that session that do not name it.
const kindContext event.Kind = 0

// Filter is a compiled filter definition. It is immutable and safe to share.
type Filter struct {
	Name        string
	Service     string
	Description string
	Programs    []string // program names; a trailing '*' matches a prefix; empty: any
	Modes       []string // the first is the default
	Origin      string   // the file it was read from; "" for a built-in filter
	rules       []rule
	engine      Engine // matches lines instead of rules (see NewEngineFilter)
	kinds       []event.Kind
}

type rule struct {
	kind  event.Kind // kindContext for context rules
	modes []string   // empty: every mode
	pats  []*pattern
}

// Match is what a filter found in one line.
type Match struct {
	Service string
	Kind    event.Kind
	Addr    netip.Addr // unmapped; invalid when the log named a host, not an address
	Host    string     // the client as written in the log
	User    string
	Count   int // events this line stands for: 1, or more when it completed earlier lines of its session
	// Time is the line's time as the filter read it, for lines whose
	// envelope the line parser did not date (an Engine's own date formats);
	// zero otherwise.
	Time time.Time
}

// DefaultMode returns the mode used when none is asked for.
func (f *Filter) DefaultMode() string {
	if len(f.Modes) == 0 {
		return ""
	}
	return f.Modes[0]
}

// MatchesProgram reports whether the filter reads lines of program prog.
// Lines without a program (web server logs, exim's own log) go to every filter.
func (f *Filter) MatchesProgram(prog string) bool {
	if len(f.Programs) == 0 || prog == "" {
		return true
	}
	for _, p := range f.Programs {
		if base, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(prog, base) {
				return true
			}
		} else if p == prog {
			return true
		}
	}
	return false
}

// Matcher applies one filter in one mode. It keeps per-session context (which
// client a pid serves) and is therefore not safe for concurrent use; give
// each reading goroutine its own.
type Matcher struct {
	f     *Filter
	mode  string
	rules []activeRule
	disp  *dispatch // the rules' patterns by first byte (see dispatch.go)
	sess  sessions
	eager bool        // match context lines at once (tests compare; see later)
	lm    LineMatcher // for a filter backed by an Engine
	// ext holds matchExternal's copies, allocated once per Matcher (a
	// Matcher is used by one goroutine).
	ext *externalScratch
}

type externalScratch struct {
	line logline.Line
	out  Match
}

type activeRule struct {
	kind event.Kind
	pats []*pattern
}

// NewMatcher returns a Matcher for mode, or the default mode when mode is "".
// Mode "aggressive" enables every rule of the filter. Filters without modes
// accept and ignore any mode.
func (f *Filter) NewMatcher(mode string) (*Matcher, error) {
	if mode == "" {
		mode = f.DefaultMode()
	}
	if len(f.Modes) > 0 && mode != "aggressive" && !slices.Contains(f.Modes, mode) {
		return nil, fmt.Errorf("filter %q has no mode %q (modes: %s)", f.Name, mode, strings.Join(f.Modes, ", "))
	}
	m := &Matcher{f: f, mode: mode}
	if f.engine != nil {
		lm, err := f.engine.NewLineMatcher(mode)
		if err != nil {
			return nil, err
		}
		m.lm = lm
		return m, nil
	}
	for _, r := range f.rules {
		if len(f.Modes) > 0 && len(r.modes) > 0 && mode != "aggressive" && !slices.Contains(r.modes, mode) {
			continue
		}
		m.rules = append(m.rules, activeRule{kind: r.kind, pats: r.pats})
	}
	m.disp = newDispatch(m.rules)
	return m, nil
}

// Filter returns the filter the Matcher applies.
func (m *Matcher) Filter() *Filter { return m.f }

// Mode returns the mode the Matcher applies.
func (m *Matcher) Mode() string { return m.mode }

// Match applies the filter to l. Rules are tried in order; the first rule
// whose pattern matches decides. ok is false when the line yields no event
// (no rule matched, a context rule matched, or the client is not known yet).
// The Match's strings point into l; the Matcher copies what it remembers,
// so l's memory may be reused once Match returns.
func (m *Matcher) Match(l *logline.Line) (Match, bool) {
	var mt Match
	if !m.f.MatchesProgram(l.Program) {
		return mt, false
	}
	ok := m.match(l, &mt)
	return mt, ok
}

// match is Match without the program check. It fills *out only when it
// returns true: the Match is passed down by pointer, not returned up
// through the Router's calls, as it is 88 bytes.
func (m *Matcher) match(l *logline.Line, out *Match) bool {
	if m.lm != nil {
		return m.matchExternal(l, out)
	}
	msg := trimSpace(l.Message)
	cands := m.disp.candidates(msg)
	keys := msgKeys{scan: m.disp.keys, msg: msg}
	for i := range cands {
		cand := &cands[i]
		if len(l.Message) < cand.pat.minLen || !cand.mayMatch(msg, &keys) {
			continue
		}
		if cand.later && !m.eager && m.later(l, msg, cands[i+1:], &keys) {
			return false
		}
		var c capture
		if cand.pat.match(msg, &c) {
			return m.decide(l, cand.kind, cand.pat, &c, out)
		}
	}
	return false
}

// later decides whether a line whose remaining candidates (rest, after one
// that may match) are all context rules can go without matching now. A
// third of what the filters match on an attacked server is such lines
// ("Received disconnect", "Disconnected from ... [preauth]"), and most of
// them are never needed: a context line only tells later lines of its
// session who the client and the user are. It is taken up where its effect is the same
// later as now:
//   - a line without a pid has no session, and a context rule then has no
//     effect at all: it is dropped;
//   - a line of a session that exists and holds no events waiting for their
//     client emits nothing and only sets the session's client and user: it
//     is kept in the session (a copy, after the others kept) and matched
//     when the session is next read (see catchUp), or forgotten with the
//     session. An attacker's connection usually ends with two such lines
//     and nothing after them.
//
// Otherwise (no session yet, which the match would make, events waiting
// that it would name, or a line too long to keep) it is matched now.
// Context rules that sum up a session or count user changes are never
// left for later (candidate.later).
func (m *Matcher) later(l *logline.Line, msg string, rest []candidate, keys *msgKeys) bool {
	for i := range rest {
		if c := &rest[i]; !c.later && c.mayMatch(msg, keys) {
			return false
		}
	}
	if l.PID == 0 {
		return true
	}
	if len(msg) > maxWaiting-2 {
		return false
	}
	s := m.sess.get(sessionKey{host: l.Host, prog: l.Program, pid: l.PID}, false)
	if s == nil || len(s.pending) > 0 {
		return false
	}
	if len(s.waiting)+2+len(msg) > maxWaiting {
		m.catchUp(s)
	}
	if need := len(s.waiting) + 2 + len(msg); cap(s.waiting) < need {
		// Exactly what is needed: thousands of sessions keep lines, and
		// append's doubling would leave half of each buffer unused.
		s.waiting = append(make([]byte, 0, need), s.waiting...)
	}
	s.waiting = binary.LittleEndian.AppendUint16(s.waiting, uint16(len(msg)))
	s.waiting = append(s.waiting, msg...)
	return true
}

// maxWaiting bounds the context lines a session keeps for later, in bytes
// with a length of two bytes each: a session full catches up before it
// keeps another, and a longer line is matched at once. An attacker's
// usual two lines take 150-250 bytes; the bound holds what hostile ones
// (a client's disconnect text is its own) can make a Matcher keep to
// 2 MiB.
const maxWaiting = 512

// catchUp matches the context lines s kept for later, in order, and takes
// the client and user each names, as decide would have when it was read.
func (m *Matcher) catchUp(s *session) {
	w := s.waiting
	s.waiting = s.waiting[:0]
	for len(w) > 0 {
		n := int(binary.LittleEndian.Uint16(w))
		// The copy is not changed while the string is in use, and take
		// copies what the session keeps.
		m.takeLater(s, unsafe.String(unsafe.SliceData(w[2:]), n))
		w = w[2+n:]
	}
}

// takeLater matches one context line kept for later.
func (m *Matcher) takeLater(s *session, msg string) {
	cands := m.disp.candidates(msg)
	keys := msgKeys{scan: m.disp.keys, msg: msg}
	for i := range cands {
		cand := &cands[i]
		var c capture
		if len(msg) >= cand.pat.minLen && cand.mayMatch(msg, &keys) && cand.pat.match(msg, &c) {
			s.take(&c)
			return
		}
	}
}

// matchExternal hands the line to an Engine's matcher through copies: l
// and out passed through an interface call would escape to the heap for
// every filter, built-in ones included (the compiler cannot see where the
// call keeps them), an allocation per line on the hot path. The copies
// live in the Matcher, made at its first external line.
func (m *Matcher) matchExternal(l *logline.Line, out *Match) bool {
	if m.ext == nil {
		m.ext = new(externalScratch)
	}
	x := m.ext
	x.line, x.out = *l, Match{}
	ok := m.lm.Match(&x.line, &x.out)
	if ok {
		*out = x.out
	}
	x.line = logline.Line{} // hold no line's memory
	return ok
}

// trimSpace is strings.TrimRight(s, " \t"), which builds its set of
// bytes on every call.
func trimSpace(s string) string {
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// decide turns a rule's capture into a Match, consulting and updating the
// session context for lines that do not name their client.
//
// A summary rule's line sums up its session (postfix's "disconnect from ...
// auth=0/1"): it counts only when no earlier line of the session counted,
// so one failed AUTH is not counted twice, and the session's count starts
// again after it.
// It fills *out only when it returns true.
//
// A user-change rule's failure (pam_unix naming the user tried) counts
// only once its session has tried two different users: then it counts for
// every attempt held back before. A successful login of a user-change rule
// for a user the session had not tried counts as a failure (the client
// went through several accounts), as fail2ban's sshd filter has it.
func (m *Matcher) decide(l *logline.Line, kind event.Kind, pat *pattern, c *capture, out *Match) bool {
	summary := pat.summary
	key := sessionKey{host: l.Host, prog: l.Program, pid: l.PID}
	hasSession := l.PID != 0
	var s *session
	if hasSession {
		s = m.sess.get(key, c.host != "" || kind != kindContext)
	}
	if s != nil {
		m.catchUp(s)
		s.take(c)
	}
	count := 0
	if kind != kindContext {
		count = max(1, l.Repeats) // rsyslog's "message repeated N times"
	}
	if pat.userChange && s != nil {
		switch {
		case kind.Failure():
			s.try(c.user)
			if len(s.tried) < 2 {
				s.held++
				return false
			}
			count += s.held
			s.held = 0
		case len(s.tried) > 0 && !slices.Contains(s.tried, c.user):
			kind = event.AuthFailure
			count += s.held
			s.held = 0
			s.try(c.user)
		default:
			s.held = 0
		}
	}
	if c.host == "" {
		// The client is named by a later line of this session.
		if s != nil && kind != kindContext {
			s.addPending(kind)
		}
		return false
	}
	if s != nil && len(s.pending) > 0 {
		if kind == kindContext {
			kind = s.pending[0]
		}
		count += len(s.pending)
		s.pending = s.pending[:0]
	}
	if s != nil {
		if summary {
			counted := s.counted
			s.counted = 0
			if counted > 0 {
				return false
			}
		} else {
			s.counted += count
		}
	}
	if count == 0 {
		return false
	}
	*out = Match{Service: m.f.Service, Kind: kind, Host: c.host, User: c.user, Count: count}
	// c.addr is zero unless the pattern's own host was parsed: a host taken
	// from the session above replaced an empty one, which has no address.
	if a, ok := parseAddr(c.host, c.addr); ok && a.Zone() == "" {
		out.Addr = a.Unmap()
	}
	return true
}

// Event builds the Event a Match stands for on line l.
func (mt Match) Event(l *logline.Line) event.Event {
	var e event.Event
	mt.EventInto(&e, l)
	return e
}

// EventInto is Event into *e, every field of which it sets (Jail to ""):
// replay writes each event straight into its batch.
func (mt *Match) EventInto(e *event.Event, l *logline.Line) {
	e.Time = l.Time
	if e.Time.IsZero() {
		e.Time = mt.Time
	}
	e.Service, e.Kind, e.Addr, e.Host, e.User = mt.Service, mt.Kind, mt.Addr, mt.Host, mt.User
	e.Origin, e.Jail = l.Origin, ""
}

type sessionKey struct {
	host, prog string
	pid        int
}

type session struct {
	host, user string
	waiting    []byte // context lines left for later, each after its length (see Matcher.later)
	pending    []event.Kind
	counted    int      // events counted since the session's last summary line
	tried      []string // users a user-change rule saw (copies), at most maxTried
	held       int      // user-change failures not counted yet

	key  sessionKey // copies: the session outlives the line
	next *session   // the next session in its chain (see sessions)
}

const (
	maxSessions = 4096
	maxPending  = 16
)

// maxTried bounds the users a session remembers.
const maxTried = 8

// take fills in the client and user a line does not name from the session,
// and remembers those it names.
func (s *session) take(c *capture) {
	if c.host == "" {
		c.host = s.host
	}
	if c.host != "" && s.host != "" && c.host != s.host {
		// Another client on the same pid (postfix smtpd and dovecot login
		// processes serve clients in turn): the previous one's user is
		// not this one's.
		s.user = ""
		s.counted = 0
		s.tried = s.tried[:0]
		s.held = 0
	}
	if c.user == "" {
		c.user = s.user
	}
	// Copies: the session outlives the line, whose memory the caller may
	// reuse once Match returns.
	if c.host != "" && c.host != s.host {
		s.host = strings.Clone(c.host)
	}
	if c.user != "" && c.user != s.user {
		s.user = strings.Clone(c.user)
	}
}

func (s *session) try(user string) {
	if len(s.tried) < maxTried && !slices.Contains(s.tried, user) {
		s.tried = append(s.tried, strings.Clone(user))
	}
}

func (s *session) addPending(k event.Kind) {
	if len(s.pending) < maxPending {
		s.pending = append(s.pending, k)
	}
}

// sessions is a bounded map of session context; when full, the oldest
// session is forgotten. It is a hash table of its own, indexed by pid
// alone: an integer hashes far quicker than the whole key, and a table of
// chains takes no map operations to insert or forget (the map it replaced
// cost a third of decide). Sessions whose pids hash alike, or that share
// a pid (the same pid on another host, or of another program), are
// chained.
type sessions struct {
	slots *[sessionSlots]*session // chains by pid hash; nil until the first session
	order []*session              // ring of sessions in insertion order
	next  int
	// The host and program of the last session made: a Matcher sees few of
	// them, so a new session's key usually reuses these copies.
	host, prog string
}

// sessionSlots is the number of chains: maxSessions, a power of two, so a
// chain holds one or two sessions.
const (
	sessionBits  = 12
	sessionSlots = 1 << sessionBits
)

// slot returns the chain of pid (Fibonacci hashing: pids are often
// consecutive).
func slot(pid int) uint64 { return uint64(pid) * 0x9E3779B97F4A7C15 >> (64 - sessionBits) }

func (ss *sessions) get(k sessionKey, create bool) *session {
	if ss.slots != nil {
		for s := ss.slots[slot(k.pid)]; s != nil; s = s.next {
			if s.key.pid == k.pid && s.key.host == k.host && s.key.prog == k.prog {
				return s
			}
		}
	}
	if !create {
		return nil
	}
	// Copies: see decide.
	if k.host != ss.host {
		ss.host = strings.Clone(k.host)
	}
	if k.prog != ss.prog {
		ss.prog = strings.Clone(k.prog)
	}
	k.host, k.prog = ss.host, ss.prog
	if ss.slots == nil {
		ss.slots = new([sessionSlots]*session)
		ss.order = make([]*session, 0, maxSessions)
	}
	var s *session
	if len(ss.order) < maxSessions {
		s = &session{}
		ss.order = append(ss.order, s)
	} else {
		// Forget the oldest and reuse its memory for the new one.
		s = ss.order[ss.next]
		ss.unlink(s)
		*s = session{pending: s.pending[:0], tried: s.tried[:0], waiting: s.waiting[:0]}
		ss.next = (ss.next + 1) % maxSessions
	}
	s.key = k
	head := &ss.slots[slot(k.pid)]
	s.next = *head
	*head = s
	return s
}

// unlink removes s from its chain.
func (ss *sessions) unlink(s *session) {
	for p := &ss.slots[slot(s.key.pid)]; *p != nil; p = &(*p).next {
		if *p == s {
			*p = s.next
			return
		}
	}
}
