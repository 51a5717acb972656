package filter

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/rampart-dev/rampart/internal/event"
)

//go:embed filters/*.toml
var builtinFS embed.FS

// definition is the file form of a filter.
type definition struct {
	Name        string     `toml:"name"`
	Service     string     `toml:"service"`
	Description string     `toml:"description"`
	Programs    []string   `toml:"programs"`
	Modes       []string   `toml:"modes"`
	Aliases     []aliasDef `toml:"alias"`
	Rules       []ruleDef  `toml:"rule"`
	// Fragments names pattern text that patterns (and other fragments)
	// include as <@name>, so a log prefix is written once per filter.
	Fragments map[string]string `toml:"fragments"`
}

type aliasDef struct {
	Name string `toml:"name"`
	Mode string `toml:"mode"`
}

type ruleDef struct {
	Kind     string   `toml:"kind"`
	Modes    []string `toml:"modes"`
	Patterns []string `toml:"patterns"`
	Note     string   `toml:"note"`
	// Summary marks a line that sums up its session: it counts only when no
	// earlier line of the session did (see Matcher.decide).
	Summary bool `toml:"summary"`
	// UserChange marks a rule whose lines count only when the session
	// tries more than one user (see Matcher.decide).
	UserChange bool `toml:"user_change"`
	// MinLen limits the rule to messages of at least this many bytes,
	// trailing blanks included: lines a logger may have cut short.
	MinLen int `toml:"min_len"`
}

// Registry holds named filters and their aliases.
type Registry struct {
	filters map[string]*Filter
	aliases map[string]aliasDef // alias name → filter name and mode
	// fallback finds a filter no built-in or own filter names (fail2ban's
	// filter.d); what it found, or failed to load, is kept.
	fallback func(name string) (*Filter, error)
	found    map[string]*Filter
	failed   map[string]error
}

// SetFallback makes Lookup ask find for names the registry does not hold.
func (r *Registry) SetFallback(find func(name string) (*Filter, error)) {
	r.fallback = find
	r.found, r.failed = map[string]*Filter{}, map[string]error{}
}

// AddFilter registers a compiled filter (one backed by an Engine),
// replacing a filter of the same name.
func (r *Registry) AddFilter(f *Filter) {
	r.filters[f.Name] = f
}

// Find is Lookup that says why a name gave no filter: unknown, or a
// fallback filter that failed to load.
func (r *Registry) Find(name string) (*Filter, string, error) {
	if f, mode, ok := r.lookup(name); ok {
		return f, mode, nil
	}
	if r.fallback == nil {
		return nil, "", fmt.Errorf("unknown filter %q", name)
	}
	if f, ok := r.found[name]; ok {
		return f, "", nil
	}
	if err, ok := r.failed[name]; ok {
		return nil, "", err
	}
	f, err := r.fallback(name)
	if err != nil {
		r.failed[name] = err
		return nil, "", err
	}
	r.found[name] = f
	return f, "", nil
}

// Builtin compiles the filters shipped with Rampart.
func Builtin() (*Registry, error) {
	r := &Registry{filters: map[string]*Filter{}, aliases: map[string]aliasDef{}}
	err := fs.WalkDir(builtinFS, "filters", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := builtinFS.ReadFile(p)
		if err != nil {
			return err
		}
		return r.Add(path.Base(p), data)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Add compiles one filter file (file names it in errors) and registers it,
// replacing a filter of the same name.
func (r *Registry) Add(file string, data []byte) error {
	f, aliases, err := Parse(file, data)
	if err != nil {
		return err
	}
	r.filters[f.Name] = f
	for _, a := range aliases {
		if _, ok := r.filters[a.Name]; ok {
			return fmt.Errorf("%s: alias %q names an existing filter", file, a.Name)
		}
		r.aliases[a.Name] = aliasDef{Name: f.Name, Mode: a.Mode}
	}
	return nil
}

// AddOwn is Add for a filter file of the server's own (path names it in
// errors and in the filter's Origin).
func (r *Registry) AddOwn(path string, data []byte) error {
	if err := r.Add(path, data); err != nil {
		return err
	}
	f, _, err := Parse(path, data)
	if err != nil {
		return err
	}
	if g := r.filters[f.Name]; g != nil {
		g.Origin = path
	}
	return nil
}

// Lookup returns the filter called name and the mode the name implies
// ("" for the filter's default). An alias such as "postfix-sasl" returns its
// filter and mode.
func (r *Registry) Lookup(name string) (*Filter, string, bool) {
	f, mode, err := r.Find(name)
	return f, mode, err == nil
}

func (r *Registry) lookup(name string) (*Filter, string, bool) {
	if f, ok := r.filters[name]; ok {
		return f, "", true
	}
	if a, ok := r.aliases[name]; ok {
		return r.filters[a.Name], a.Mode, true
	}
	return nil, "", false
}

// Names lists filter names and aliases, sorted.
func (r *Registry) Names() []string {
	var names []string
	for n := range r.filters {
		names = append(names, n)
	}
	for n := range r.aliases {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Alias is another name for a filter in one of its modes.
type Alias struct {
	Name, Filter, Mode string
}

// Aliases lists the aliases, sorted by name.
func (r *Registry) Aliases() []Alias {
	var as []Alias
	for n, a := range r.aliases {
		as = append(as, Alias{Name: n, Filter: a.Name, Mode: a.Mode})
	}
	slices.SortFunc(as, func(a, b Alias) int { return strings.Compare(a.Name, b.Name) })
	return as
}

// Filters lists the filters (not aliases), sorted by name.
func (r *Registry) Filters() []*Filter {
	var fs []*Filter
	for _, f := range r.filters {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b *Filter) int { return strings.Compare(a.Name, b.Name) })
	return fs
}

// Parse compiles a filter definition. Errors name file, and the line where
// the TOML decoder knows it.
func Parse(file string, data []byte) (*Filter, []aliasDef, error) {
	var def definition
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&def); err != nil {
		var derr *toml.DecodeError
		if errors.As(err, &derr) {
			row, _ := derr.Position()
			return nil, nil, fmt.Errorf("%s:%d: %s", file, row, derr.Error())
		}
		var serr *toml.StrictMissingError
		if errors.As(err, &serr) && len(serr.Errors) > 0 {
			e := serr.Errors[0]
			row, _ := e.Position()
			return nil, nil, fmt.Errorf("%s:%d: unknown key %q", file, row, strings.Join(e.Key(), "."))
		}
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	if def.Name == "" {
		return nil, nil, fmt.Errorf("%s: missing key \"name\"", file)
	}
	f := &Filter{
		Name:        def.Name,
		Service:     def.Service,
		Description: def.Description,
		Programs:    def.Programs,
		Modes:       def.Modes,
	}
	if f.Service == "" {
		f.Service = f.Name
	}
	for _, a := range def.Aliases {
		if !slices.Contains(f.Modes, a.Mode) {
			return nil, nil, fmt.Errorf("%s: alias %q: unknown mode %q", file, a.Name, a.Mode)
		}
	}
	if len(def.Rules) == 0 {
		return nil, nil, fmt.Errorf("%s: filter %q has no [[rule]]", file, def.Name)
	}
	for i, rd := range def.Rules {
		where := fmt.Sprintf("%s: rule %d", file, i+1)
		var r rule
		if rd.Kind != "context" {
			k, err := event.ParseKind(rd.Kind)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w (want one of %s, or context)", where, err, kindList())
			}
			r.kind = k
		}
		for _, m := range rd.Modes {
			if !slices.Contains(f.Modes, m) {
				return nil, nil, fmt.Errorf("%s: mode %q is not among the filter's modes %v", where, m, f.Modes)
			}
		}
		r.modes = rd.Modes
		if rd.MinLen < 0 {
			return nil, nil, fmt.Errorf("%s: min_len %d is negative", where, rd.MinLen)
		}
		if len(rd.Patterns) == 0 {
			return nil, nil, fmt.Errorf("%s: no patterns", where)
		}
		for _, src := range rd.Patterns {
			expanded, err := expandFragments(src, def.Fragments, 0)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: pattern %q: %w", where, src, err)
			}
			p, err := compilePattern(expanded)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: pattern %q: %w", where, src, err)
			}
			p.summary = rd.Summary
			p.userChange = rd.UserChange
			p.minLen = rd.MinLen
			r.pats = append(r.pats, p)
		}
		f.rules = append(f.rules, r)
	}
	return f, def.Aliases, nil
}

// maxFragmentDepth bounds fragments that include fragments (and so rejects cycles).
const maxFragmentDepth = 8

// expandFragments replaces each <@name> in src by the fragment's text.
// Escaped text (\\x) is copied as it is.
func expandFragments(src string, frags map[string]string, depth int) (string, error) {
	if !strings.Contains(src, "<@") {
		return src, nil
	}
	if depth >= maxFragmentDepth {
		return "", fmt.Errorf("fragments nested more than %d deep (a cycle?)", maxFragmentDepth)
	}
	var b strings.Builder
	for i := 0; i < len(src); i++ {
		switch {
		case src[i] == '\\' && i+1 < len(src):
			b.WriteString(src[i : i+2])
			i++
		case strings.HasPrefix(src[i:], "<@"):
			end := strings.IndexByte(src[i:], '>')
			if end < 0 {
				return "", fmt.Errorf("unterminated %q", src[i:])
			}
			name := src[i+2 : i+end]
			text, ok := frags[name]
			if !ok {
				return "", fmt.Errorf("unknown fragment %q", name)
			}
			text, err := expandFragments(text, frags, depth+1)
			if err != nil {
				return "", fmt.Errorf("fragment %q: %w", name, err)
			}
			b.WriteString(text)
			i += end
		default:
			b.WriteByte(src[i])
		}
	}
	return b.String(), nil
}

func kindList() string {
	var names []string
	for _, k := range event.Kinds() {
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
}
