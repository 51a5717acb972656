package filter

import (
	"slices"
	"strings"

	"github.com/rampart-dev/rampart/internal/logline"
)

// Router sends each line only to the matchers whose filters read its
// program, so a sshd line never meets a postfix rule. Lines without a
// program go to every matcher. Like Matcher, a Router is not safe for
// concurrent use.
type Router struct {
	exact    map[string][]int // program → matcher indexes
	prefixes []prefixRoute
	any      []int // matchers of filters that read every program
	all      []int
	ms       []*Matcher
	// recent remembers the routes of recently seen programs: a log names
	// few, and comparing a short string is quicker than the map lookup,
	// prefix checks and sort that work a route out.
	recent [routeSlots]route
}

// routeSlots is the size of Router.recent, a power of two.
const routeSlots = 32

type route struct {
	prog string // a copy
	idx  []int  // the matcher indexes, sorted, no duplicates
}

type prefixRoute struct {
	prefix string
	idx    int
}

// NewRouter routes lines to ms; on a line several filters match, the
// earliest in ms wins.
func NewRouter(ms ...*Matcher) *Router {
	r := &Router{exact: map[string][]int{}, ms: ms}
	for i, m := range ms {
		r.all = append(r.all, i)
		if len(m.f.Programs) == 0 {
			r.any = append(r.any, i)
			continue
		}
		for _, p := range m.f.Programs {
			if base, ok := strings.CutSuffix(p, "*"); ok {
				r.prefixes = append(r.prefixes, prefixRoute{base, i})
			} else {
				r.exact[p] = append(r.exact[p], i)
			}
		}
	}
	return r
}

// Match returns the first match among the matchers l is routed to, and the
// matcher that produced it.
func (r *Router) Match(l *logline.Line) (Match, *Matcher, bool) {
	var mt Match
	m := r.try(r.routed(l), l, &mt)
	return mt, m, m != nil
}

// routed returns the matchers l goes to: its program's, or every one for
// a line without a program.
func (r *Router) routed(l *logline.Line) []int {
	if l.Program == "" {
		return r.all
	}
	return r.route(l.Program)
}

// route returns the matchers lines of prog go to, from recent when it can.
func (r *Router) route(prog string) []int {
	slot := &r.recent[(len(prog)*31+int(prog[0])*7+int(prog[len(prog)-1]))%routeSlots]
	if slot.idx == nil || slot.prog != prog {
		slot.prog = strings.Clone(prog) // the line's memory may be reused
		slot.idx = r.routeOf(prog, slot.idx[:0])
	}
	return slot.idx
}

// routeOf appends to idx the matchers lines of prog go to, in order, and
// returns it (never nil).
func (r *Router) routeOf(prog string, idx []int) []int {
	idx = append(idx, r.exact[prog]...)
	for _, p := range r.prefixes {
		if strings.HasPrefix(prog, p.prefix) {
			idx = append(idx, p.idx)
		}
	}
	idx = append(idx, r.any...)
	if len(idx) > 1 {
		sortInts(idx)
		idx = slices.Compact(idx)
	}
	if idx == nil {
		idx = []int{}
	}
	return idx
}

// MatchAll offers l to every matcher it is routed to, in order, and calls
// found with each match and the index of its matcher in NewRouter's list:
// as fail2ban's jails each read their log, every jail whose filter matches
// a line counts it, and every matcher sees every line of its programs (its
// session context stays whole).
func (r *Router) MatchAll(l *logline.Line, found func(mt Match, matcher int)) {
	var mt Match
	for _, i := range r.routed(l) {
		if r.ms[i].match(l, &mt) {
			found(mt, i)
		}
	}
}

// try returns the first of the matchers idx names that matches l, having
// filled *out, or nil.
func (r *Router) try(idx []int, l *logline.Line, out *Match) *Matcher {
	for _, i := range idx {
		if r.ms[i].match(l, out) {
			return r.ms[i]
		}
	}
	return nil
}

// sortInts is an insertion sort: candidate lists hold a handful of entries.
func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
