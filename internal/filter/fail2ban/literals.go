package fail2ban

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
)

// Literal prefilters: texts a line must hold (or start with) for an
// expression to match it, read from the expression's syntax tree, and a
// one-pass search for a set of them.

// textSet finds whether a string holds any of a set of texts (each at
// least two bytes long) in one pass: a bitmap of the texts' first two
// bytes flags the positions worth a look, and only there are the texts
// that start so compared. A line of a hundred bytes costs a hundred
// bitmap probes, where asking strings.Contains of each of twenty texts
// costs twenty scans.
type textSet struct {
	pairs  [1 << 16 / 64]uint64
	byPair map[uint16][]string
}

func pairOf(a, b byte) uint16 { return uint16(a)<<8 | uint16(b) }

// newTextSet returns the set of texts, or nil when one is shorter than two
// bytes (it would flag too many positions).
func newTextSet(texts []string) *textSet {
	ts := &textSet{byPair: map[uint16][]string{}}
	for _, t := range texts {
		if len(t) < 2 {
			return nil
		}
		p := pairOf(t[0], t[1])
		ts.pairs[p/64] |= 1 << (p % 64)
		ts.byPair[p] = append(ts.byPair[p], t)
	}
	return ts
}

// any reports whether s holds one of the texts.
func (ts *textSet) any(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		p := pairOf(s[i], s[i+1])
		if ts.pairs[p/64]&(1<<(p%64)) == 0 {
			continue
		}
		for _, t := range ts.byPair[p] {
			if strings.HasPrefix(s[i:], t) {
				return true
			}
		}
	}
	return false
}

// prefilter is what a line must hold for an expression to match it: a
// line that fails it matches not, and the engine need not run.
type prefilter struct {
	// need is a literal every match contains (case-sensitive); "" when
	// none is known.
	need string
	// starts lists the texts one of which every match starts with, for an
	// expression anchored at the start of the text; nil when not known.
	starts []string
	// anyOf lists texts one of which every match contains (alternatives
	// that share no literal, as "reject:|too many errors"); nil when not
	// known or when need says as much.
	anyOf []string
}

// newPrefilter reads the prefilter of a Go expression; its starts only
// when withStarts is set.
func newPrefilter(expr string, withStarts bool) prefilter {
	p := prefilter{need: requiredLiteral(expr)}
	if p.need == "" {
		p.anyOf = requiredAny(expr)
	}
	if withStarts {
		p.starts = anchoredPrefixes(expr)
	}
	return p
}

// mayMatch reports whether s passes the checks: it starts with one of
// starts and holds need and one of anyOf. False means no match.
func (p *prefilter) mayMatch(s string) bool {
	if p.starts != nil {
		ok := false
		for _, t := range p.starts {
			if strings.HasPrefix(s, t) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if p.need != "" && !strings.Contains(s, p.need) {
		return false
	}
	return containsAny(s, p.anyOf)
}

// containsAny reports whether s holds one of texts; true for none.
func containsAny(s string, texts []string) bool {
	for _, t := range texts {
		if strings.Contains(s, t) {
			return true
		}
	}
	return len(texts) == 0
}

// requiredAny returns texts one of which every match of the Go expression
// contains, each at least 3 bytes long, or nil when it knows none.
func requiredAny(expr string) []string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	set := anyLiterals(re.Simplify())
	for _, t := range set {
		if len(t) < 3 {
			return nil
		}
	}
	return set
}

// anyLiterals returns texts one of which every match of re holds (nil:
// unknown). Of a concatenation's parts, it takes the set whose shortest
// text is longest; an alternation unites its branches' sets.
func anyLiterals(re *syntax.Regexp) []string {
	if t, ok := plainLiteral(re); ok {
		return []string{t}
	}
	if sub := within(re); sub != nil {
		return anyLiterals(sub)
	}
	switch re.Op {
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			set := anyLiterals(sub)
			if set == nil {
				return nil
			}
			out = append(out, set...)
		}
		if len(out) > maxStarts {
			return nil
		}
		return out
	case syntax.OpConcat:
		var best []string
		consider := func(set []string) {
			if set != nil && minLen(set) > minLen(best) {
				best = set
			}
		}
		concatParts(re, func(run string) { consider([]string{run}) }, func(sub *syntax.Regexp) {
			consider(anyLiterals(sub))
		})
		return best
	}
	return nil
}

// minLen is the length of the shortest text of set; -1 for none.
func minLen(set []string) int {
	m := -1
	for _, t := range set {
		if m < 0 || len(t) < m {
			m = len(t)
		}
	}
	return m
}

// Bounds of anchoredPrefixes' answer: more or longer prefixes cost more
// than they save.
const (
	maxStarts   = 16
	maxStartLen = 24
)

// anchoredPrefixes returns, for a Go expression anchored at the start of
// the text (\A or ^ without (?m)), the texts one of which every match
// starts with; nil when the expression is not so anchored or its start is
// not a short set of literals (case-folded text, classes of many runes).
func anchoredPrefixes(expr string) []string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	seq := flatten(re.Simplify())
	if len(seq) == 0 || seq[0].Op != syntax.OpBeginText {
		return nil
	}
	ps, ok := prefixesOf(seq[1:])
	if !ok {
		return nil
	}
	for _, p := range ps {
		if p == "" {
			return nil
		}
	}
	if len(ps) == 0 {
		return nil
	}
	// Sorted, a text that another starts follows it: keep the shorter.
	slices.Sort(ps)
	out := ps[:1]
	for _, p := range ps[1:] {
		if !strings.HasPrefix(p, out[len(out)-1]) {
			out = append(out, p)
		}
	}
	return out
}

// foldVariants returns r and the runes it folds to.
func foldVariants(r rune) []rune {
	out := []rune{r}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		out = append(out, f)
	}
	return out
}

// flatten lists the parts of a concatenation, captures opened.
func flatten(re *syntax.Regexp) []*syntax.Regexp {
	switch re.Op {
	case syntax.OpConcat:
		var out []*syntax.Regexp
		for _, sub := range re.Sub {
			out = append(out, flatten(sub)...)
		}
		return out
	case syntax.OpCapture:
		return flatten(re.Sub[0])
	case syntax.OpEmptyMatch:
		return nil
	}
	return []*syntax.Regexp{re}
}

// prefixesOf returns texts one of which every match of the sequence seq
// starts with ("" when a match may start with anything); ok is false when
// the set would be too large.
func prefixesOf(seq []*syntax.Regexp) (ps []string, ok bool) {
	if len(seq) == 0 {
		return []string{""}, true
	}
	first, rest := seq[0], seq[1:]
	var heads []string
	switch first.Op {
	case syntax.OpLiteral:
		if first.Flags&syntax.FoldCase == 0 {
			heads = []string{string(first.Rune)}
			break
		}
		// A short case-folded literal ("[iI]" parses as one) is its
		// spellings.
		if len(first.Rune) > 2 {
			return []string{""}, true
		}
		heads = []string{""}
		for _, r := range first.Rune {
			var next []string
			for _, h := range heads {
				for _, v := range foldVariants(r) {
					next = append(next, h+string(v))
				}
			}
			heads = next
		}
	case syntax.OpCharClass:
		// A few single runes, as [iI].
		for i := 0; i < len(first.Rune); i += 2 {
			for r := first.Rune[i]; r <= first.Rune[i+1]; r++ {
				if len(heads) >= 4 {
					return []string{""}, true
				}
				heads = append(heads, string(r))
			}
		}
	case syntax.OpAlternate:
		for _, alt := range first.Sub {
			sub, ok := prefixesOf(append(flatten(alt), rest...))
			if !ok {
				return nil, false
			}
			ps = append(ps, sub...)
			if len(ps) > maxStarts {
				return nil, false
			}
		}
		return ps, true
	case syntax.OpQuest:
		with, ok1 := prefixesOf(append(flatten(first.Sub[0]), rest...))
		without, ok2 := prefixesOf(rest)
		if !ok1 || !ok2 || len(with)+len(without) > maxStarts {
			return nil, false
		}
		return append(with, without...), true
	case syntax.OpCapture, syntax.OpConcat:
		return prefixesOf(append(flatten(first), rest...))
	case syntax.OpEmptyMatch:
		return prefixesOf(rest)
	default:
		return []string{""}, true
	}
	tails, ok := prefixesOf(rest)
	if !ok {
		// What follows is too varied: the head alone is still a prefix.
		return heads, true
	}
	if len(heads)*len(tails) > maxStarts {
		return heads, true
	}
	for _, h := range heads {
		for _, t := range tails {
			p := h + t
			if len(p) > maxStartLen {
				p = p[:maxStartLen]
			}
			ps = append(ps, p)
		}
	}
	return ps, true
}

// requiredLiteral returns the longest case-sensitive literal every match
// of the Go expression contains, or "".
func requiredLiteral(expr string) string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return ""
	}
	best := ""
	for _, l := range literals(re.Simplify()) {
		if len(l) > len(best) {
			best = l
		}
	}
	if len(best) < 3 {
		return ""
	}
	return best
}

// literals lists literals every match of re holds.
func literals(re *syntax.Regexp) []string {
	if t, ok := plainLiteral(re); ok {
		return []string{t}
	}
	if sub := within(re); sub != nil {
		return literals(sub)
	}
	if re.Op != syntax.OpConcat {
		return nil
	}
	var out []string
	concatParts(re, func(run string) { out = append(out, run) }, func(sub *syntax.Regexp) {
		out = append(out, literals(sub)...)
	})
	return out
}

// plainLiteral returns re's text when re is a case-sensitive literal.
func plainLiteral(re *syntax.Regexp) (string, bool) {
	if re.Op != syntax.OpLiteral || re.Flags&syntax.FoldCase != 0 {
		return "", false
	}
	return string(re.Rune), true
}

// within returns the expression a match of every match of re holds, for a
// capture, x+ and x{n,} with n >= 1; nil for others.
func within(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return re.Sub[0]
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return re.Sub[0]
		}
	}
	return nil
}

// concatParts walks a concatenation's parts in order: each run of
// consecutive case-sensitive literals to run, joined, each other part to
// other.
func concatParts(re *syntax.Regexp, run func(string), other func(*syntax.Regexp)) {
	text := ""
	for _, sub := range re.Sub {
		if t, ok := plainLiteral(sub); ok {
			text += t
			continue
		}
		if text != "" {
			run(text)
			text = ""
		}
		other(sub)
	}
	if text != "" {
		run(text)
	}
}
