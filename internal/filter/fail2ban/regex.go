package fail2ban

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
)

// The tags fail2ban replaces in its regular expressions (failregex.py):
// the address forms, and <F-NAME>...</F-NAME> groups.
const (
	reIP4    = `(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})`
	reIP6    = `(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):))`
	reDNS    = `(?P<dns>[\w\-.^_]*\w)`
	reCIDR   = `(?P<cidr>\d+)`
	reAddr   = `\[?(?:` + reIP4 + `|` + reIP6 + `)\]?`
	reHost   = `(?:` + reAddr + `|` + reDNS + `)`
	reSubnet = `\[?(?:` + reIP4 + `|` + reIP6 + `)(?:/` + reCIDR + `)?\]?`
)

var hostTags = map[string]string{
	"IP4": reIP4, "F-IP4/": reIP4,
	"IP6": reIP6, "F-IP6/": reIP6,
	"ADDR": reAddr, "F-ADDR/": reAddr,
	"CIDR": reCIDR, "F-CIDR/": reCIDR,
	"SUBNET": reSubnet, "F-SUBNET/": reSubnet,
	"DNS": reDNS, "F-DNS/": reDNS,
	"F-ID/":   `(?P<fid>\S+)`,
	"F-PORT/": `(?P<fport>\w+)`,
}

var (
	ftagRE  = regexp.MustCompile(`</?[\w\-]+/?>`)
	fcustRE = regexp.MustCompile(`^(/?)F-([A-Z0-9_\-]+)$`)
)

// groupName maps an F-tag's name to its group: F-ID is fid, F-PORT fport,
// others lower-cased (F-USER is user, F-ALT_USER alt_user).
func groupName(tag string) string {
	t := strings.ToLower(tag)
	switch t {
	case "id":
		return "fid"
	case "port":
		return "fport"
	}
	return strings.ReplaceAll(t, "-", "_")
}

// resolveTags replaces fail2ban's tags in re as fail2ban's
// Regex._resolveHostTag does; useDNS "no" leaves host names out of <HOST>.
func resolveTags(re, useDNS string) string {
	open := map[string]bool{}
	nl := 0
	return ftagRE.ReplaceAllStringFunc(re, func(tag string) string {
		tn := tag[1 : len(tag)-1]
		switch tn {
		case "HOST":
			if useDNS == "no" {
				return reAddr
			}
			return reHost
		case "SKIPLINES":
			s := fmt.Sprintf(`\n(?P<skiplines%d>(?:(?:.*\n)*?))`, nl)
			nl++
			return s
		}
		if r, ok := hostTags[tn]; ok {
			return r
		}
		m := fcustRE.FindStringSubmatch(tn)
		if m == nil {
			return tag
		}
		if m[1] != "" { // a closing tag
			if open[m[2]] {
				return ")"
			}
			return tag
		}
		open[m[2]] = true
		return "(?P<" + groupName(m[2]) + ">"
	})
}

// rx is one compiled fail2ban expression: Go's regexp where the expression
// allows (linear time), else a backtracking engine with look-arounds,
// back-references and conditionals (regexp2, .NET syntax). Both find the
// leftmost match with Python's priorities.
type rx struct {
	src   string
	re    *regexp.Regexp
	r2    *regexp2.Regexp
	names []string // group names by group number
	// tr is r2's expression rewritten exactly in Go's syntax
	// (translate.go), as alternatives; used on lines of printable ASCII.
	// nil when not rewritten.
	tr        []trAlt
	prefilter // checked before the engine runs
}

// backtrackLimit bounds the backtracking stack of one match, so a hostile
// line cannot make a reader's memory grow.
const backtrackLimit = 1 << 16

// compileRx compiles a fail2ban expression (tags already resolved).
// multiline makes ^ and $ match at line breaks (filters with maxlines > 1).
func compileRx(src string, multiline bool) (*rx, error) {
	expr := globalToLocalFlags(src)
	r := &rx{src: src}
	expr = stripUnicodeFlag(expr)
	goExpr := goSyntax(expr)
	if multiline {
		goExpr = "(?m)" + goExpr
	}
	if re, err := regexp.Compile(goExpr); err == nil {
		r.re = re
		r.names = re.SubexpNames()
		r.prefilter = newPrefilter(goExpr, true)
		return r, nil
	}
	opts := regexp2.None
	if multiline {
		opts |= regexp2.Multiline
	}
	re2, err := regexp2.Compile(pyToNet(expr), opts, regexp2.OptionMaxBacktrackingStackSize(backtrackLimit))
	if err != nil {
		return nil, fmt.Errorf("regular expression %q: %w", src, err)
	}
	r.r2 = re2
	if !multiline {
		r.tr = compileTranslation(expr)
	}
	// The literal prefilter of a regexp2 expression is read from a Go
	// expression that matches at least what it matches (its starts only
	// without multiline, which that expression does not carry).
	r.prefilter = newPrefilter(pyToGo(approxGo(expr)), !multiline)
	nums := re2.GetGroupNumbers()
	maxN := 0
	for _, n := range nums {
		maxN = max(maxN, n)
	}
	r.names = make([]string, maxN+1)
	for _, n := range nums {
		if name := re2.GroupNameFromNumber(n); name != fmt.Sprint(n) {
			r.names[n] = name
		}
	}
	return r, nil
}

// Engine names the engine an expression runs on, for tests and listings.
func (r *rx) Engine() string {
	switch {
	case r.re != nil:
		return "go"
	case r.tr != nil:
		return "go-translated"
	}
	return "regexp2"
}

// groups is a match's named groups. A group that did not take part is
// absent; one that matched empty text is present and "".
type groups map[string]string

// find searches s (runes: s as runes, made on first need and kept by the
// caller for the other expressions tried on s) and returns the named
// groups of the leftmost match, or nil.
func (r *rx) find(s string, runes *[]rune) (g groups, start, end int) {
	if !r.mayMatch(s) {
		return nil, 0, 0
	}
	if r.re != nil {
		return goFind(r.re, r.names, s)
	}
	if r.tr != nil && plainASCII(s) {
		return findFirst(r.tr, s)
	}
	if *runes == nil {
		*runes = make([]rune, 0, utf8.RuneCountInString(s))
		for _, c := range s {
			*runes = append(*runes, c)
		}
	}
	m, err := r.r2.FindRunesMatch(*runes)
	if err != nil || m == nil {
		return nil, 0, 0
	}
	g = groups{}
	for i, name := range r.names {
		if name == "" {
			continue
		}
		grp := m.GroupByNumber(i)
		if grp != nil && len(grp.Captures) > 0 {
			g[name] = grp.String()
		}
	}
	g[""] = m.String()
	altGroups(g)
	start, n := m.ByteRange()
	return g, start, start + n
}

// goFind is find with Go's regexp; names are re's group names.
func goFind(re *regexp.Regexp, names []string, s string) (groups, int, int) {
	loc := re.FindStringSubmatchIndex(s)
	if loc == nil {
		return nil, 0, 0
	}
	return groupsAt(names, s, loc)
}

// groupsAt returns the groups of the match at loc (as Go's
// FindStringSubmatchIndex gives it); names are the groups' names.
func groupsAt(names []string, s string, loc []int) (groups, int, int) {
	g := groups{}
	for i, name := range names {
		if name != "" && loc[2*i] >= 0 {
			g[name] = s[loc[2*i]:loc[2*i+1]]
		}
	}
	g[""] = s[loc[0]:loc[1]]
	altGroups(g)
	return g, loc[0], loc[1]
}

// trAlt is one alternative of a translated expression.
type trAlt struct {
	re    *regexp.Regexp
	names []string
	// needs are texts every match holds: without one of them, the
	// alternative is not run.
	needs []string
}

// compileTranslation compiles expr's exact Go translation, or returns nil.
func compileTranslation(expr string) []trAlt {
	alts, err := translateToGo(expr)
	if err != nil {
		return nil
	}
	var out []trAlt
	for _, a := range alts {
		src := goSyntax(a)
		re, err := regexp.Compile(src)
		if err != nil {
			return nil
		}
		t := trAlt{re: re, names: re.SubexpNames()}
		if sre, err := syntax.Parse(src, syntax.Perl); err == nil {
			for _, l := range literals(sre.Simplify()) {
				if len(l) >= 2 && !slices.Contains(t.needs, l) {
					t.needs = append(t.needs, l)
				}
			}
		}
		out = append(out, t)
	}
	return out
}

// findFirst returns the match of the alternation of alts: the leftmost
// of their matches, the earliest alternative's on a tie.
func findFirst(alts []trAlt, s string) (groups, int, int) {
	var best *trAlt
	var bestLoc []int
next:
	for i := range alts {
		a := &alts[i]
		for _, n := range a.needs {
			if !strings.Contains(s, n) {
				continue next
			}
		}
		loc := a.re.FindStringSubmatchIndex(s)
		if loc != nil && (bestLoc == nil || loc[0] < bestLoc[0]) {
			best, bestLoc = a, loc
			if loc[0] == 0 {
				break
			}
		}
	}
	if best == nil {
		return nil, 0, 0
	}
	return groupsAt(best.names, s, bestLoc)
}

// plainASCII reports whether s is printable ASCII and tabs, where a
// translated expression and regexp2 read classes alike (translate.go).
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c > '~' {
			return false
		}
	}
	return true
}

// globalToLocalFlags turns "((?i)x)" and "(?:(?i)x)" into "(?i:x)", as
// fail2ban does for Python versions that reject global flags mid-pattern.
func globalToLocalFlags(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			b.WriteString(s[i : i+2])
			i++
			continue
		}
		if s[i] == '(' {
			j := i + 1
			if strings.HasPrefix(s[j:], "?:") {
				j += 2
			}
			if strings.HasPrefix(s[j:], "(?") {
				k := j + 2
				for k < len(s) && s[k] >= 'a' && s[k] <= 'z' {
					k++
				}
				if k > j+2 && k < len(s) && s[k] == ')' {
					b.WriteString(s[j:k])
					b.WriteByte(':')
					i = k
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pyToGo rewrites the Python spellings Go's syntax lacks: \Z (Go's \z)
// and {,n} (Go's {0,n}). What Go cannot express at all (look-arounds,
// back-references) makes regexp.Compile fail, and the caller falls back.
func pyToGo(s string) string {
	return rewrite(s, func(b *strings.Builder, s string, i int) int {
		switch {
		case strings.HasPrefix(s[i:], `\Z`):
			b.WriteString(`\z`)
			return 2
		case strings.HasPrefix(s[i:], "{,"):
			b.WriteString("{0,")
			return 2
		}
		return 0
	})
}

// goSyntax rewrites a Python expression (flags made local) into Go's
// spelling: pyToGo, and fail2ban's IPv6 expression's ending "(?<=:):",
// where what precedes always ends in ':', as the plain ':' it means.
func goSyntax(expr string) string {
	return strings.ReplaceAll(pyToGo(expr), "(?<=:):", ":")
}

// pyToNet rewrites Python's syntax into .NET's: (?P<name> is (?<name>,
// (?P=name) is \k<name>, \Z is \z, {,n} is {0,n}.
func pyToNet(s string) string {
	return rewrite(s, func(b *strings.Builder, s string, i int) int {
		switch {
		case strings.HasPrefix(s[i:], "(?P<"):
			b.WriteString("(?<")
			return 4
		case strings.HasPrefix(s[i:], "(?P="):
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				return 0
			}
			b.WriteString(`\k<` + s[i+4:i+end] + ">")
			return end + 1
		case strings.HasPrefix(s[i:], `\Z`):
			b.WriteString(`\z`)
			return 2
		case strings.HasPrefix(s[i:], "{,"):
			b.WriteString("{0,")
			return 2
		}
		return 0
	})
}

// rewrite copies s, letting f replace text outside character classes and
// escapes: f returns how many bytes it consumed (0: none, copy one byte).
func rewrite(s string, f func(b *strings.Builder, s string, i int) int) string {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			if !inClass {
				if n := f(&b, s, i); n > 0 {
					i += n
					continue
				}
			}
			b.WriteString(s[i : i+2])
			i += 2
			continue
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			b.WriteByte(c)
			i++
			// A ']' first in a class (after an optional '^') is literal.
			if i < len(s) && s[i] == '^' {
				b.WriteByte('^')
				i++
			}
			if i < len(s) && s[i] == ']' {
				b.WriteByte(']')
				i++
			}
			continue
		default:
			if n := f(&b, s, i); n > 0 {
				i += n
				continue
			}
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

// approxGo rewrites a Python expression Go cannot compile into one Go can
// parse that matches every string the original matches (and maybe more),
// for requiredLiteral: look-arounds match no text and are left out, a
// conditional "(?(g)yes|no)" becomes "(?:yes|no)" and a back-reference any
// text. A literal every match of the wider expression holds, every match of
// the original holds too.
func approxGo(s string) string {
	return rewrite(s, func(b *strings.Builder, s string, i int) int {
		rest := s[i:]
		switch {
		case len(rest) > 1 && rest[0] == '\\' && rest[1] >= '1' && rest[1] <= '9':
			n := 2
			for n < len(rest) && isDigit(rest[n]) {
				n++
			}
			b.WriteString(`(?s:.*)`)
			return n
		case strings.HasPrefix(rest, "(?=") || strings.HasPrefix(rest, "(?!") ||
			strings.HasPrefix(rest, "(?<=") || strings.HasPrefix(rest, "(?<!"):
			if end := groupEnd(s, i); end > 0 {
				return end - i + 1
			}
		case strings.HasPrefix(rest, "(?P="):
			if end := groupEnd(s, i); end > 0 {
				b.WriteString(`(?s:.*)`)
				return end - i + 1
			}
		case strings.HasPrefix(rest, "(?("):
			// (?(name)yes|no): the condition goes, the branches stay.
			if cond := strings.IndexByte(rest[3:], ')'); cond >= 0 {
				b.WriteString("(?:")
				return 3 + cond + 1
			}
		}
		return 0
	})
}

// groupEnd returns the index of the ')' that closes the group opening at
// s[open], or -1.
func groupEnd(s string, open int) int {
	depth, inClass := 0, false
	for i := open; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			if i+1 < len(s) && s[i+1] == '^' {
				i++
			}
			if i+1 < len(s) && s[i+1] == ']' {
				i++
			}
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}
