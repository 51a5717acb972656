package fail2ban

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dlclark/regexp2/v2"
)

// Date detection as fail2ban does it (datedetector.py, datetemplate.py):
// a filter's datepattern, or fail2ban's default templates, find the time
// stamp in a line; the stamp is cut out before the filter's expressions
// see the line, and gives the line's time.

// timeRE is fail2ban's table of strptime directives (its strptime.timeRE,
// in the C locale). ExY is computed for the current years (yearRE).
var timeRE = map[string]string{
	"%":   "%",
	"A":   `(?P<A>wednesday|thursday|saturday|tuesday|monday|friday|sunday)`,
	"B":   `(?P<B>september|february|november|december|january|october|august|march|april|june|july|may)`,
	"ExH": `(?P<H>[0-1]\d|2[0-3])`,
	"ExM": `(?P<M>[0-5]\d)`,
	"ExS": `(?P<S>[0-5]\d|6[0-1])`,
	"ExZ": `(?P<Z>[A-Z](?:[A-Z]{2,4})?)`,
	"Exd": `(?P<d>[1-2]\d|0[1-9]|3[0-1])`,
	"Exk": ` ?(?P<H>[0-1]?\d|2[0-3])`,
	"Exl": ` ?(?P<I>1[0-2]|\d)`,
	"Exm": `(?P<m>0[1-9]|1[0-2])`,
	"Exy": `(?P<y>\d{2})`,
	"Exz": `(?P<z>(?:[A-Z](?:[A-Z]{2,4})?)?[+-][01]\d(?::?\d{2})?|[A-Z](?:[A-Z]{2,4})?)`,
	"G":   `(?P<G>\d\d\d\d)`,
	"H":   `(?P<H>[0-1]?\d|2[0-3])`,
	"I":   `(?P<I>1[0-2]|0[1-9]|[1-9])`,
	"M":   `(?P<M>[0-5]?\d)`,
	"S":   `(?P<S>[0-5]?\d|6[0-1])`,
	"U":   `(?P<U>5[0-3]|[0-4]\d|\d)`,
	"V":   `(?P<V>5[0-3]|0[1-9]|[1-4]\d|\d)`,
	"W":   `(?P<W>5[0-3]|[0-4]\d|\d)`,
	"X":   `(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)`,
	"Y":   `(?P<Y>\d{4})`,
	"Z":   `(?P<Z>Z|[A-Z]{3,5})`,
	"a":   `(?P<a>mon|tue|wed|thu|fri|sat|sun)`,
	"b":   `(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)`,
	"c":   `(?P<a>mon|tue|wed|thu|fri|sat|sun)\s+(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\s+(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])\s+(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)\s+(?P<Y>\d\d\d\d)`,
	"d":   `(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])`,
	"f":   `(?P<f>[0-9]{1,6})`,
	"j":   `(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])`,
	"k":   ` ?(?P<H>[0-2]?\d)`,
	"l":   ` ?(?P<I>1?\d)`,
	"m":   `(?P<m>0?[1-9]|1[0-2])`,
	"p":   `(?P<p>am|pm)`,
	"u":   `(?P<u>[1-7])`,
	"w":   `(?P<w>[0-6])`,
	"x":   `(?P<m>1[0-2]|0[1-9]|[1-9])/(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])/(?P<y>\d\d)`,
	"y":   `(?P<y>\d\d)`,
	"z":   `(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)`,
}

var directiveRE = regexp.MustCompile(`%(%|ExZ|Exz|Exd|Exm|ExH|Exk|Exl|ExM|ExS|ExY|Exy|[dfHIGjmMSUwuVyYzAaBbpZ%WcxXkl])`)

// yearRE is fail2ban's ExY: four-digit years from 2000 to three years
// from now, by their first three digits.
func yearRE(now time.Time) string {
	seen := map[string]bool{}
	var alts []string
	for y := 1999; y <= now.Year()+3; y++ {
		p := strconv.Itoa(y)[:3]
		if !seen[p] {
			seen[p] = true
			alts = append(alts, p)
		}
	}
	return `(?P<Y>(?:` + strings.Join(alts, "|") + `)\d)`
}

// defaultTemplates are fail2ban's DEFAULT_TEMPLATES, in its order.
var defaultTemplates = []string{
	`%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?`,
	`(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	`(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?`,
	`%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S`,
	`%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?`,
	`%m/%d/%ExY:%H:%M:%S`,
	`%m-%d-%ExY %k:%M:%S(?:\.%f)?`,
	`EPOCH`,
	`{^LN-BEG}%H:%M:%S`,
	`^<%m/%d/%Exy@%H:%M:%S>`,
	`%Exy%Exm%Exd  ?%H:%M:%S`,
	`%b %d, %ExY %I:%M:%S %p`,
	`^%b-%d-%Exy %k:%M:%S`,
	`%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?`,
	`(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	`(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	`TAI64N`,
}

type templateKind uint8

const (
	kindPattern templateKind = iota
	kindEpoch
	kindTAI64N
)

// template is one compiled date template.
type template struct {
	name      string
	pattern   string // for pattern templates: the datepattern it came from
	kind      templateKind
	longEpoch bool
	grp       int // the group holding an epoch value
	re        *regexp2.Regexp
	anchored  bool // matches only at the start (or end) of a line
	names     []string
}

const (
	flagLineBegin = 1 << iota
	flagLineEnd
)

var (
	reGrouped      = regexp2.MustCompile(`(?<!(?:\(\?))(?<!\\)\((?!\?)`, regexp2.None)
	reGroup        = regexp2.MustCompile(`^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)(.*?)(\$?)$`, regexp2.Singleline)
	reGlobalFlags  = regexp2.MustCompile(`((?:^|(?!<\\))\(\?[a-z]+\))`, regexp2.None)
	reNoWordBegin  = regexp2.MustCompile(`^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)`, regexp2.None)
	reNoWordEnd    = regexp2.MustCompile(`(?<!\\)(?:\$\)?|\\b|\\s|\*\*\)*)$`, regexp2.None)
	reDelWordBound = regexp2.MustCompile(`^\(*(?:\(\?\w+\))?\(*\*\*|(?<!\\)\*\*\)*$`, regexp2.None)
	reLineBegin    = regexp2.MustCompile(`^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))`, regexp2.None)
	reLineEnd      = regexp2.MustCompile(`(?<![\\\|])(?:\$\)?)$`, regexp2.None)
	reAlpha        = regexp2.MustCompile(`(?<!\%)\%[aAbBpc]`, regexp2.None)
	reEpochPattern = regexp2.MustCompile(`(?<!\\)\{L?EPOCH\}`, regexp2.IgnoreCase)
	reDatePrematch = regexp2.MustCompile(`(?<!\\)\{DATE\}`, regexp2.IgnoreCase)
	reUnbound      = regexp.MustCompile(`^\{UNB\}`)
	reLnBeg        = regexp.MustCompile(`^\{\^LN-BEG\}`)
	reStartBound   = regexp.MustCompile(`^\((?:\?:)?\^\|\\b\|\\W\)`)
	reEndBound     = regexp.MustCompile(`\(\?=\\b\|\\W\|\$\)$`)
)

func r2match(re *regexp2.Regexp, s string) bool {
	ok, _ := re.MatchString(s)
	return ok
}

func r2replace(re *regexp2.Regexp, s, repl string, count int) string {
	out, err := re.Replace(s, repl, -1, count)
	if err != nil {
		return s
	}
	return out
}

// wordBound says how setRegex bounds a template at its start.
type wordBound uint8

const (
	boundNone  wordBound = iota
	boundWord            // (?=^|\b|\W)
	boundStart           // ^(?:\W{0,2})?
)

// setRegex is DateTemplate.setRegex: it bounds the expression at word
// boundaries unless it is anchored, and puts the date in group 1.
func (t *template) setRegex(regex string, begin wordBound, wordEnd bool) error {
	regex = strings.TrimSpace(regex)
	gf := ""
	if m, _ := reGlobalFlags.FindStringMatch(regex); m != nil {
		gf = m.GroupByNumber(1).String()
		regex = r2replace(reGlobalFlags, regex, "", 1)
	}
	boundBegin := begin != boundNone && !r2match(reNoWordBegin, regex)
	boundEnd := wordEnd && !r2match(reNoWordEnd, regex)
	if !r2match(reGrouped, regex) {
		regex = r2replace(reGroup, regex, "$1($2)$3", 1)
	}
	var flags int
	if boundBegin {
		if begin == boundWord {
			regex = `(?=^|\b|\W)` + regex
		} else {
			flags |= flagLineBegin
			regex = `^(?:\W{0,2})?` + regex
			if !strings.HasPrefix(t.name, "{^LN-BEG}") {
				t.name = "{^LN-BEG}" + t.name
			}
		}
	}
	if boundEnd {
		regex += `(?=\b|\W|$)`
	}
	if r2match(reLineBegin, regex) {
		flags |= flagLineBegin
	}
	if r2match(reLineEnd, regex) {
		flags |= flagLineEnd
	}
	regex = r2ReplaceFunc(reDelWordBound, regex, func(m string) string { return strings.ReplaceAll(m, "**", "") })
	regex = gf + regex
	re, err := regexp2.Compile(pyToNet(stripUnicodeFlag(regex)), regexp2.None, regexp2.OptionMaxBacktrackingStackSize(backtrackLimit))
	if err != nil {
		return fmt.Errorf("date pattern %q: %w", t.name, err)
	}
	t.re = re
	t.anchored = flags != 0
	t.names = groupNames(re)
	return nil
}

func r2ReplaceFunc(re *regexp2.Regexp, s string, f func(string) string) string {
	out, err := re.ReplaceFunc(s, func(m regexp2.Match) string { return f(m.String()) }, -1, -1)
	if err != nil {
		return s
	}
	return out
}

func groupNames(re *regexp2.Regexp) []string {
	nums := re.GetGroupNumbers()
	maxN := 0
	for _, n := range nums {
		maxN = max(maxN, n)
	}
	names := make([]string, maxN+1)
	for _, n := range nums {
		if name := re.GroupNameFromNumber(n); name != strconv.Itoa(n) {
			names[n] = name
		}
	}
	return names
}

// stripUnicodeFlag drops Python's u flag, which neither Go nor .NET know
// (their classes are Unicode-aware already): "(?iu)" is "(?i)", "(?u)" nothing.
func stripUnicodeFlag(s string) string {
	return inlineFlagRE.ReplaceAllStringFunc(s, func(f string) string {
		fl := strings.ReplaceAll(f[2:len(f)-1], "u", "")
		if fl == "" {
			return ""
		}
		return "(?" + fl + ")"
	})
}

var inlineFlagRE = regexp.MustCompile(`\(\?[aiLmsux]+\)`)

// newPatternTemplate is DatePatternRegex(pattern).
func newPatternTemplate(pattern string, begin wordBound, wordEnd bool, now time.Time) (*template, error) {
	t := &template{pattern: pattern, kind: kindPattern}
	if reUnbound.MatchString(pattern) {
		pattern = reUnbound.ReplaceAllString(pattern, "")
		begin, wordEnd = boundNone, false
	}
	if begin != boundNone && reLnBeg.MatchString(pattern) {
		pattern = reLnBeg.ReplaceAllString(pattern, "")
		begin = boundStart
	}
	t.name = pattern
	regex := directiveRE.ReplaceAllStringFunc(pattern, func(d string) string {
		k := d[1:]
		if k == "ExY" {
			return yearRE(now)
		}
		return timeRE[k]
	})
	if r2match(reAlpha, pattern) {
		regex = "(?i)" + regex
	}
	return t, t.setRegex(regex, begin, wordEnd)
}

const epochRE = `\d{10,11}\b(?:\.\d{3,6})?`
const longEpochRE = `\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?`

// newEpochTemplate is DateEpoch.
func newEpochTemplate(lineBeginOnly bool, pattern string, long bool) (*template, error) {
	t := &template{kind: kindEpoch, name: "Epoch", grp: 1, longEpoch: long}
	e := epochRE
	if long {
		t.name, e = "LongEpoch", longEpochRE
	}
	switch {
	case pattern != "":
		t.name = pattern
		t.grp = 2
		re := "(" + r2replace(reEpochPattern, pattern, "("+strings.ReplaceAll(e, "$", "$$")+")", -1) + ")"
		return t, t.setRegex(re, boundWord, true)
	case !lineBeginOnly:
		re := `((?:^|(?P<square>(?<=^\[))|(?P<selinux>(?<=\baudit\()))` + e + `)(?:(?(selinux)(?=:\d+\)))|(?(square)(?=\])))`
		return t, t.setRegex(re, boundNone, true)
	default:
		re := `((?P<square>(?<=^\[))?` + e + `)(?(square)(?=\]))`
		return t, t.setRegex(re, boundStart, true)
	}
}

func newTAI64NTemplate(start bool) (*template, error) {
	t := &template{kind: kindTAI64N, name: "TAI64N"}
	b := boundNone
	if start {
		b = boundStart
	}
	return t, t.setRegex(`@[0-9a-f]{24}`, b, true)
}

// patternTemplate is _getPatternTemplate: EPOCH and TAI64N keys, else a
// pattern.
func patternTemplate(pattern string, now time.Time) (*template, error) {
	key := pattern
	if !strings.Contains(pattern, "%") {
		key = strings.ToUpper(pattern)
	}
	if strings.Contains(key, "EPOCH") {
		switch {
		case r2match(reEpochPattern, pattern):
			return newEpochTemplate(false, pattern, strings.Contains(key, "LEPOCH"))
		case key == "EPOCH" || key == "{^LN-BEG}EPOCH" || key == "^EPOCH":
			return newEpochTemplate(key != "EPOCH", "", false)
		case key == "LEPOCH" || key == "{^LN-BEG}LEPOCH" || key == "^LEPOCH":
			return newEpochTemplate(key != "LEPOCH", "", true)
		}
	}
	if key == "TAI64N" || key == "{^LN-BEG}TAI64N" || key == "^TAI64N" {
		return newTAI64NTemplate(key != "TAI64N")
	}
	return newPatternTemplate(pattern, boundWord, true, now)
}

// unboundPattern is DateTemplate.unboundPattern.
func unboundPattern(p string) string {
	p = reUnbound.ReplaceAllString(p, "")
	p = reLnBeg.ReplaceAllString(p, "")
	p = reStartBound.ReplaceAllString(p, "")
	return reEndBound.ReplaceAllString(p, "")
}

// detector finds dates with a list of templates, trying the one that
// matched last first.
type detector struct {
	templates []*template
	last      int // index of the template that matched last, -1 for none
	fastSys   bool
}

// newDetector builds the templates of a filter's datepattern lines (none:
// fail2ban's defaults).
func newDetector(patterns []string, now time.Time) (*detector, error) {
	d := &detector{last: -1}
	if len(patterns) == 0 {
		patterns = []string{"{DEFAULT}"}
	}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		key := p
		if !strings.Contains(p, "%") {
			key = strings.ToUpper(p)
		}
		switch {
		case key == "{^LN-BEG}" || key == "{DEFAULT}":
			all, err := defaultSet(now)
			if err != nil {
				return nil, err
			}
			for _, t := range all {
				if key == "{^LN-BEG}" && !t.anchored {
					continue
				}
				d.templates = append(d.templates, t)
			}
			d.fastSys = true
		case strings.Contains(key, "{DATE}"):
			for _, dt := range defaultTemplates {
				base, err := patternTemplate(dt, now)
				if err != nil {
					return nil, err
				}
				src := base.pattern
				if base.kind != kindPattern {
					src = base.name
				}
				wrapped := r2ReplaceFunc(reDatePrematch, p, func(string) string { return unboundPattern(src) })
				t, err := patternTemplate(wrapped, now)
				if err != nil {
					return nil, err
				}
				d.templates = append(d.templates, t)
			}
		case key == "{NONE}":
			t, err := newPatternTemplate("{UNB}^", boundWord, true, now)
			if err != nil {
				return nil, err
			}
			d.templates = append(d.templates, t)
		default:
			t, err := patternTemplate(p, now)
			if err != nil {
				return nil, err
			}
			d.templates = append(d.templates, t)
		}
	}
	return d, nil
}

// defaultSet is fail2ban's default template list: each template anchored
// at the start of the line first, then all as they are.
func defaultSet(now time.Time) ([]*template, error) {
	var anchored, plain []*template
	for _, p := range defaultTemplates {
		t, err := patternTemplate(p, now)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(t.name, "{^LN-BEG}") && !strings.HasPrefix(t.name, "^") {
			var a *template
			switch t.kind {
			case kindPattern:
				a, err = patternTemplate("{^LN-BEG}"+t.pattern, now)
			default:
				a, err = patternTemplate("{^LN-BEG}"+t.name, now)
			}
			if err != nil {
				return nil, err
			}
			if a.name != t.name {
				anchored = append(anchored, a)
			}
		}
		plain = append(plain, t)
	}
	return append(anchored, plain...), nil
}

// dateMatch is where a template found the date in a line.
type dateMatch struct {
	start, end int // byte offsets of the date (group 1)
	t          *template
	m          *regexp2.Match
}

// find returns the date in line, if a template finds one.
func (d *detector) find(line string, runes []rune) (dateMatch, bool) {
	try := func(i int) (dateMatch, bool) {
		t := d.templates[i]
		m, err := t.re.FindRunesMatch(runes)
		if err != nil || m == nil {
			return dateMatch{}, false
		}
		g := m.GroupByNumber(1)
		if g == nil || len(g.Captures) == 0 {
			return dateMatch{}, false
		}
		s, n := g.ByteRange()
		return dateMatch{start: s, end: s + n, t: t, m: m}, true
	}
	var best dateMatch
	found := false
	lastIdx := d.last
	if d.last >= 0 {
		dm, ok := try(d.last)
		if ok && (dm.t.anchored || dm.start <= 1) {
			return dm, true
		}
		best, found = dm, ok
	}
	for i := range d.templates {
		if i == lastIdx {
			continue
		}
		dm, ok := try(i)
		if !ok {
			continue
		}
		if dm.t.anchored || dm.start <= 1 {
			d.last = i
			return dm, true
		}
		if !found || dm.start < best.start {
			best, found = dm, true
			d.last = i
		}
	}
	return best, found
}

// syslogStamp reports whether line starts with a plain RFC 3164 stamp
// ("Nov  2 14:03:07 ") followed by text that extends no default template:
// fail2ban's detector finds exactly these 15 bytes, so they are cut
// without running the templates.
func syslogStamp(line string) bool {
	if len(line) < 17 || line[15] != ' ' {
		return false
	}
	if !isMonth3(line[:3]) || line[3] != ' ' {
		return false
	}
	d := line[4:6]
	if !(d[0] == ' ' || isDigit(d[0])) || !isDigit(d[1]) {
		return false
	}
	if line[6] != ' ' || !isDigit(line[7]) || !isDigit(line[8]) || line[9] != ':' || !isDigit(line[10]) || !isDigit(line[11]) || line[12] != ':' || !isDigit(line[13]) || !isDigit(line[14]) {
		return false
	}
	// A year after the stamp would belong to it.
	c := line[16]
	return !isDigit(c)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isMonth3 reports whether s is an English month's three-letter name, in
// any case, without the allocation of a lower-cased copy.
func isMonth3(s string) bool {
	if len(s) != 3 {
		return false
	}
	var k [3]byte
	for i := range 3 {
		k[i] = s[i] | 0x20
	}
	switch string(k[:]) {
	case "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec":
		return true
	}
	return false
}

var months = map[string]time.Month{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}

var fullMonths = map[string]time.Month{"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8, "september": 9, "october": 10, "november": 11, "december": 12}

// zoneOffsets are the zone names fail2ban knows most often met, in minutes.
var zoneOffsets = map[string]int{"Z": 0, "UTC": 0, "GMT": 0, "WET": 0, "CET": 60, "CEST": 120, "EET": 120, "EEST": 180, "MSK": 180,
	"EST": -300, "EDT": -240, "CST": -360, "CDT": -300, "MST": -420, "MDT": -360, "PST": -480, "PDT": -420, "JST": 540, "IST": 330}

// time converts a match to a time; now dates year-less stamps (rolled back
// a year if they would lie more than a day ahead); loc is the zone of
// stamps that carry none.
func (dm dateMatch) time(now time.Time, loc *time.Location) (time.Time, bool) {
	t := dm.t
	switch t.kind {
	case kindEpoch:
		g := dm.m.GroupByNumber(t.grp)
		if g == nil {
			return time.Time{}, false
		}
		v := g.String()
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return time.Time{}, false
		}
		if t.longEpoch && len(v) >= 13 {
			if len(v) >= 16 && !strings.Contains(v, ".") {
				f /= 1e6
			} else {
				f /= 1e3
			}
		}
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).In(loc), true
	case kindTAI64N:
		v := dm.m.GroupByNumber(1).String()
		if len(v) < 17 {
			return time.Time{}, false
		}
		sec, err := strconv.ParseInt(v[2:17], 16, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(sec, 0).In(loc), true
	}
	get := func(name string) (string, bool) {
		for i, n := range t.names {
			if n == name {
				if g := dm.m.GroupByNumber(i); g != nil && len(g.Captures) > 0 {
					return g.String(), true
				}
			}
		}
		return "", false
	}
	num := func(name string) (int, bool) {
		v, ok := get(name)
		if !ok {
			return 0, false
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		return n, err == nil
	}
	year, hasYear := num("Y")
	if y, ok := num("y"); ok && !hasYear {
		year, hasYear = y, true
		if year <= 2000 {
			year += 2000
		}
	}
	month, hasMonth := num("m")
	if v, ok := get("b"); ok {
		month, hasMonth = int(months[strings.ToLower(v)]), true
	}
	if v, ok := get("B"); ok {
		month, hasMonth = int(fullMonths[strings.ToLower(v)]), true
	}
	day, hasDay := num("d")
	hour, _ := num("H")
	if h, ok := num("I"); ok {
		hour = h
		p, _ := get("p")
		switch strings.ToLower(p) {
		case "", "am":
			if hour == 12 {
				hour = 0
			}
		case "pm":
			if hour != 12 {
				hour += 12
			}
		}
	}
	minute, _ := num("M")
	second, _ := num("S")
	nsec := 0
	if f, ok := get("f"); ok {
		f = (f + "000000000")[:9]
		nsec, _ = strconv.Atoi(f)
	}
	zone := loc
	for _, z := range []string{"z", "Z"} {
		v, ok := get(z)
		if !ok {
			continue
		}
		if off, ok := zoneOffset(v); ok {
			zone = time.FixedZone(v, off*60)
		}
	}
	if !hasYear {
		year = now.Year()
	}
	if !hasMonth && !hasDay {
		month, day = int(now.Month()), now.Day()
	}
	if month < 1 || month > 12 || day < 1 || day > 31 {
		return time.Time{}, false
	}
	res := time.Date(year, time.Month(month), day, hour, minute, second, nsec, zone)
	if !hasYear && res.After(now.Add(24*time.Hour)) {
		res = res.AddDate(-1, 0, 0)
	}
	return res, true
}

func zoneOffset(v string) (int, bool) {
	if off, ok := zoneOffsets[v]; ok {
		return off, true
	}
	name := strings.TrimRight(v, "+-0123456789:")
	rest := v[len(name):]
	base := 0
	if name != "" {
		b, ok := zoneOffsets[name]
		if !ok {
			return 0, false
		}
		base = b
	}
	if rest == "" {
		return base, true
	}
	sign := 1
	if rest[0] == '-' {
		sign = -1
	}
	digits := strings.ReplaceAll(rest[1:], ":", "")
	if len(digits) < 2 {
		return 0, false
	}
	h, err := strconv.Atoi(digits[:2])
	if err != nil {
		return 0, false
	}
	m := 0
	if len(digits) >= 4 {
		m, _ = strconv.Atoi(digits[2:4])
	}
	return base + sign*(h*60+m), true
}
