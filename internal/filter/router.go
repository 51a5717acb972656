package filter

import (
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
	if l.Program == "" {
		return r.try(r.all, l)
	}
	var cand [8]int
	idx := append(cand[:0], r.exact[l.Program]...)
	for _, p := range r.prefixes {
		if strings.HasPrefix(l.Program, p.prefix) {
			idx = append(idx, p.idx)
		}
	}
	idx = append(idx, r.any...)
	if len(idx) > 1 {
		sortInts(idx)
	}
	return r.try(idx, l)
}

func (r *Router) try(idx []int, l *logline.Line) (Match, *Matcher, bool) {
	prev := -1
	for _, i := range idx {
		if i == prev {
			continue
		}
		prev = i
		if mt, ok := r.ms[i].match(l); ok {
			return mt, r.ms[i], true
		}
	}
	return Match{}, nil, false
}

// sortInts is an insertion sort: candidate lists hold a handful of entries.
func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
