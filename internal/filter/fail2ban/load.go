// Package fail2ban reads fail2ban's filter definitions (filter.d/*.conf and
// their .local overrides) at run time and matches lines with them as
// fail2ban does: includes, [DEFAULT]/[Definition]/[Init], %(name)s and
// <tag> interpolation, modes, prefregex/failregex/ignoreregex with
// fail2ban's tags, datepattern, multi-line failures (F-MLFID) and
// maxlines. The filters it returns are filter.Filters: the Router, the
// engine and `rampart test` use them as they use the built-in ones.
//
// Expressions run on Go's regexp when they are within its syntax (linear
// time), else on regexp2, a backtracking engine with Python's look-arounds,
// back-references and conditionals, under a backtracking bound.
package fail2ban

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/filter"
)

// DefaultDir is where fail2ban keeps its configuration.
const DefaultDir = "/etc/fail2ban"

// Load reads the filter called name from dir/filter.d (name.conf, name.d/,
// name.local), like a jail's filter = name. Options may follow the name
// as in a jail: "sshd[mode=aggressive]".
func Load(dir, name string) (*filter.Filter, error) {
	base, opts, err := ParseFilterOption(name)
	if err != nil {
		return nil, err
	}
	if base == "" || strings.ContainsAny(base, "/\\") || strings.HasPrefix(base, ".") {
		return nil, fmt.Errorf("fail2ban filter name %q: want a name from %s", base, filepath.Join(dir, "filter.d"))
	}
	files := configFiles(filepath.Join(dir, "filter.d", base))
	if len(files) == 0 {
		return nil, fmt.Errorf("no fail2ban filter %q in %s: %w", base, filepath.Join(dir, "filter.d"), fs.ErrNotExist)
	}
	return load(base, files, opts)
}

// LoadFile reads a fail2ban filter from path (a .conf file, with its
// .local beside it), named after the file.
func LoadFile(path string) (*filter.Filter, error) {
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	return load(name, []string{path}, nil)
}

func load(name string, files []string, opts map[string]string) (*filter.Filter, error) {
	cfg, err := readConfig(files)
	if err != nil {
		return nil, err
	}
	e := &engine{name: name, cfg: cfg, init: opts, byMode: map[string]*compiled{}, now: time.Now}
	if e.init == nil {
		e.init = map[string]string{}
	}
	if _, ok := e.init["logtype"]; !ok {
		if _, set := cfg.sections["Definition"]["logtype"]; !set {
			e.init["logtype"] = "file"
		}
	}
	def, err := cfg.resolve(name, e.init)
	if err != nil {
		return nil, err
	}
	e.modes = def.Modes
	e.def = def.Mode
	c, err := compile(def, e.now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", files[0], err)
	}
	e.byMode[def.Mode] = c
	kinds := []event.Kind{event.AuthFailure}
	if c.gainable {
		kinds = append(kinds, event.AuthSuccess)
	}
	return filter.NewEngineFilter(filter.Spec{
		Name:        name,
		Description: describe(cfg.files[0]),
		Modes:       def.Modes,
		Kinds:       kinds,
		Origin:      cfg.files[0],
	}, e), nil
}

// engine is a fail2ban filter's filter.Engine: its modes compiled on
// first use.
type engine struct {
	name  string
	cfg   *config
	init  map[string]string
	modes []string
	def   string
	now   func() time.Time

	mu     sync.Mutex
	byMode map[string]*compiled
}

// NewLineMatcher implements filter.Engine.
func (e *engine) NewLineMatcher(mode string) (filter.LineMatcher, error) {
	if mode == "" || (mode == "aggressive" && !slices.Contains(e.modes, mode)) {
		mode = e.def
	}
	if len(e.modes) == 0 {
		mode = ""
	} else if !slices.Contains(e.modes, mode) {
		return nil, fmt.Errorf("fail2ban filter %q has no mode %q (modes: %s)", e.name, mode, strings.Join(e.modes, ", "))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.byMode[mode]
	if !ok {
		opts := map[string]string{}
		for k, v := range e.init {
			opts[k] = v
		}
		opts["mode"] = mode
		def, err := e.cfg.resolve(e.name, opts)
		if err != nil {
			return nil, err
		}
		if c, err = compile(def, e.now); err != nil {
			return nil, fmt.Errorf("fail2ban filter %q mode %s: %w", e.name, mode, err)
		}
		e.byMode[mode] = c
	}
	return c.newLineMatcher()
}

// describe returns a filter file's first comment line, or its path.
func describe(path string) string {
	data, err := os.ReadFile(path)
	if err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			l = strings.TrimSpace(l)
			if !strings.HasPrefix(l, "#") {
				break
			}
			l = strings.TrimSpace(strings.TrimLeft(l, "#"))
			if l != "" && !strings.Contains(strings.ToLower(l), "fail2ban") && !strings.HasPrefix(l, "-*-") {
				return l + " (fail2ban filter " + path + ")"
			}
		}
	}
	return "fail2ban filter " + path
}

// Names lists the fail2ban filters in dir/filter.d: the .conf files that
// define a failregex (common.conf and the like only serve to be included).
func Names(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "filter.d"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".conf")
		if !ok || e.IsDir() {
			continue
		}
		f, err := readINI(filepath.Join(dir, "filter.d", e.Name()))
		if err != nil {
			continue
		}
		d := f.sections["Definition"]
		if d == nil {
			continue
		}
		if _, ok := d.vals["failregex"]; !ok {
			continue
		}
		// A file only meant to be included leaves options to its includers.
		if cfg, err := readConfig(configFiles(filepath.Join(dir, "filter.d", n))); err == nil {
			if _, err := cfg.resolve(n, map[string]string{"logtype": "file"}); errors.Is(err, errMissing) {
				continue
			}
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

var (
	optionRE  = regexp.MustCompile(`(?s)^([^\[]+)(?:\[(.*)\])?\s*$`)
	optPairRE = regexp.MustCompile(`(?s)\s*([\w\-_\.]+)=(?:"([^"]*)"|'([^']*)'|([^,\]]*))(?:,|\]\s*\[|$)`)
)

// ParseFilterOption splits a jail's filter value, "name[key=value, ...]",
// as fail2ban's extractOptions does.
func ParseFilterOption(s string) (string, map[string]string, error) {
	m := optionRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return "", nil, fmt.Errorf("filter %q: want name or name[key=value, ...]", s)
	}
	name := strings.TrimSpace(m[1])
	opts := map[string]string{}
	rest := m[2]
	for strings.TrimSpace(rest) != "" {
		loc := optPairRE.FindStringSubmatchIndex(rest)
		if loc == nil || loc[0] != 0 {
			return "", nil, fmt.Errorf("filter %q: bad option near %q", s, clip(rest))
		}
		key := rest[loc[2]:loc[3]]
		var v string
		for _, i := range []int{4, 6, 8} {
			if loc[i] >= 0 {
				v = rest[loc[i]:loc[i+1]]
				break
			}
		}
		opts[strings.TrimSpace(key)] = strings.TrimSpace(v)
		rest = rest[loc[1]:]
	}
	return name, opts, nil
}

// ErrNotFound is returned for a name no directory has a filter for.
var ErrNotFound = errors.New("no such fail2ban filter")
