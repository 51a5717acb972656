package fail2ban

// The prefregex's fast path and the failregexes' dispatch: what a filter
// does with a line before and instead of running its expressions.

import (
	"regexp"
	"strings"
)

// prefHead is a prefregex ending in fail2ban's "<F-CONTENT>.+</F-CONTENT>$"
// without that tail: its match on one line is where the content starts.
// The full expression picks, of the ways its head can match, the first in
// Python's order that leaves text for ".+$"; any text without a line break
// does, so when the head's own first match leaves some, it is the full
// expression's, and its content is the rest of the line. That saves the
// backtracking engine a pass over the whole line for every way the head
// could match.
type prefHead struct {
	re        *regexp.Regexp
	names     []string
	prefilter // need and anyOf only: the head's starts are not read
}

// contentTail is the resolved <F-CONTENT>.+</F-CONTENT>$.
const contentTail = `(?P<content>.+)$`

// newPrefHead returns the head of a prefregex (tags resolved) compiled by
// Go's regexp, or nil when it has no content tail or needs regexp2.
func newPrefHead(full *rx, src string) *prefHead {
	head, ok := strings.CutSuffix(src, contentTail)
	if !ok || full.re == nil {
		return nil
	}
	expr := goSyntax(stripUnicodeFlag(globalToLocalFlags(head)))
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil
	}
	return &prefHead{re: re, names: re.SubexpNames(), prefilter: newPrefilter(expr, false)}
}

// prefMatch is a prefregex's match, its groups made only when a
// failregex matches too (most lines that pass the prefregex fail every
// failregex): through the head, the head's submatch indexes; else the
// full expression's groups.
type prefMatch struct {
	buf  string
	head *prefHead
	loc  []int
	g    groups
}

// content is the prefregex's content group.
func (p prefMatch) content() string {
	if p.head != nil {
		return p.buf[p.loc[1]:]
	}
	return p.g["content"]
}

// groups returns the named groups, as rx.find's.
func (p prefMatch) groups() groups {
	if p.head == nil {
		return p.g
	}
	// The full expression's match is the head's and the content after it,
	// to the end of the line.
	g, _, _ := groupsAt(p.head.names, p.buf, p.loc)
	g["content"] = p.buf[p.loc[1]:]
	g[""] = p.buf
	return g
}

// matchPref matches the prefregex on buf, through its head when it can.
func (c *compiled) matchPref(buf string, runes *[]rune) (prefMatch, bool) {
	if h := c.head; h != nil && strings.IndexByte(buf, '\n') < 0 {
		if !h.mayMatch(buf) {
			return prefMatch{}, false
		}
		loc := h.re.FindStringSubmatchIndex(buf)
		if loc == nil {
			return prefMatch{}, false // no head, no match
		}
		if loc[1] < len(buf) {
			return prefMatch{buf: buf, head: h, loc: loc}, true
		}
	}
	g, _, _ := c.pref.find(buf, runes)
	return prefMatch{buf: buf, g: g}, g != nil
}

// candidates appends to out, in order, the indexes of the failregexes
// whose first-text check s can pass: those that must start with a text
// starting with s's first byte, and those with no such check.
func (c *compiled) candidates(s string, out []int) []int {
	if len(s) == 0 {
		return append(out, c.unanchored...)
	}
	by := c.byFirst[s[0]]
	i, j := 0, 0
	for i < len(by) || j < len(c.unanchored) {
		if j == len(c.unanchored) || i < len(by) && by[i] < c.unanchored[j] {
			out = append(out, by[i])
			i++
		} else {
			out = append(out, c.unanchored[j])
			j++
		}
	}
	return out
}

// index fills byFirst and unanchored from the failregexes' starts.
func (c *compiled) index() {
	for i, r := range c.fail {
		if r.starts == nil {
			c.unanchored = append(c.unanchored, i)
			continue
		}
		seen := map[byte]bool{}
		for _, p := range r.starts {
			if b := p[0]; !seen[b] {
				seen[b] = true
				c.byFirst[b] = append(c.byFirst[b], i)
			}
		}
	}
}
