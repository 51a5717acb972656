package filter

import (
	"fmt"
	"net/netip"
	"strings"
)

// A pattern is the data form of a rule: literal text with typed captures.
//
//	<HOST>   the client: an IPv4 or IPv6 address or a DNS name
//	<USER>   a user name or recipient: any text, possibly empty
//	<USER:LOGIN>  a user name without ':', possibly empty: what passwd,
//	         htpasswd and HTTP Basic credentials allow. Such a user cannot
//	         hold "client: ADDR", so the daemon's own text after it is
//	         found first even when attacker text also follows (a referrer)
//	<*>      any text, possibly empty, not captured
//	<WORD>   one or more characters other than space, not captured
//	<NUM>    one or more digits, not captured
//	{a|b}    one of the alternatives; an empty one makes the group optional: {a|}
//	\x       the character x literally (for \< \{ \} \| \\)
//
// A pattern matches the whole message (trailing white space ignored): put <*>
// at either end to let it float. Gaps prefer the rightmost binding, so text an
// attacker controls (a user name) cannot push a forged address into <HOST>:
// the address is taken from the daemon's own suffix.
//
// Patterns compile to a small graph (a group becomes a split whose branches
// rejoin), matched by a backtracking matcher whose literals are found with
// lastIndex. Facts computed at compile time spare it work
// without changing what it finds (pattern_ref_test.go holds the plain
// matcher the tests compare it with):
//
//   - a group skips the branches that cannot start with the next byte of the
//     message (most groups are optional prefixes such as "{error: |}");
//   - a bounded gap (<WORD>, <NUM>, <HOST>, <USER:LOGIN>) followed by a
//     literal whose first byte the gap cannot hold ends exactly where its run
//     of allowed bytes ends, so no search for the literal is needed;
//   - so does one followed by a group none of whose first bytes the gap can
//     hold ("<HOST>{ port <NUM>|}"): its shorter ends are not tried, but
//     the steps trying them costs are counted.
type pattern struct {
	summary bool // the rule sums up a session (ruleDef.Summary)
	// userChange: the rule counts only once its session tried another
	// user (ruleDef.UserChange; see Matcher.decide).
	userChange bool
	minLen     int // the rule applies to messages at least this long (ruleDef.MinLen)
	src        string
	start      *node
	prefix     string // literal every match starts with ("" if the pattern starts otherwise)
	must       string // longest literal every match contains
}

type tokenKind uint8

const (
	tokLit tokenKind = iota
	tokHost
	tokUser
	tokUserLogin // <USER:LOGIN>
	tokAny
	tokWord
	tokNum
	tokSplit
)

// node is one step of a compiled pattern; next nil means the end of the
// message. The fields matchNode reads at every step come first, and a node
// fits one 64-byte cache line (TestNodeSize): a message visits dozens of
// nodes, and a node spread over three lines cost a cache miss more often.
type node struct {
	kind tokenKind
	// For a bounded gap followed by a literal: the literal's first byte is
	// outside the gap's class, so the gap can only end where its run ends.
	runEnd bool
	// For a bounded gap followed by a group: no byte the group can start
	// with is in the gap's class, so only the end of the run can match;
	// every shorter end fails at the group at once, costing nextFail steps.
	runOnly  bool
	nextFail int32
	// For tokLit: the index in lit of its rarest byte (see newLiteral),
	// and, when it is 8 bytes or fewer, lit as a little-endian word whose
	// bytes past lit mask leaves out, for prefixOf.
	anchor     int32
	lit        string
	next       *node
	head, mask uint64
	*group     // for tokSplit
}

// group is what a tokSplit node holds: the branches, each leading on to
// the split's next, and per branch the bytes a non-empty rest of the
// message must start with for the branch to match it, and the steps trying
// the branch costs when it fails on the first byte (see matchNode).
type group struct {
	alts     []*node
	altFirst []byteSet
	altCost  []int
}

// prefixOf reports whether s[pos:] starts with the literal n.lit. A
// literal of 8 bytes or fewer (most are: " port ", "]:", " from ") is
// compared as one word where 8 bytes of s are there, without the call
// strings.HasPrefix costs.
func (n *node) prefixOf(s string, pos int) bool {
	if len(n.lit) <= 8 && pos+8 <= len(s) {
		return load8(s, pos)&n.mask == n.head
	}
	return strings.HasPrefix(s[pos:], n.lit)
}

func isGap(k tokenKind) bool { return k != tokLit && k != tokSplit }

// item is the parsed form of a pattern before compilation.
type item struct {
	kind tokenKind
	lit  string
	alts [][]item // for groups
}

// compilePattern parses and compiles src.
func compilePattern(src string) (*pattern, error) {
	items, rest, err := parseItems(src, false)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("unbalanced '}'")
	}
	p := &pattern{src: src, start: compileItems(items, nil)}
	prepare(p.start, map[*node]bool{})
	for i, it := range items {
		if it.kind == tokLit {
			if i == 0 {
				p.prefix = it.lit
			}
			if len(it.lit) > len(p.must) {
				p.must = it.lit
			}
		}
		if i > 0 && isGap(it.kind) && isGap(items[i-1].kind) {
			return nil, fmt.Errorf("two captures side by side need a literal between them")
		}
	}
	return p, nil
}

// parseItems parses up to an unescaped '|' or '}' (when inGroup) or the end.
func parseItems(s string, inGroup bool) ([]item, string, error) {
	var items []item
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			items = append(items, item{kind: tokLit, lit: lit.String()})
			lit.Reset()
		}
	}
	for len(s) > 0 {
		c := s[0]
		switch c {
		case '\\':
			if len(s) < 2 {
				return nil, "", fmt.Errorf("trailing backslash")
			}
			lit.WriteByte(s[1])
			s = s[2:]
		case '<':
			end := strings.IndexByte(s, '>')
			if end < 0 {
				return nil, "", fmt.Errorf("unterminated %q", s)
			}
			k, ok := captureKinds[s[1:end]]
			if !ok {
				return nil, "", fmt.Errorf("unknown capture %q (want <HOST>, <USER>, <USER:LOGIN>, <*>, <WORD> or <NUM>)", s[:end+1])
			}
			flush()
			items = append(items, item{kind: k})
			s = s[end+1:]
		case '{':
			flush()
			g := item{kind: tokSplit}
			rest := s[1:]
			for {
				alt, r, err := parseItems(rest, true)
				if err != nil {
					return nil, "", err
				}
				g.alts = append(g.alts, alt)
				if strings.HasPrefix(r, "}") {
					rest = r[1:]
					break
				}
				if !strings.HasPrefix(r, "|") {
					return nil, "", fmt.Errorf("unterminated '{'")
				}
				rest = r[1:]
			}
			items = append(items, g)
			s = rest
		case '|', '}':
			if !inGroup {
				return nil, "", fmt.Errorf("%q outside a group", c)
			}
			flush()
			return items, s, nil
		default:
			lit.WriteByte(c)
			s = s[1:]
		}
	}
	if inGroup {
		return nil, "", fmt.Errorf("unterminated '{'")
	}
	flush()
	return items, "", nil
}

var captureKinds = map[string]tokenKind{
	"HOST": tokHost, "USER": tokUser, "USER:LOGIN": tokUserLogin,
	"*": tokAny, "WORD": tokWord, "NUM": tokNum,
}

// compileItems links items into nodes ending in next.
func compileItems(items []item, next *node) *node {
	cur := next
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		n := &node{kind: it.kind, lit: it.lit, next: cur}
		if it.kind == tokSplit {
			n.group = &group{}
			for _, alt := range it.alts {
				n.alts = append(n.alts, compileItems(alt, cur))
			}
			n.next = nil
		}
		cur = n
	}
	return cur
}

// prepare fills in the facts the matcher uses to skip work (see the
// pattern doc comment) on every node reachable from n.
func prepare(n *node, seen map[*node]bool) {
	for ; n != nil && !seen[n]; n = n.next {
		seen[n] = true
		switch {
		case n.kind == tokSplit:
			n.altFirst = make([]byteSet, len(n.alts))
			n.altCost = make([]int, len(n.alts))
			for i, a := range n.alts {
				n.altFirst[i].addFirst(a, 0)
				if cost, ok := failCost(a, 0); ok {
					n.altCost[i] = cost
				} else {
					n.altFirst[i].addAll() // never skipped
				}
				prepare(a, seen)
			}
		case n.kind == tokLit && n.lit != "":
			n.anchor = int32(newLiteral(n.lit).anchor)
			for i := 0; i < len(n.lit) && len(n.lit) <= 8; i++ {
				n.head |= uint64(n.lit[i]) << (8 * i)
				n.mask |= 0xff << (8 * i)
			}
		case isGap(n.kind) && n.next != nil && n.next.kind == tokLit && n.next.lit != "":
			n.runEnd = bounded(n.kind) && !inClass(n.kind, n.next.lit[0])
		case isGap(n.kind) && n.next != nil && n.next.kind == tokSplit && bounded(n.kind):
			var first byteSet
			first.addFirst(n.next, 0)
			if cost, ok := failCost(n.next, 0); ok && !classMeets(n.kind, &first) {
				n.runOnly, n.nextFail = true, int32(cost)
			}
		}
	}
}

// failCost returns the steps matchNode counts when trying n at a position
// whose byte is not among n's first bytes: one per node it visits before
// failing. ok is false where that is not fixed (a gap, a deep nesting).
func failCost(n *node, depth int) (cost int, ok bool) {
	if depth > maxFirstDepth {
		return 0, false
	}
	switch {
	case n == nil: // the end of the pattern: fails on a non-empty rest
		return 1, true
	case n.kind == tokLit && n.lit != "":
		return 1, true
	case n.kind == tokSplit:
		cost = 1
		for _, a := range n.alts {
			c, ok := failCost(a, depth+1)
			if !ok {
				return 0, false
			}
			cost += c
		}
		return cost, true
	}
	return 0, false
}

// capture holds what a successful match extracted.
type capture struct {
	host, user string
	addr       netip.Addr // host parsed, when validHost had to (an IPv6 address); else zero
	steps      int        // backtracking work done
}

// maxSteps bounds the backtracking work for one message and sequence, so a
// hostile line cannot make matching slow.
const maxSteps = 4096

// match reports whether the pattern matches all of s, filling c.
func (p *pattern) match(s string, c *capture) bool {
	c.steps = 0
	return matchNode(p.start, s, 0, c)
}

func matchNode(n *node, s string, pos int, c *capture) bool {
	// A literal leaves nothing to undo when what follows it fails, so the
	// loop steps over literals instead of recursing: one call fewer per
	// literal, and the same steps counted.
	for {
		c.steps++
		if c.steps > maxSteps {
			return false
		}
		if n == nil {
			return pos == len(s)
		}
		if n.kind != tokLit {
			break
		}
		// n.prefixOf(s, pos), by hand: it is too big for the compiler
		// to inline.
		if len(n.lit) <= 8 && pos+8 <= len(s) {
			if load8(s, pos)&n.mask != n.head {
				return false
			}
		} else if !strings.HasPrefix(s[pos:], n.lit) {
			return false
		}
		pos += len(n.lit)
		n = n.next
	}
	switch n.kind {
	case tokSplit:
		for i, a := range n.alts {
			if pos < len(s) && !n.altFirst[i].has(s[pos]) {
				// The branch fails at once. Count the steps trying it
				// would have counted, so that maxSteps cuts a hostile
				// line off exactly where the plain matcher would.
				c.steps += n.altCost[i]
				continue
			}
			if matchNode(a, s, pos, c) {
				return true
			}
		}
		return false
	}
	// A gap: try its possible ends, rightmost first.
	limit := len(s)
	if bounded(n.kind) {
		limit = pos + classRun(s[pos:], n.kind)
	}
	switch {
	case n.next == nil:
		return limit == len(s) && acceptGap(n, s[pos:limit], s, limit, c)
	case n.runEnd:
		// The literal can only start where the run ends (see prepare).
		return n.next.prefixOf(s, limit) && acceptGap(n, s[pos:limit], s, limit, c)
	case n.runOnly:
		if acceptGap(n, s[pos:limit], s, limit, c) {
			return true
		}
		// The shorter ends fail at the group at once (see prepare): count
		// the steps trying them costs, as for a group's skipped branches.
		c.steps += int(n.nextFail) * shorterEnds(n.kind, s[pos:limit])
		return false
	case n.next.kind == tokLit:
		next := n.next
		for end := limit; end >= pos; end-- {
			i := lastIndex(s[pos:min(end+len(next.lit), len(s))], next.lit, int(next.anchor))
			if i < 0 {
				return false
			}
			end = pos + i
			if acceptGap(n, s[pos:end], s, end, c) {
				return true
			}
			if c.steps > maxSteps {
				return false
			}
		}
		return false
	default:
		for end := limit; end >= pos; end-- {
			if acceptGap(n, s[pos:end], s, end, c) {
				return true
			}
			if c.steps > maxSteps {
				return false
			}
		}
		return false
	}
}

// acceptGap checks a gap's text v (ending at end) against its kind, records
// the capture and matches the rest; a failed rest restores the capture.
func acceptGap(n *node, v, s string, end int, c *capture) bool {
	switch n.kind {
	case tokHost:
		addr, ok := checkHost(v)
		if !ok {
			return false
		}
		old, oldAddr := c.host, c.addr
		c.host, c.addr = v, addr
		if matchNode(n.next, s, end, c) {
			return true
		}
		c.host, c.addr = old, oldAddr
		return false
	case tokUser, tokUserLogin:
		old := c.user
		c.user = v
		if matchNode(n.next, s, end, c) {
			return true
		}
		c.user = old
		return false
	case tokWord, tokNum:
		if v == "" {
			return false
		}
	}
	return matchNode(n.next, s, end, c)
}

// lastIndex returns the index of the last instance of lit in s, or -1,
// like strings.LastIndex. lit[anchor] is its rarest byte (see newLiteral):
// lastIndex finds each place that byte occurs with strings.IndexByte,
// which is vectorised, and compares lit there, keeping the last that
// holds. Scanning backwards byte by byte, or strings.LastIndex's rolling
// hash, costs several instructions per byte of s; a rare byte occurs
// seldom.
func lastIndex(s, lit string, anchor int) int {
	n := len(lit)
	if n > len(s) {
		return -1
	}
	b := lit[anchor]
	last := -1
	// i is where an instance would start, i+anchor where its anchor is.
	for i := 0; i <= len(s)-n; i++ {
		j := strings.IndexByte(s[i+anchor:len(s)-n+anchor+1], b)
		if j < 0 {
			break
		}
		i += j
		if s[i:i+n] == lit {
			last = i
		}
	}
	return last
}

// bounded reports whether a gap of kind k spans only a run of its class;
// <*> and <USER> span anything.
func bounded(k tokenKind) bool { return k != tokAny && k != tokUser }

// classes holds, per bounded gap kind, the bytes the gap may span.
var classes = func() (t [tokSplit][256]bool) {
	for i := range 256 {
		c := byte(i)
		t[tokNum][c] = c >= '0' && c <= '9'
		t[tokWord][c] = c != ' ' && c != '\t'
		t[tokUserLogin][c] = c != ':'
		t[tokHost][c] = c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' || c == '.' || c == ':' || c == '-' || c == '_'
	}
	return t
}()

// shorterEnds returns for how many ends e < len(v) of a bounded gap of
// kind k whose run is v acceptGap would try the rest of the pattern: a
// host must be valid, a word or number not empty.
func shorterEnds(k tokenKind, v string) int {
	switch k {
	case tokHost:
		return validHostPrefixes(v)
	case tokWord, tokNum:
		return max(len(v)-1, 0)
	}
	return len(v)
}

// validHostPrefixes returns how many of v[:0] to v[:len(v)-1] checkHost
// accepts. Without a colon, a prefix is a name (see checkHost), and one
// pass over v tells which are; a prefix with a colon is parsed.
func validHostPrefixes(v string) int {
	n, dot := 0, false
	for k := 1; k < len(v); k++ { // the prefix v[:k]
		c := v[k-1]
		if c == ':' {
			for ; k < len(v); k++ {
				if _, ok := checkHost(v[:k]); ok {
					n++
				}
			}
			break
		}
		dot = dot || c == '.'
		if dot && k <= 253 && v[0] != '.' && v[0] != '-' && c != '.' {
			n++
		}
	}
	return n
}

// classMeets reports whether a bounded gap of kind k may hold a byte of set.
func classMeets(k tokenKind, set *byteSet) bool {
	for b := range 256 {
		if classes[k][b] && set.has(byte(b)) {
			return true
		}
	}
	return false
}

// inClass reports whether a bounded gap of kind k may hold byte c.
func inClass(k tokenKind, c byte) bool { return classes[k][c] }

// classRun returns the length of the leading run of s that a bounded capture may span.
func classRun(s string, k tokenKind) int {
	class := &classes[k]
	for i := 0; i < len(s); i++ {
		if !class[s[i]] {
			return i
		}
	}
	return len(s)
}

// validHost accepts an IP address, or a DNS name with at least one dot and a
// letter (the dotted forms daemons write when reverse DNS resolved).
func validHost(v string) bool {
	_, ok := checkHost(v)
	return ok
}

// checkHost is validHost that also returns the address when it had to parse
// one (an IPv6 address), so decide need not parse it again.
func checkHost(v string) (netip.Addr, bool) {
	if v == "" || len(v) > 253 {
		return netip.Addr{}, false
	}
	if strings.IndexByte(v, ':') < 0 {
		// An IPv4 address passes the name test too, so no need to parse it
		// here: decide does once the whole pattern has matched.
		return netip.Addr{}, strings.IndexByte(v, '.') >= 0 && v[0] != '.' && v[0] != '-' && v[len(v)-1] != '.'
	}
	// Only an IPv6 address may hold a colon.
	return parseIPv6Zoned(v)
}

// parseAddr is netip.ParseAddr(s) without the error, and quicker for the
// common dotted-quad IPv4 address; known is s already parsed, or zero.
func parseAddr(s string, known netip.Addr) (netip.Addr, bool) {
	if known.IsValid() {
		return known, true
	}
	if strings.IndexByte(s, ':') < 0 {
		// ParseAddr reads a string without a colon as IPv4 (or rejects
		// it), by the rule parseIPv4 implements.
		return parseIPv4(s)
	}
	return parseIPv6Zoned(s)
}

// parseIPv4 parses a dotted-quad IPv4 address as netip.ParseAddr does:
// four decimal fields of 0 to 255, without leading zeros or a zone. Each
// field is read as at most three digits, a lone 0 as one.
//
// i is unsigned and compared with < rather than ==, so that the compiler
// proves every s[i] in bounds.
func parseIPv4(s string) (netip.Addr, bool) {
	var ip [4]byte
	i, end := uint(0), uint(len(s))
	for f := range 4 {
		if f > 0 {
			if i >= end || s[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
		if i >= end || s[i]-'0' > 9 {
			return netip.Addr{}, false
		}
		v := int(s[i] - '0')
		i++
		for n := 1; v != 0 && n < 3 && i < end && s[i]-'0' <= 9; n++ { // no digit after a leading 0
			v = v*10 + int(s[i]-'0')
			i++
		}
		if v > 255 {
			return netip.Addr{}, false
		}
		ip[f] = byte(v)
	}
	if i != end {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}
