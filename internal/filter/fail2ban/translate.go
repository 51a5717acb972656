package fail2ban

import (
	"errors"
	"regexp"
	"strings"
)

// Some expressions Go's syntax cannot take as they are can be rewritten
// into Go expressions that find exactly the same matches, with the same
// groups, as the backtracking engine does. fail2ban's sshd filter has the
// example that matters most: its "Failed ... for ... from <HOST>"
// failregex,
//
//	for (?P<cond_inv>invalid user )?<F-USER>(?P<cond_user>\S+)|(?(cond_inv)(?:(?! from ).)*?|[^:]+)</F-USER> from <HOST>...(?(cond_user): |(?:(?:(?! from ).)*)$)
//
// Two rewrites, each exact:
//
//   - Conditionals are expanded. Every choice that decides whether a group
//     a conditional tests takes part (an optional group, an alternation
//     holding such a group) is distributed over what follows it: (a|b)c is
//     ac|bc, X? is (?:X|) and X?? is (?:|X). In each alternative the
//     groups' participation is then known, and a conditional is its yes or
//     its no branch. Distribution keeps the order in which a backtracking
//     engine tries the ways to match, and Go's regexp picks, among the
//     leftmost matches, the one a backtracking engine would (leftmost-first
//     semantics), so the match and its groups are the same.
//   - A tempered token (?:(?!LIT).)* or *? (any text but a line break in
//     which LIT does not start) is an automaton over LIT's prefixes, when
//     what follows it decides where it ends: LIT itself (then it ends at
//     the first LIT, the only place it can) or the end of the text (then
//     it is the rest of the text, which must hold no LIT). Where neither
//     is the case, or LIT repeats its first character inside, the
//     expression is not rewritten.
//
// The rewritten expression is used on lines of printable ASCII (and tabs)
// only: there Go's and .NET's \s, \d, \w and . agree, and without a line
// break Python's $ (end, or before a final line break) is Go's. Other
// lines go to the backtracking engine.

// errNoTranslation is returned for an expression the rewrites do not cover.
var errNoTranslation = errors.New("no exact Go translation")

// translateToGo rewrites a Python expression (flags already made local)
// into Go expressions whose alternation is equivalent to it, or returns
// errNoTranslation. They are the expansion's alternatives in order, kept
// apart so each stays small (Go's backtracker, not its slower NFA, runs
// them): the leftmost of their matches, the first of them on a tie, is
// the alternation's match.
func translateToGo(expr string) ([]string, error) {
	root, err := parseRe(expr)
	if err != nil {
		return nil, err
	}
	refs := map[string]bool{}
	root.condRefs(refs)
	outs, err := expandNode(root, nil, refs)
	if err != nil {
		return nil, err
	}
	var exprs []string
	for _, o := range outs {
		if err := temper(o.seq, nil, true); err != nil {
			return nil, err
		}
		var b strings.Builder
		emitSeq(&b, o.seq)
		exprs = append(exprs, b.String())
	}
	return exprs, nil
}

const (
	kAtom   = iota // one character, escape, class, ., ^ or $
	kGroup         // (…), (?:…), (?P<n>…), look-arounds: text is the opening
	kRepeat        // sub followed by the quantifier in text
	kCond          // (?(name)yes|no): alts[0] yes, alts[1] no
)

type reNode struct {
	kind int
	text string
	name string      // a capture's or a conditional's group
	alts [][]*reNode // a group's alternatives; a conditional's branches
	sub  *reNode
}

// parseRe parses the subset of Python's syntax fail2ban's filters use.
func parseRe(s string) (*reNode, error) {
	p := &reParser{s: s}
	alts, err := p.alts()
	if err != nil {
		return nil, err
	}
	if p.i != len(s) {
		return nil, errNoTranslation // an unbalanced ')'
	}
	return &reNode{kind: kGroup, text: "(?:", alts: alts}, nil
}

type reParser struct {
	s string
	i int
}

var quantRE = regexp.MustCompile(`^(?:[*+?]|\{\d*(?:,\d*)?\})`)

func (p *reParser) alts() ([][]*reNode, error) {
	var alts [][]*reNode
	var seq []*reNode
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch c {
		case ')':
			return append(alts, seq), nil
		case '|':
			alts = append(alts, seq)
			seq = nil
			p.i++
			continue
		}
		n, err := p.atom()
		if err != nil {
			return nil, err
		}
		if q := quantRE.FindString(p.s[p.i:]); q != "" {
			if n.kind == kAtom && (n.text == "^" || n.text == "$") {
				return nil, errNoTranslation
			}
			p.i += len(q)
			if p.i < len(p.s) && p.s[p.i] == '?' {
				q += "?"
				p.i++
			} else if p.i < len(p.s) && p.s[p.i] == '+' {
				return nil, errNoTranslation // possessive
			}
			n = &reNode{kind: kRepeat, text: q, sub: n}
		}
		seq = append(seq, n)
	}
	return append(alts, seq), nil
}

func (p *reParser) atom() (*reNode, error) {
	s, i := p.s, p.i
	switch s[i] {
	case '\\':
		if i+1 >= len(s) {
			return nil, errNoTranslation
		}
		c := s[i+1]
		if isDigit(c) || strings.IndexByte("xuUNg", c) >= 0 {
			return nil, errNoTranslation // back-references, code points
		}
		p.i += 2
		return &reNode{kind: kAtom, text: s[i : i+2]}, nil
	case '[':
		j := i + 1
		if j < len(s) && s[j] == '^' {
			j++
		}
		if j < len(s) && s[j] == ']' {
			j++
		}
		for ; j < len(s) && s[j] != ']'; j++ {
			if s[j] == '\\' {
				j++
			} else if s[j] == '[' {
				return nil, errNoTranslation // Go reads [: as a named class
			}
		}
		if j >= len(s) {
			return nil, errNoTranslation
		}
		p.i = j + 1
		return &reNode{kind: kAtom, text: s[i : j+1]}, nil
	case '(':
		return p.group()
	case '*', '+', '?', '{':
		if s[i] == '{' && !quantRE.MatchString(s[i:]) {
			p.i++
			return &reNode{kind: kAtom, text: `\{`}, nil
		}
		return nil, errNoTranslation // a quantifier with nothing to repeat
	}
	p.i++
	return &reNode{kind: kAtom, text: s[i : i+1]}, nil
}

var groupOpenRE = regexp.MustCompile(`^\((?:\?P<(\w+)>|\?:|\?=|\?!|\?<=|\?<!|\?\((\w+)\)|)`)

func (p *reParser) group() (*reNode, error) {
	m := groupOpenRE.FindStringSubmatch(p.s[p.i:])
	if m == nil || (m[0] == "(" && strings.HasPrefix(p.s[p.i:], "(?")) {
		return nil, errNoTranslation // flags, comments, (?P=name)
	}
	p.i += len(m[0])
	alts, err := p.alts()
	if err != nil {
		return nil, err
	}
	if p.i >= len(p.s) || p.s[p.i] != ')' {
		return nil, errNoTranslation
	}
	p.i++
	if m[2] != "" {
		if len(alts) > 2 || isDigit(m[2][0]) {
			return nil, errNoTranslation
		}
		return &reNode{kind: kCond, name: m[2], alts: alts}, nil
	}
	return &reNode{kind: kGroup, text: m[0], name: m[1], alts: alts}, nil
}

func (n *reNode) children() []*reNode {
	var out []*reNode
	for _, a := range n.alts {
		out = append(out, a...)
	}
	if n.sub != nil {
		out = append(out, n.sub)
	}
	return out
}

func (n *reNode) condRefs(refs map[string]bool) {
	if n.kind == kCond {
		refs[n.name] = true
	}
	for _, c := range n.children() {
		c.condRefs(refs)
	}
}

// relevant reports whether n holds a conditional or a group one tests.
func (n *reNode) relevant(refs map[string]bool) bool {
	if n.kind == kCond || (n.kind == kGroup && refs[n.name]) {
		return true
	}
	for _, c := range n.children() {
		if c.relevant(refs) {
			return true
		}
	}
	return false
}

func (n *reNode) lookaround() bool {
	return n.kind == kGroup && (n.text == "(?=" || n.text == "(?!" || n.text == "(?<=" || n.text == "(?<!")
}

// condState is what is known of the tested groups on one path: absent
// has not taken part, open is being matched, done has taken part.
type condState map[string]int8

const (
	gOpen = 1
	gDone = 2
)

func (s condState) with(name string, v int8) condState {
	out := condState{name: v}
	for k, x := range s {
		if k != name {
			out[k] = x
		}
	}
	return out
}

// outcome is one way through a sequence, in a backtracking engine's order:
// its nodes with the tested choices made, and what is known after it.
type outcome struct {
	seq []*reNode
	st  condState
}

// maxOutcomes bounds the expansion: past it, no translation.
const maxOutcomes = 64

func expandSeq(seq []*reNode, st condState, refs map[string]bool) ([]outcome, error) {
	if len(seq) == 0 {
		return []outcome{{st: st}}, nil
	}
	firsts, err := expandNode(seq[0], st, refs)
	if err != nil {
		return nil, err
	}
	var out []outcome
	for _, f := range firsts {
		rests, err := expandSeq(seq[1:], f.st, refs)
		if err != nil {
			return nil, err
		}
		for _, r := range rests {
			joined := append(append([]*reNode(nil), f.seq...), r.seq...)
			out = append(out, outcome{seq: joined, st: r.st})
			if len(out) > maxOutcomes {
				return nil, errNoTranslation
			}
		}
	}
	return out, nil
}

func expandNode(n *reNode, st condState, refs map[string]bool) ([]outcome, error) {
	if !n.relevant(refs) {
		return []outcome{{seq: []*reNode{n}, st: st}}, nil
	}
	switch {
	case n.kind == kCond:
		v := st[n.name]
		if v == gOpen {
			return nil, errNoTranslation
		}
		var branch []*reNode
		if v == gDone {
			branch = n.alts[0]
		} else if len(n.alts) > 1 {
			branch = n.alts[1]
		}
		return expandSeq(branch, st, refs)
	case n.kind == kGroup && !n.lookaround():
		var out []outcome
		for _, a := range n.alts {
			in := st
			if refs[n.name] {
				in = st.with(n.name, gOpen)
			}
			outs, err := expandSeq(a, in, refs)
			if err != nil {
				return nil, err
			}
			for _, o := range outs {
				after := o.st
				if refs[n.name] {
					after = after.with(n.name, gDone)
				}
				g := &reNode{kind: kGroup, text: n.text, name: n.name, alts: [][]*reNode{o.seq}}
				out = append(out, outcome{seq: []*reNode{g}, st: after})
			}
		}
		return out, nil
	case n.kind == kRepeat && (n.text == "?" || n.text == "??"):
		with, err := expandNode(n.sub, st, refs)
		if err != nil {
			return nil, err
		}
		without := []outcome{{st: st}}
		if n.text == "?" {
			return append(with, without...), nil
		}
		return append(without, with...), nil
	}
	return nil, errNoTranslation
}

// temper rewrites the tempered tokens of seq; follow is what comes after
// seq, known false when that is not known (inside a repetition, what
// follows an item may be the item again).
func temper(seq []*reNode, follow []*reNode, known bool) error {
	for i, n := range seq {
		rest := append(append([]*reNode(nil), seq[i+1:]...), follow...)
		if lit, ok := temperedLit(n); ok {
			var expr string
			switch {
			case !known:
			case strings.HasPrefix(leadingText(rest), lit):
				expr = noLiteral(lit, true)
			case endsText(rest):
				expr = noLiteral(lit, false)
			}
			if expr == "" {
				return errNoTranslation
			}
			seq[i] = &reNode{kind: kAtom, text: expr}
			continue
		}
		switch n.kind {
		case kGroup:
			if n.lookaround() {
				continue // Go refuses it: no translation
			}
			for _, a := range n.alts {
				if err := temper(a, rest, known); err != nil {
					return err
				}
			}
		case kRepeat:
			if err := temper([]*reNode{n.sub}, nil, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// temperedLit returns LIT for (?:(?!LIT).)* and (?:(?!LIT).)*?.
func temperedLit(n *reNode) (string, bool) {
	if n.kind != kRepeat || (n.text != "*" && n.text != "*?") {
		return "", false
	}
	g := n.sub
	if g.kind != kGroup || g.text != "(?:" || len(g.alts) != 1 || len(g.alts[0]) != 2 {
		return "", false
	}
	la, dot := g.alts[0][0], g.alts[0][1]
	if la.kind != kGroup || la.text != "(?!" || len(la.alts) != 1 || dot.kind != kAtom || dot.text != "." {
		return "", false
	}
	var lit strings.Builder
	for _, c := range la.alts[0] {
		ch, ok := literalChar(c)
		if !ok {
			return "", false
		}
		lit.WriteByte(ch)
	}
	return lit.String(), true
}

// literalChar returns the character an atom stands for, if it is one
// printable ASCII character.
func literalChar(n *reNode) (byte, bool) {
	if n.kind != kAtom {
		return 0, false
	}
	t := n.text
	switch {
	case len(t) == 1 && strings.IndexByte(`.^$[]()|*+?{}\`, t[0]) < 0 && t[0] >= ' ' && t[0] < 0x7f:
		return t[0], true
	case len(t) == 2 && t[0] == '\\' && strings.IndexByte(`.^$[]()|*+?{}\- /:#`, t[1]) >= 0:
		return t[1], true
	}
	return 0, false
}

// leadingText returns the literal text every match of seq starts with,
// looking into groups of one alternative.
func leadingText(seq []*reNode) string {
	var b strings.Builder
	var walk func([]*reNode) bool
	walk = func(seq []*reNode) bool {
		for _, n := range seq {
			if c, ok := literalChar(n); ok {
				b.WriteByte(c)
				continue
			}
			if n.kind == kGroup && !n.lookaround() && len(n.alts) == 1 {
				if !walk(n.alts[0]) {
					return false
				}
				continue
			}
			return false
		}
		return true
	}
	walk(seq)
	return b.String()
}

// endsText reports whether seq matches only at the end of the text: it
// is $, maybe inside groups of one alternative.
func endsText(seq []*reNode) bool {
	for _, n := range seq {
		switch {
		case n.kind == kAtom && n.text == "$":
			return true
		case n.kind == kGroup && !n.lookaround() && len(n.alts) == 1:
			if len(n.alts[0]) == 0 {
				continue
			}
			return endsText(n.alts[0])
		}
		return false
	}
	return false
}

// noLiteral returns a Go expression for the texts without a line break in
// which lit does not start: with followed, those that lit follows (lit
// must not start before the lit after them either), else those the end
// of the text follows. "" when lit is not covered (shorter than two
// characters, or its first character again inside it).
//
// The expression is the automaton of lit's prefixes: state q has just
// read lit[:q]. With lit's first character c only at its start (and
// maybe its end), a character that does not continue the prefix leads
// back to state 1 if it is c, else to state 0.
func noLiteral(lit string, followed bool) string {
	m := len(lit)
	if m < 2 || strings.ContainsAny(lit, "\n") {
		return ""
	}
	c0 := lit[0]
	if strings.IndexByte(lit[1:m-1], c0) >= 0 {
		return ""
	}
	q := func(c byte) string { return regexp.QuoteMeta(string(c)) }
	cls := func(cs ...byte) string { // [^cs\n]
		var b strings.Builder
		b.WriteString("[^")
		for _, c := range cs {
			if !isAlnum(c) {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteString(`\n]`)
		return b.String()
	}
	lq := func(s string) string { return regexp.QuoteMeta(s) }
	var loop, exit, ends []string
	for k := 1; k < m; k++ {
		pre := lq(lit[1:k])
		if lit[k] != c0 {
			loop = append(loop, pre+q(c0))
			exit = append(exit, pre+cls(lit[k], c0))
		} else {
			exit = append(exit, pre+cls(c0))
		}
		if !(followed && k == m-1 && lit[m-1] == c0) {
			ends = append(ends, pre)
		}
	}
	one := q(c0)
	if len(loop) > 0 {
		one += "(?:" + strings.Join(loop, "|") + ")*"
	}
	expr := "(?:" + cls(c0) + "|" + one + "(?:" + strings.Join(exit, "|") + "))*"
	if len(ends) > 0 {
		expr += "(?:" + one + "(?:" + strings.Join(ends, "|") + "))?"
	}
	return expr
}

func emitSeq(b *strings.Builder, seq []*reNode) {
	for _, n := range seq {
		emitNode(b, n)
	}
}

func emitNode(b *strings.Builder, n *reNode) {
	switch n.kind {
	case kAtom:
		b.WriteString(n.text)
	case kGroup:
		b.WriteString(n.text)
		for i, a := range n.alts {
			if i > 0 {
				b.WriteByte('|')
			}
			emitSeq(b, a)
		}
		b.WriteByte(')')
	case kRepeat:
		sub := n.sub
		if sub.kind == kRepeat || (sub.kind == kAtom && len(sub.text) > 2 && sub.text[0] == '(') {
			b.WriteString("(?:")
			emitNode(b, sub)
			b.WriteByte(')')
		} else {
			emitNode(b, sub)
		}
		b.WriteString(n.text)
	case kCond:
		// Unreachable: expansion resolves every conditional.
		b.WriteString("(?(" + n.name + ")")
		for i, a := range n.alts {
			if i > 0 {
				b.WriteByte('|')
			}
			emitSeq(b, a)
		}
		b.WriteByte(')')
	}
}

func isAlnum(c byte) bool {
	return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z')
}
