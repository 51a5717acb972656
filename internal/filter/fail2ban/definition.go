package fail2ban

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Definition is a fail2ban filter read from its files, with options,
// interpolation and tags resolved: what fail2ban's FilterReader hands to
// its server for one jail.
type Definition struct {
	Name         string
	Files        []string // the files read, in order
	Failregex    []string
	Ignoreregex  []string
	Prefregex    string
	Datepattern  []string // empty: fail2ban's default date templates
	Maxlines     int
	Journalmatch []string
	UseDNS       string
	Mode         string   // the mode the definition was resolved for ("" without modes)
	Modes        []string // the modes the filter offers, its default first
}

// configOpts are the [Definition] options fail2ban's FilterReader reads.
var configOpts = []string{"usedns", "prefregex", "ignoreregex", "failregex", "maxlines", "datepattern", "journalmatch"}

// resolve reads the definition from c for the init options (a jail's
// filter = name[mode=aggressive] options, and logtype).
func (c *config) resolve(name string, initOpts map[string]string) (*Definition, error) {
	if _, ok := c.sections["Definition"]; !ok {
		return nil, fmt.Errorf("%s: filter %q has no [Definition]", strings.Join(c.files, ", "), name)
	}
	init := map[string]string{}
	for k, v := range initOpts {
		init[strings.ToLower(k)] = v
	}
	opts := map[string]string{}
	for _, o := range configOpts {
		if _, ok := init[o]; ok {
			continue
		}
		v, err := c.get("Definition", o, init)
		if errors.Is(err, errNoOption) {
			continue
		}
		if err != nil {
			return nil, err
		}
		opts[o] = v
	}
	if _, ok := c.sections["Init"]; ok {
		for _, o := range c.options("Init") {
			v, err := c.get("Init", o, nil)
			if err != nil {
				return nil, err
			}
			if !strings.HasPrefix(o, "known/") {
				init["known/"+o] = v
			}
			if _, ok := init[o]; !ok {
				init[o] = v
			}
		}
	}
	combined := map[string]string{}
	for k, v := range opts {
		combined[k] = v
	}
	for k, v := range init {
		combined[k] = v
	}
	addrepl := func(tag string) (string, bool) {
		v, err := c.getEx("Definition", tag, init)
		if err != nil {
			return "", false
		}
		return v, true
	}
	tags, err := substituteTags(combined, addrepl)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(c.files, ", "), err)
	}
	d := &Definition{Name: name, Files: c.files, Maxlines: 1, UseDNS: "warn"}
	d.Failregex = splitLines(tags["failregex"])
	d.Ignoreregex = splitLines(tags["ignoreregex"])
	d.Prefregex = strings.TrimSpace(tags["prefregex"])
	d.Datepattern = splitLines(tags["datepattern"])
	d.Journalmatch = splitLines(tags["journalmatch"])
	if v := strings.TrimSpace(tags["usedns"]); v != "" {
		d.UseDNS = v
	}
	if v := strings.TrimSpace(tags["maxlines"]); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: maxlines %q: want a whole number above 0", c.whereOf("Definition", "maxlines"), v)
		}
		d.Maxlines = min(n, maxLinesCap)
	}
	if len(d.Failregex) == 0 {
		return nil, fmt.Errorf("%s: filter %q has no failregex", strings.Join(c.files, ", "), name)
	}
	d.Mode = init["mode"]
	if d.Mode == "" {
		d.Mode, _ = addrepl("mode")
	}
	d.Modes = c.modes(d.Mode)
	if len(d.Modes) == 0 {
		d.Mode = ""
	}
	return d, nil
}

// maxLinesCap bounds a filter's multi-line buffer.
const maxLinesCap = 100

func splitLines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// modeRefRE finds option names built from the mode: <prefix<mode>suffix>.
var modeRefRE = regexp.MustCompile(`<([^<> ]*)<mode>([^<> ]*)>`)

// modes lists the modes a filter offers, def (its default) first: the
// values of <mode> for which every option named through it, such as
// <mdre-<mode>> and <mdre-<mode>-other>, exists.
func (c *config) modes(def string) []string {
	if def == "" {
		return nil
	}
	var sets []map[string]bool
	seen := map[string]bool{}
	for _, sect := range []string{"Definition", "DEFAULT"} {
		vals := c.sections[sect]
		if sect == "DEFAULT" {
			vals = c.defaults
		}
		for _, v := range vals {
			for _, m := range modeRefRE.FindAllStringSubmatch(v, -1) {
				key := m[1] + "\x00" + m[2]
				if seen[key] {
					continue
				}
				seen[key] = true
				set := map[string]bool{}
				for _, o := range c.allOptions() {
					if mid, ok := strings.CutPrefix(o, m[1]); ok {
						if mid, ok = strings.CutSuffix(mid, m[2]); ok && mid != "" && !strings.ContainsAny(mid, "<>") {
							set[mid] = true
						}
					}
				}
				sets = append(sets, set)
			}
		}
	}
	if len(sets) == 0 {
		return []string{def}
	}
	var modes []string
	for m := range sets[0] {
		all := true
		for _, s := range sets[1:] {
			all = all && s[m]
		}
		if all && m != def {
			modes = append(modes, m)
		}
	}
	sort.Strings(modes)
	return append([]string{def}, modes...)
}

// allOptions lists the options of [Definition] and [DEFAULT].
func (c *config) allOptions() []string {
	var out []string
	for k := range c.sections["Definition"] {
		out = append(out, k)
	}
	for k := range c.defaults {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// maxTagReplace is fail2ban's MAX_TAG_REPLACE_COUNT.
const maxTagReplace = 25

var tagRE = regexp.MustCompile(`<([^ <>]+)>`)

// substituteTags replaces <name> in each value by the value of the option
// name (another of tags, or what addrepl finds), until nothing changes:
// fail2ban's substituteRecursiveTags. Tags naming nothing (<HOST>) stay.
func substituteTags(in map[string]string, addrepl func(string) (string, bool)) (map[string]string, error) {
	tags := map[string]string{}
	for k, v := range in {
		tags[k] = v
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	counts := map[string]map[string]int{}
	done := map[string]bool{}
	for pass := 0; ; pass++ {
		if pass > 100 {
			return nil, errors.New("tags nested too deep to resolve")
		}
		again := false
		for _, tag := range keys {
			if done[tag] {
				continue
			}
			value := tags[tag]
			orig := value
			rplc := counts[tag]
			if rplc == nil {
				rplc = map[string]int{}
			}
			from := 0
			for {
				loc := tagRE.FindStringSubmatchIndex(value[from:])
				if loc == nil {
					break
				}
				start, end := from+loc[0], from+loc[1]
				rtag := value[from+loc[2] : from+loc[3]]
				if rtag == tag || rplc[rtag] > maxTagReplace {
					return nil, fmt.Errorf("option %q refers to itself through <%s>", tag, rtag)
				}
				repl, ok := tags[rtag]
				if !ok && addrepl != nil {
					repl, ok = addrepl(rtag)
				}
				if !ok {
					from = end
					continue
				}
				value = strings.ReplaceAll(value, "<"+rtag+">", repl)
				rplc[rtag]++
				from = start
				if len(value) > maxValueLen {
					return nil, fmt.Errorf("option %q grows past %d bytes as its tags are replaced", tag, maxValueLen)
				}
			}
			if value != orig {
				if tagRE.MatchString(value) {
					counts[tag] = rplc
					again = true
				}
				tags[tag] = value
			}
			if !strings.Contains(value, "<") {
				done[tag] = true
			}
		}
		if !again {
			return tags, nil
		}
	}
}

// maxValueLen bounds an option's value as tags are replaced.
const maxValueLen = 1 << 20
