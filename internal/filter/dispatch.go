package filter

import (
	"strings"

	"github.com/rampart-dev/rampart/internal/event"
)

// A Matcher tries its patterns in rule order, and most of them cannot match
// a given message: an sshd filter holds dozens of patterns, a message starts
// with "Failed", "Invalid" or "Connection". So each Matcher indexes its
// patterns by the bytes a message they match can start with, computed from
// the compiled pattern graph, and tries only the patterns listed under the
// message's first byte, in the same order as before. A pattern that can
// start with anything (one beginning with <*>, <USER> or <HOST>) is listed
// under every byte. Each candidate then checks the literals of its pattern
// before the matcher runs (see candidate): those at the ends by comparing,
// the others through keys found in one scan of the message (keyscan.go) or,
// for a candidate without keys, by searching for them.

// candidate is one pattern of an active rule, with the literals every
// message it matches holds: lits in this order without overlap, the first
// at the start when prefix, the last at the end when suffix. Searching for
// them rejects most messages far quicker than the backtracking matcher can.
type candidate struct {
	kind   event.Kind
	pat    *pattern
	later  bool // a context rule whose match can wait (see Matcher.later)
	lits   []literal
	prefix bool
	suffix bool
	keys   keyReq // keys a message must hold (see keyscan.go)
}

// literal is fixed text to search for, with the position of its rarest
// byte. strings.Index looks for a needle's first byte and compares from
// there; a literal often starts with a space (" from ", " port "), which a
// message holds a dozen times, so index looks for the rarest byte instead
// and compares only where that occurs: usually nowhere or once.
type literal struct {
	text   string
	anchor int // index in text of the byte with the lowest byteRank
}

func newLiteral(text string) literal {
	l := literal{text: text}
	for i := 1; i < len(text); i++ {
		if byteRank[text[i]] < byteRank[text[l.anchor]] {
			l.anchor = i
		}
	}
	return l
}

// index returns the index of the first instance of l in s, or -1 if there
// is none, like strings.Index(s, l.text).
func (l *literal) index(s string) int {
	if len(s) <= 64 {
		// strings.Index compares a short s in one vectorised pass.
		return strings.Index(s, l.text)
	}
	n, a := len(l.text), l.anchor
	b := l.text[a]
	// i is where an instance would start, i+a where its anchor byte is.
	for i := 0; i+n <= len(s); i++ {
		j := strings.IndexByte(s[i+a:len(s)-n+a+1], b)
		if j < 0 {
			return -1
		}
		i += j
		if s[i:i+n] == l.text {
			return i
		}
	}
	return -1
}

// byteRank ranks bytes by how often they occur in log lines, the most
// frequent highest. commonBytes lists them most frequent first, as counted
// over the lines of testdata/corpus (fail2ban's and CrowdSec's samples of
// many daemons); bytes it does not list are rarer than any it does and rank
// 0. Only speed depends on it: a poor guess makes index compare at more
// places.
var byteRank = func() (r [256]uint8) {
	const commonBytes = " e1o0rt.sa:2nidc3lup4m5h6f9][-7\"=/xbgv,TAwSyNIP>(k)EL_XMCRH'O<@FUDGJ\\jq#;zW+BQVY|?Z*K%{}&!`$~^"
	for i := 0; i < len(commonBytes); i++ {
		r[commonBytes[i]] = uint8(len(commonBytes) - i)
	}
	return r
}()

// newCandidate returns the candidate for pattern p, with its keys added to ks.
func newCandidate(kind event.Kind, p *pattern, ks *keyScan) candidate {
	c := candidate{kind: kind, pat: p, later: kind == kindContext && !p.summary && !p.userChange && p.minLen == 0}
	ps := paths{main: map[*node][]*node{}, joins: map[*node]*node{}}
	path := ps.mainPath(p.start)
	var searched []*node // the literals mayMatch searches for, not compares at an end
	for i, n := range path {
		if n.kind == tokLit && n.lit != "" {
			c.lits = append(c.lits, newLiteral(n.lit))
			switch {
			case i == 0:
				c.prefix = true
			case i == len(path)-1 && n.next == nil:
				c.suffix = true
			default:
				searched = append(searched, n)
			}
		}
	}
	if len(c.lits) == 1 && c.prefix && c.suffix {
		c.suffix = false // one literal cannot be checked at both ends this way
	}
	if ks != nil {
		c.keys = ks.requirements(&ps, path, searched)
	}
	return c
}

// mayMatch reports whether msg may match the candidate; false means the
// pattern cannot match it. The anchored ends are compared first: they cost
// no search. Then a candidate with keys asks keys (the message's key scan,
// see keyscan.go) whether they are there; one without searches for its
// literals in order.
func (c *candidate) mayMatch(msg string, keys *msgKeys) bool {
	lits := c.lits
	start, end := 0, len(msg)
	if c.prefix {
		first := lits[0].text
		if len(msg) < len(first) || msg[:len(first)] != first {
			return false
		}
		start = len(first)
		lits = lits[1:]
	}
	if c.suffix {
		last := lits[len(lits)-1].text
		if end-len(last) < start || msg[end-len(last):] != last {
			return false
		}
		end -= len(last)
		lits = lits[:len(lits)-1]
	}
	if !c.keys.none() {
		// The keys stand in for the searches below: a message that holds
		// them nearly always matches, and the matcher finds the literals
		// itself, so searching them here first would find them twice.
		return c.keys.heldBy(keys.get())
	}
	for i := range lits {
		j := lits[i].index(msg[start:end])
		if j < 0 {
			return false
		}
		start += j + len(lits[i].text)
	}
	return true
}

// paths finds the nodes every match passes through. A pattern is a graph
// whose groups split and rejoin; both walks are memoised, as patterns chain
// many groups and each branch's path runs on to the pattern's end.
type paths struct {
	main  map[*node][]*node
	joins map[*node]*node
}

// mainPath returns the nodes every match from n on passes through: it
// follows next, and steps over each group to the node where its branches
// rejoin.
func (ps *paths) mainPath(n *node) []*node {
	if n == nil {
		return nil
	}
	if p, ok := ps.main[n]; ok {
		return p
	}
	next := n.next
	if n.kind == tokSplit {
		next = ps.rejoin(n)
	}
	p := append([]*node{n}, ps.mainPath(next)...)
	ps.main[n] = p
	return p
}

// rejoin returns the node where the branches of group g meet again: the
// first node on the first branch's main path that is on every other's.
// nil means they meet only at the end of the pattern.
func (ps *paths) rejoin(g *node) *node {
	if j, ok := ps.joins[g]; ok {
		return j
	}
	var join *node
	if len(g.alts) > 0 {
		others := make([]map[*node]bool, 0, len(g.alts)-1)
		for _, a := range g.alts[1:] {
			on := map[*node]bool{}
			for _, n := range ps.mainPath(a) {
				on[n] = true
			}
			others = append(others, on)
		}
		for _, n := range ps.mainPath(g.alts[0]) {
			all := true
			for _, on := range others {
				all = all && on[n]
			}
			if all {
				join = n
				break
			}
		}
	}
	ps.joins[g] = join
	return join
}

// dispatch lists candidates by a message's first byte.
type dispatch struct {
	all     []candidate      // every pattern, in order: for the empty message
	byFirst [256][]candidate // by first byte, each in rule order
	keys    *keyScan         // the candidates' keys
}

func newDispatch(rules []activeRule) *dispatch {
	d := &dispatch{keys: newKeyScan()}
	for _, r := range rules {
		for _, q := range r.pats {
			c := newCandidate(r.kind, q, d.keys)
			d.all = append(d.all, c)
			var first byteSet
			first.addFirst(q.start, 0)
			for b := range 256 {
				if first.has(byte(b)) {
					d.byFirst[b] = append(d.byFirst[b], c)
				}
			}
		}
	}
	return d
}

// candidates returns the patterns that may match msg, in rule order.
func (d *dispatch) candidates(msg string) []candidate {
	if msg == "" {
		return d.all
	}
	return d.byFirst[msg[0]]
}

// byteSet is a set of byte values.
type byteSet [4]uint64

func (s *byteSet) add(b byte)      { s[b>>6] |= 1 << (b & 63) }
func (s *byteSet) has(b byte) bool { return s[b>>6]&(1<<(b&63)) != 0 }
func (s *byteSet) addAll()         { *s = byteSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)} }

// maxFirstDepth bounds the walk through nested groups; past it every byte
// is assumed possible, which is always safe.
const maxFirstDepth = 32

// addFirst adds the bytes a non-empty message matched from node n can start
// with. Only literals and groups are looked into; any capture or gap may
// start with anything as far as this index is concerned, so it stays
// correct whatever the capture kinds accept. A nil node (the end of the
// pattern) adds nothing: it matches only the empty rest of a message.
func (s *byteSet) addFirst(n *node, depth int) {
	if n == nil {
		return
	}
	if depth > maxFirstDepth {
		s.addAll()
		return
	}
	switch n.kind {
	case tokLit:
		if n.lit == "" {
			s.addFirst(n.next, depth+1)
			return
		}
		s.add(n.lit[0])
	case tokSplit:
		for _, a := range n.alts {
			s.addFirst(a, depth+1)
		}
	default:
		s.addAll()
	}
}
