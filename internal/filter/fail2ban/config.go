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
)

// config is several files read as one, the way fail2ban's
// SafeConfigParserWithIncludes reads them: each file's [INCLUDES] before
// and after lists read around it, X.local read after X.conf, and a later
// file's options overriding an earlier one's. An overridden value stays
// reachable as %(known/option)s.
type config struct {
	defaults map[string]string
	sections map[string]map[string]string
	// where tells, for errors, the file and line that set an option:
	// section + "\x00" + option → "file:line".
	where map[string]string
	files []string // the files read, in order
}

// maxIncludeDepth bounds nested includes (a cycle is cut earlier).
const maxIncludeDepth = 16

// readConfig reads files (and what they include) into one config. Files
// that do not exist are left out; at least one must be read.
func readConfig(files []string) (*config, error) {
	all, err := includes(files, nil)
	if err != nil {
		return nil, err
	}
	c := &config{defaults: map[string]string{}, sections: map[string]map[string]string{}, where: map[string]string{}}
	for _, path := range all {
		f, err := readINI(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		c.files = append(c.files, path)
		for k, v := range f.defaults.vals {
			c.defaults[k] = v
			c.where["DEFAULT\x00"+k] = fmt.Sprintf("%s:%d", path, f.defaults.line[k])
		}
		for _, name := range f.order {
			s := f.sections[name]
			old, ok := c.sections[name]
			if !ok {
				old = map[string]string{}
				c.sections[name] = old
			} else {
				known := c.sections["KNOWN/"+name]
				if known == nil {
					known = map[string]string{}
					c.sections["KNOWN/"+name] = known
				}
				for k := range s.vals {
					if v, ok := old[k]; ok {
						known[k] = v
					}
				}
			}
			for k, v := range s.vals {
				old[k] = v
				c.where[name+"\x00"+k] = fmt.Sprintf("%s:%d", path, s.line[k])
			}
		}
	}
	if len(c.files) == 0 {
		return nil, fmt.Errorf("%s: %w", strings.Join(files, ", "), fs.ErrNotExist)
	}
	return c, nil
}

// includes returns paths with what they include, in reading order (as
// fail2ban's _getIncludes): each file's before files, the file, its after
// files; X.local follows X.conf unless paths already name it.
func includes(paths []string, seen []string) ([]string, error) {
	if len(seen) > maxIncludeDepth {
		return nil, fmt.Errorf("%s: includes nested more than %d deep", seen[len(seen)-1], maxIncludeDepth)
	}
	var expanded []string
	for _, p := range paths {
		expanded = append(expanded, p)
		if strings.HasSuffix(p, ".conf") {
			local := strings.TrimSuffix(p, ".conf") + ".local"
			if _, err := os.Stat(local); err == nil && !slices.Contains(paths, local) {
				expanded = append(expanded, local)
			}
		}
	}
	var out []string
	for _, p := range expanded {
		f, err := readINI(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var before, after []string
		if inc := f.sections["INCLUDES"]; inc != nil {
			for _, which := range []string{"before", "after"} {
				for _, r := range strings.Split(inc.vals[which], "\n") {
					r = strings.TrimSpace(r)
					if r == "" {
						continue
					}
					if !filepath.IsAbs(r) {
						r = filepath.Join(filepath.Dir(p), r)
					}
					if slices.Contains(seen, r) || r == p {
						continue
					}
					got, err := includes([]string{r}, append(slices.Clip(seen), p))
					if err != nil {
						return nil, err
					}
					if which == "before" {
						before = append(before, got...)
					} else {
						after = append(after, got...)
					}
				}
			}
		}
		out = append(out, before...)
		out = append(out, p)
		out = append(out, after...)
	}
	return out, nil
}

// configFiles lists the files fail2ban reads for base (a path without
// extension, such as /etc/fail2ban/filter.d/sshd): base.conf, base.d/*.conf,
// base.local, base.d/*.local, those that exist.
func configFiles(base string) []string {
	files := []string{base + ".conf"}
	confs, _ := filepath.Glob(filepath.Join(base+".d", "*.conf"))
	sort.Strings(confs)
	files = append(files, confs...)
	files = append(files, base+".local")
	locals, _ := filepath.Glob(filepath.Join(base+".d", "*.local"))
	sort.Strings(locals)
	files = append(files, locals...)
	var exist []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			exist = append(exist, f)
		}
	}
	return exist
}

// errNoOption means an option is not set.
var errNoOption = errors.New("no such option")

// errMissing means an interpolation names an option that is not set: a
// file meant to be included by others (selinux-common.conf) read alone.
var errMissing = errors.New("names no option")

// maxInterpolationDepth is configparser's MAX_INTERPOLATION_DEPTH.
const maxInterpolationDepth = 10

// get returns option of section with %(name)s references interpolated,
// vars taking precedence over the section, the section over [DEFAULT].
func (c *config) get(sect, opt string, vars map[string]string) (string, error) {
	lookup, err := c.lookup(sect, vars)
	if err != nil {
		return "", err
	}
	raw, ok := lookup(opt)
	if !ok {
		return "", fmt.Errorf("[%s] %s: %w", sect, opt, errNoOption)
	}
	var b strings.Builder
	if err := c.interpolate(&b, sect, opt, raw, lookup, 1); err != nil {
		return "", err
	}
	return b.String(), nil
}

// lookup returns the raw-value lookup of section sect: vars, the section,
// then [DEFAULT].
func (c *config) lookup(sect string, vars map[string]string) (func(string) (string, bool), error) {
	s, ok := c.sections[sect]
	if !ok && sect != "DEFAULT" {
		return nil, fmt.Errorf("no section [%s]: %w", sect, errNoOption)
	}
	return func(opt string) (string, bool) {
		if v, ok := vars[opt]; ok {
			return v, true
		}
		if v, ok := s[opt]; ok {
			return v, true
		}
		if v, ok := c.defaults[opt]; ok {
			return v, true
		}
		if opt == "__name__" {
			return sect, true
		}
		return "", false
	}, nil
}

var keyRE = regexp.MustCompile(`^%\(([^)]+)\)s`)

// interpolate is configparser's BasicInterpolation with fail2ban's
// %(section/option)s, %(known/option)s and %(default/option)s.
func (c *config) interpolate(b *strings.Builder, sect, opt, rest string, lookup func(string) (string, bool), depth int) error {
	if depth > maxInterpolationDepth {
		return fmt.Errorf("%s: [%s] %s: interpolation nested more than %d deep", c.whereOf(sect, opt), sect, opt, maxInterpolationDepth)
	}
	for rest != "" {
		p := strings.IndexByte(rest, '%')
		if p < 0 {
			b.WriteString(rest)
			return nil
		}
		b.WriteString(rest[:p])
		rest = rest[p:]
		switch {
		case strings.HasPrefix(rest, "%%"):
			b.WriteByte('%')
			rest = rest[2:]
		case strings.HasPrefix(rest, "%("):
			m := keyRE.FindStringSubmatch(rest)
			if m == nil {
				return fmt.Errorf("%s: [%s] %s: bad interpolation syntax at %q", c.whereOf(sect, opt), sect, opt, clip(rest))
			}
			name := strings.ToLower(m[1])
			rest = rest[len(m[0]):]
			v, ok := lookup(name)
			if !ok {
				v, ok = c.sectionOption(sect, m[1])
			}
			if !ok {
				return fmt.Errorf("%s: [%s] %s: %%(%s)s: %w", c.whereOf(sect, opt), sect, opt, name, errMissing)
			}
			if strings.Contains(v, "%") {
				if err := c.interpolate(b, sect, opt, v, lookup, depth+1); err != nil {
					return err
				}
			} else {
				b.WriteString(v)
			}
		default:
			return fmt.Errorf("%s: [%s] %s: '%%' must be followed by '%%' or '(' (write %%%% for a percent sign)", c.whereOf(sect, opt), sect, opt)
		}
	}
	return nil
}

// sectionOption resolves "section/option" names in interpolation as
// fail2ban's _map_section_options does; the value is raw.
func (c *config) sectionOption(sect, name string) (string, bool) {
	sec, opt, ok := strings.Cut(name, "/")
	if !ok || sec == "" || opt == "" {
		return "", false
	}
	opt = strings.ToLower(opt)
	switch strings.ToLower(sec) {
	case "known":
		if v, ok := c.sections["KNOWN/"+sect][opt]; ok {
			return v, true
		}
	case "default":
	default:
		s, ok := c.sections[sec]
		if !ok {
			return "", false
		}
		if v, ok := s[opt]; ok {
			return v, true
		}
	}
	v, ok := c.defaults[opt]
	return v, ok
}

// sectionOptRE is fail2ban's SECTION_OPTNAME_CRE.
var sectionOptRE = regexp.MustCompile(`^([\w\-]+)/([^\s>]+)$`)

// getEx is get for names of the form "section/option" too (fail2ban's
// get_ex): "known/x" is x as set before its last override.
func (c *config) getEx(sect, opt string, vars map[string]string) (string, error) {
	if m := sectionOptRE.FindStringSubmatch(opt); m != nil {
		var try []string
		switch strings.ToLower(m[1]) {
		case "known":
			try = []string{"KNOWN/" + sect, sect}
		case "default":
			try = []string{"DEFAULT"}
		default:
			try = []string{m[1]}
		}
		for _, s := range try {
			if v, err := c.get(s, strings.ToLower(m[2]), nil); err == nil {
				return v, nil
			} else if !errors.Is(err, errNoOption) {
				return "", err
			}
		}
	}
	return c.get(sect, strings.ToLower(opt), vars)
}

// options lists the options set in section sect itself, sorted.
func (c *config) options(sect string) []string {
	var out []string
	for k := range c.sections[sect] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *config) whereOf(sect, opt string) string {
	if w, ok := c.where[sect+"\x00"+opt]; ok {
		return w
	}
	if w, ok := c.where["DEFAULT\x00"+opt]; ok {
		return w
	}
	if len(c.files) > 0 {
		return c.files[0]
	}
	return "?"
}

func clip(s string) string {
	if len(s) > 30 {
		return s[:30] + "..."
	}
	return s
}
