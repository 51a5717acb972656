package fail2ban

import (
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/logline"
)

// compiled is a Definition's expressions, compiled; immutable, shared by
// the matchers of one mode.
type compiled struct {
	def  *Definition
	pref *rx
	head *prefHead // pref without its content tail; nil: none
	// byFirst lists, for each first byte, the failregexes (by index, in
	// order) whose matches can start with it; unanchored those that can
	// start with anything.
	byFirst    [256][]int
	unanchored []int
	// gate holds, for every failregex, texts one of which each of its
	// matches holds: a line holding none matches no failregex, and the
	// prefregex need not run (single-line filters). nil: no such gate.
	gate     *textSet
	fail     []*rx
	ignore   []*rx
	dates    []string
	gainable bool // some failregex marks successful logins (F-MLFGAINED)
	now      func() time.Time
}

func compile(def *Definition, now func() time.Time) (*compiled, error) {
	c := &compiled{def: def, dates: def.Datepattern, now: now}
	multi := def.Maxlines > 1
	if def.Prefregex != "" {
		src := resolveTags(def.Prefregex, def.UseDNS)
		r, err := compileRx(src, false)
		if err != nil {
			return nil, err
		}
		c.pref = r
		if !multi {
			c.head = newPrefHead(r, src)
		}
	}
	for _, s := range def.Failregex {
		r, err := compileRx(resolveTags(s, def.UseDNS), multi)
		if err != nil {
			return nil, err
		}
		if !hasFailureID(r) && (c.pref == nil || !hasFailureID(c.pref)) {
			return nil, &RegexError{Regex: s, Msg: "no failure-id group (<HOST>, <ADDR>, <F-ID> or <F-MLFID>)"}
		}
		for _, n := range r.names {
			c.gainable = c.gainable || n == "mlfgained"
		}
		c.fail = append(c.fail, r)
	}
	for _, s := range def.Ignoreregex {
		r, err := compileRx(resolveTags(s, def.UseDNS), multi)
		if err != nil {
			return nil, err
		}
		c.ignore = append(c.ignore, r)
	}
	c.index()
	if !multi {
		if texts := gateOf(c.fail); texts != nil {
			c.gate = newTextSet(texts)
		}
	}
	// Compile the date templates once, to report a bad datepattern now.
	if _, err := newDetector(c.dates, now()); err != nil {
		return nil, err
	}
	return c, nil
}

// RegexError is an expression fail2ban would refuse.
type RegexError struct{ Regex, Msg string }

func (e *RegexError) Error() string { return e.Msg + ": " + e.Regex }

func hasFailureID(r *rx) bool {
	for _, n := range r.names {
		switch n {
		case "fid", "ip4", "ip6", "dns", "mlfid":
			return true
		}
	}
	return false
}

// tupleLine is a line split around its time stamp, as fail2ban keeps it.
type tupleLine struct{ pre, date, post string }

func (t tupleLine) text() string { return t.pre + t.post }

// lineMatcher applies one compiled mode to lines: fail2ban's Filter
// processLine and findFailure, with its multi-line buffer and its cache of
// multi-line failure ids (F-MLFID).
type lineMatcher struct {
	c        *compiled
	det      *detector
	buf      []tupleLine
	mlf      mlfCache
	lastDate time.Time
	lastText string
	loc      *time.Location
	runes    []rune
	cands    []int // scratch for compiled.candidates
}

func (c *compiled) newLineMatcher() (*lineMatcher, error) {
	det, err := newDetector(c.dates, c.now())
	if err != nil {
		return nil, err
	}
	return &lineMatcher{c: c, det: det, loc: time.Local}, nil
}

// Match implements filter.LineMatcher.
func (m *lineMatcher) Match(l *logline.Line, out *filter.Match) bool {
	line, date, ok := m.split(l)
	if !ok {
		return false
	}
	return m.findFailure(line, date, out)
}

// split cuts the time stamp out of the line, as processLine does, and
// returns the line's time (zero when unknown).
func (m *lineMatcher) split(l *logline.Line) (tupleLine, time.Time, bool) {
	if l.Origin == "journald" || (strings.HasPrefix(l.Raw, "{") && l.Message != l.Raw) {
		// fail2ban's systemd backend writes "host prog[pid]: message".
		var b strings.Builder
		if l.Host != "" {
			b.WriteString(l.Host + " ")
		}
		if l.Program != "" {
			b.WriteString(l.Program)
			if l.PID != 0 {
				b.WriteString("[" + itoa(l.PID) + "]")
			}
			b.WriteString(": ")
		}
		b.WriteString(l.Message)
		return tupleLine{post: b.String()}, l.Time, true
	}
	line := strings.TrimRight(l.Raw, "\r\n")
	if !utf8.ValidString(line) {
		line = strings.ToValidUTF8(line, "\uFFFD")
	}
	m.runes = m.runes[:0]
	if m.det.fastSys && syslogStamp(line) {
		m.lastText = line[:15]
		return tupleLine{pre: "", date: line[:15], post: line[15:]}, time.Time{}, true
	}
	for _, c := range line {
		m.runes = append(m.runes, c)
	}
	dm, found := m.det.find(line, m.runes)
	if !found {
		if !m.lastDate.IsZero() {
			return tupleLine{date: m.lastText, post: line}, time.Time{}, true
		}
		return tupleLine{post: line}, time.Time{}, true
	}
	t := tupleLine{pre: line[:dm.start], date: line[dm.start:dm.end], post: line[dm.end:]}
	if t.date == "" {
		return tupleLine{date: m.lastText, post: line}, m.lastDate, true
	}
	when, ok := dm.time(time.Now(), m.loc)
	if ok {
		m.lastDate, m.lastText = when, t.date
	}
	return t, when, true
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for n >= 10 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	i--
	b[i] = byte('0' + n)
	return string(b[i:])
}

// joinLines is fail2ban's _tupleLinesBuf without its final newline (a
// Go $ matches only at the very end).
func joinLines(ls []tupleLine) string {
	if len(ls) == 1 {
		return ls[0].text()
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.text()
	}
	return strings.Join(parts, "\n")
}

// findFailure is fail2ban's Filter.findFailure with checkAllRegex off and
// ignorePending on (its defaults): the first failregex that matches
// decides.
func (m *lineMatcher) findFailure(tl tupleLine, date time.Time, out *filter.Match) bool {
	c := m.c
	max := c.def.Maxlines
	if max > 1 {
		m.buf = append(m.buf, tl)
		if len(m.buf) > max {
			m.buf = append(m.buf[:0], m.buf[len(m.buf)-max:]...)
		}
	} else {
		m.buf = append(m.buf[:0], tl)
	}
	// org is the buffer as it was before this line's match changes m.buf;
	// with one line there is nothing to restore.
	org := m.buf
	if max > 1 {
		org = append([]tupleLine(nil), m.buf...)
	}
	buf := joinLines(org)
	if c.gate != nil && !c.gate.any(buf) {
		return false
	}
	var runes []rune
	if len(c.ignore) > 0 && len(c.ignore) < len(c.fail)-2 {
		for _, r := range c.ignore {
			if g, _, _ := r.find(buf, &runes); g != nil {
				return false
			}
		}
	}
	var pre prefMatch
	if c.pref != nil {
		var ok bool
		if pre, ok = c.matchPref(buf, &runes); !ok {
			return false
		}
		if content := pre.content(); content != "" {
			m.buf = append(m.buf[:0], tupleLine{post: content})
			buf, runes = content, nil
		}
	}
	m.cands = c.candidates(buf, m.cands[:0])
	for _, i := range m.cands {
		r := c.fail[i]
		g, start, end := r.find(buf, &runes)
		if g == nil {
			continue
		}
		fail := g
		if len(c.ignore) > 0 {
			ibuf, iorg := buf, org
			if max > 1 {
				iorg = matched(buf, start, end, org, g)
				ibuf = joinLines(iorg)
			}
			var iruns []rune
			ignored := false
			for _, ir := range c.ignore {
				if ig, _, _ := ir.find(ibuf, &iruns); ig != nil {
					ignored = true
					break
				}
			}
			if ignored {
				if max > 1 {
					m.buf = unmatched(buf, start, end, org, g)
				}
				return false
			}
		}
		if max > 1 {
			m.buf = unmatched(buf, start, end, org, g)
		}
		gained := fail["mlfgained"] != ""
		if c.pref != nil {
			merged := pre.groups() // a map of its own
			delete(merged, "content")
			for k, v := range fail {
				merged[k] = v
			}
			fail = merged
		}
		mlfid, hasMLF := fail["mlfid"]
		if hasMLF {
			fail = m.mlf.merge(mlfid, fail)
			if fail["nofail"] != "" {
				if gained {
					return m.emit(fail, event.AuthSuccess, date, out)
				}
				return false
			}
		}
		if !hasFailHost(fail) {
			// The connection's address comes on a later line.
			fail["mlfpending"] = "1"
			return false
		}
		return m.emit(fail, event.AuthFailure, date, out)
	}
	return false
}

// gateOf returns texts one of which every match of every failregex
// holds: each failregex's required literal, alternatives or possible
// starts, whichever's shortest text is longest; nil when a failregex has
// none.
func gateOf(fail []*rx) []string {
	var gate []string
	for _, r := range fail {
		var best []string
		for _, set := range [][]string{{r.need}, r.anyOf, r.starts} {
			if minLen(set) > minLen(best) {
				best = set
			}
		}
		if minLen(best) < 3 {
			return nil
		}
		gate = append(gate, best...)
	}
	return gate
}

func hasFailHost(g groups) bool {
	for _, k := range []string{"ip4", "ip6", "dns", "fid"} {
		if _, ok := g[k]; ok {
			return true
		}
	}
	return false
}

func (m *lineMatcher) emit(fail groups, kind event.Kind, date time.Time, out *filter.Match) bool {
	host := ""
	for _, k := range []string{"ip4", "ip6", "dns", "fid"} {
		if v, ok := fail[k]; ok {
			host = v
			break
		}
	}
	if host == "" {
		return false
	}
	host = strings.Trim(host, "[]")
	*out = filter.Match{Service: m.c.def.Name, Kind: kind, Host: strings.Clone(host), User: strings.Clone(fail["user"]), Count: 1, Time: date}
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
		out.Addr = a.Unmap()
	}
	return true
}

// matched returns the lines of org a match at [start, end) of buf covers,
// without the lines its <SKIPLINES> skipped (Regex.search).
func matched(buf string, start, end int, org []tupleLine, g groups) []tupleLine {
	first, last := lineSpan(buf, start, end)
	if last > len(org) {
		last = len(org)
	}
	if first > last {
		first = last
	}
	out := append([]tupleLine(nil), org[first:last]...)
	skipped := skippedLines(g)
	if len(skipped) == 0 {
		return out
	}
	var keep []tupleLine
	for _, l := range out {
		if _, ok := skipped[l.text()]; !ok {
			keep = append(keep, l)
		}
	}
	return keep
}

// unmatched returns the lines of org a match at [start, end) of buf left
// over: those before and after it, and those its <SKIPLINES> skipped.
func unmatched(buf string, start, end int, org []tupleLine, g groups) []tupleLine {
	if len(org) <= 1 {
		return nil
	}
	first, last := lineSpan(buf, start, end)
	if last > len(org) {
		last = len(org)
	}
	if first > last {
		first = last
	}
	out := append([]tupleLine(nil), org[:first]...)
	skipped := skippedLines(g)
	for _, l := range org[first:last] {
		if _, ok := skipped[l.text()]; ok {
			out = append(out, l)
		}
	}
	return append(out, org[last:]...)
}

// lineSpan returns the indexes of the first line a match touches and of
// the line after its last.
func lineSpan(buf string, start, end int) (int, int) {
	lineStart := strings.LastIndexByte(buf[:min(start+1, len(buf))], '\n') + 1
	lineEnd := len(buf)
	if i := strings.IndexByte(buf[max(end-1, 0):], '\n'); i >= 0 {
		lineEnd = max(end-1, 0) + i + 1
	}
	first := strings.Count(buf[:lineStart], "\n")
	last := strings.Count(buf[:lineEnd], "\n")
	if lineEnd == len(buf) {
		last++
	}
	return first, last
}

var skipGroupRE = regexp.MustCompile(`^skiplines\d+$`)

func skippedLines(g groups) map[string]struct{} {
	var out map[string]struct{}
	for k, v := range g {
		if !skipGroupRE.MatchString(k) || v == "" {
			continue
		}
		if out == nil {
			out = map[string]struct{}{}
		}
		for _, l := range strings.Split(strings.TrimSuffix(v, "\n"), "\n") {
			out[l] = struct{}{}
		}
	}
	return out
}

// mlfCache remembers the failure data of multi-line failure ids (a
// connection's F-MLFID), bounded: the oldest id is forgotten first.
type mlfCache struct {
	m     map[string]*mlfEntry
	order []string
}

type mlfEntry struct {
	g     groups
	users map[string]bool
}

// maxMLF bounds the ids remembered (fail2ban keeps 100 for 5 minutes; a
// busy server has more connections open at once).
const maxMLF = 4096

func (c *mlfCache) get(id string) *mlfEntry {
	return c.m[id]
}

func (c *mlfCache) set(id string, e *mlfEntry) {
	if c.m == nil {
		c.m = map[string]*mlfEntry{}
	}
	if _, ok := c.m[id]; !ok {
		if len(c.order) >= maxMLF {
			// Forget the oldest that is still there.
			for len(c.order) > 0 {
				old := c.order[0]
				c.order = c.order[1:]
				if _, ok := c.m[old]; ok {
					delete(c.m, old)
					break
				}
			}
		}
		c.order = append(c.order, id)
	}
	c.m[id] = e
}

func (c *mlfCache) unset(id string) { delete(c.m, id) }

// merge is fail2ban's Filter._mergeFailure: the failure data of a line
// merged into what earlier lines of its connection left, and whether the
// line (or its connection) is no failure.
func (c *mlfCache) merge(id string, fail groups) groups {
	const (
		fNofail = 1
		fForget = 2
		fPrev   = 4
		fGained = 8
	)
	e := c.get(id)
	var users map[string]bool
	flags := 0
	if v := fail["mlfgained"]; v != "" {
		flags |= fGained | fNofail
		if fail["nofail"] == "" {
			fail["nofail"] = v
		}
	} else if fail["nofail"] != "" {
		flags |= fNofail
	}
	if v, ok := fail["mlfforget"]; ok {
		delete(fail, "mlfforget")
		if v != "" {
			flags |= fForget
		}
	}
	if e != nil {
		if u := fail["user"]; u != "" {
			if e.users == nil {
				e.users = map[string]bool{}
			}
			e.users[strings.Clone(u)] = true
		}
		users = e.users
		if pop(e.g, "nofail") != "" {
			flags |= fPrev
		}
		if pop(e.g, "mlfgained") != "" {
			flags |= fPrev
		}
		if flags&fGained != 0 {
			delete(e.g, "mlfpending")
		}
		for k, v := range fail {
			if old, ok := e.g[k]; keepInCache(k) && (!ok || old != v) {
				e.g[k] = strings.Clone(v)
			}
		}
		fail = e.g
		if flags&fForget != 0 {
			c.unset(id)
		}
	} else if flags&fForget == 0 {
		e = &mlfEntry{g: groups{}}
		for k, v := range fail {
			if keepInCache(k) {
				e.g[k] = strings.Clone(v)
			}
		}
		if u := fail["user"]; u != "" {
			e.users = map[string]bool{strings.Clone(u): true}
		}
		users = e.users
		fail = e.g
		c.set(strings.Clone(id), e)
	}
	if pop(fail, "mlfpending") != "" || len(users) > 1 {
		delete(fail, "nofail")
		delete(fail, "mlfgained")
	}
	return fail
}

// keepInCache reports whether a group outlives its line in the cache:
// not the whole match nor the prefregex's content, which nothing after
// the line reads (and which are the largest).
func keepInCache(k string) bool { return k != "" && k != "content" }

func pop(g groups, k string) string {
	v := g[k]
	delete(g, k)
	return v
}

// altGroups merges alt_NAME groups into NAME where NAME is empty (the
// F-ALT_USER tag), as fail2ban's _getGroupsWithAlt does.
func altGroups(g groups) {
	var alts []string
	for k := range g {
		if strings.HasPrefix(k, "alt_") {
			alts = append(alts, k)
		}
	}
	if len(alts) == 0 {
		return
	}
	sort.Strings(alts)
	for _, k := range alts {
		n := strings.TrimPrefix(k, "alt_")
		if i := strings.LastIndexByte(n, '_'); i > 0 && allDigits(n[i+1:]) {
			n = n[:i]
		}
		switch n {
		case "id":
			n = "fid"
		case "port":
			n = "fport"
		}
		if v := g[k]; v != "" && g[n] == "" {
			g[n] = v
		}
	}
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
