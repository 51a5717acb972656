package filter

import (
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/logline"
)

// Engine matches lines for a filter written in another language than
// Rampart's patterns (fail2ban's filter.d files, see package fail2ban).
// The Router and the daemon treat such a filter like any other.
type Engine interface {
	// NewLineMatcher returns the per-reader state for mode (a mode of
	// Filter.Modes; "" for the default).
	NewLineMatcher(mode string) (LineMatcher, error)
}

// LineMatcher is Matcher.match for an Engine: it fills *out and returns
// true when the line is an event. Like Matcher, it may keep state across
// lines and is used by one goroutine.
type LineMatcher interface {
	Match(l *logline.Line, out *Match) bool
}

// Spec describes a filter backed by an Engine.
type Spec struct {
	Name, Service, Description string
	Programs                   []string
	Modes                      []string // the first is the default
	Kinds                      []event.Kind
	Origin                     string // the file it was read from
}

// NewEngineFilter returns a filter whose lines are matched by e.
func NewEngineFilter(s Spec, e Engine) *Filter {
	f := &Filter{
		Name: s.Name, Service: s.Service, Description: s.Description,
		Programs: s.Programs, Modes: s.Modes, Origin: s.Origin,
		engine: e, kinds: s.Kinds,
	}
	if f.Service == "" {
		f.Service = f.Name
	}
	return f
}

// Kinds lists the kinds of event the filter reports, in rule order.
func (f *Filter) Kinds() []event.Kind {
	if f.engine != nil {
		return f.kinds
	}
	var kinds []event.Kind
	for _, r := range f.rules {
		if r.kind == kindContext {
			continue
		}
		seen := false
		for _, k := range kinds {
			seen = seen || k == r.kind
		}
		if !seen {
			kinds = append(kinds, r.kind)
		}
	}
	return kinds
}

// Engine returns the Engine behind a filter, or nil for a built-in one.
func (f *Filter) Engine() Engine { return f.engine }
