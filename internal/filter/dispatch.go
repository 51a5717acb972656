package filter

import "github.com/rampart-dev/rampart/internal/event"

// A Matcher tries its patterns in rule order, and most of them cannot match
// a given message: an sshd filter holds dozens of patterns, a message starts
// with "Failed", "Invalid" or "Connection". So each Matcher indexes its
// patterns by the bytes a message they match can start with, computed from
// the compiled pattern graph, and tries only the patterns listed under the
// message's first byte, in the same order as before. A pattern that can
// start with anything (one beginning with <*>, <USER> or <HOST>) is listed
// under every byte.

// candidate is one pattern of an active rule.
type candidate struct {
	kind event.Kind
	pat  *pattern
}

// dispatch lists candidates by a message's first byte.
type dispatch struct {
	all     []candidate      // every pattern, in order: for the empty message
	byFirst [256][]candidate // by first byte, each in rule order
}

func newDispatch(rules []activeRule) *dispatch {
	d := &dispatch{}
	for _, r := range rules {
		for _, q := range r.pats {
			c := candidate{kind: r.kind, pat: q}
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
