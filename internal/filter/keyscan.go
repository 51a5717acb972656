package filter

// Many candidates a message meets (see dispatch.go) cannot be ruled out by
// their first bytes: the sshd guards and most dovecot patterns begin with
// <*>, <WORD> or an optional group, so they sit under every first byte, and
// only a search through the message finds that their literals are missing.
// Searching for each literal of each candidate costs a pass over the
// message per literal. Instead, each literal at least keyLen bytes long
// gets a key: keyLen bytes of it (any window of a literal is in every
// message the literal is in). A Matcher's keys are found together in one
// pass over the message (keyScan.find), which moves several bytes at a
// time; a candidate then needs only to test the bits of its keys (keyReq).

// keyLen is the length of a key. A window of the message is compared with
// the keys as one 8-byte word; the scan moves up to keyLen-1 bytes a step.
const keyLen = 8

// maxKeys is how many keys a Matcher may have: a message's keys are a
// bit set in a uint64. Candidates past it get no key, which is always safe.
const maxKeys = 64

// scanSlots is the size of keyScan's table, indexed by two bytes: every
// pair has its own step (no collisions lowering steps), and log text, mostly
// printable ASCII, touches a small part of it.
const scanSlots = 1 << 16

// keyScan finds which keys a message holds: Wu and Manber's multi-pattern
// search ("A fast algorithm for multi-pattern searching", 1994), with all
// keys of one length and blocks of two bytes. It looks at a window of
// keyLen bytes through its last two bytes: if that pair occurs in no key,
// no key can end within the next keyLen-1 bytes, and the window moves on
// that far; if it occurs in some key but not at its end, the window moves
// as far as that allows; if it ends a key, the keys ending in it are
// compared with the window. Log text mostly holds pairs the (rare) keys do
// not, so the scan looks at about one byte in five or six.
type keyScan struct {
	// step is indexed by pairIndex of a window's last two bytes. A value
	// below keyLen is how far the window may move; keyLen+k means the pair
	// ends keys[k] (and those chained after it): compare, then move by one.
	step [scanSlots]uint8
	// keys holds nkeys keys; an array, so that compare indexes it without
	// a bounds check.
	keys  [maxKeys]scanKey
	nkeys int
}

// added returns the keys added so far.
func (ks *keyScan) added() []scanKey { return ks.keys[:ks.nkeys] }

// scanKey is one key, as the little-endian word its 8 bytes load as.
type scanKey struct {
	word uint64
	next uint8 // the index of the next key in step's chain, or noKey
}

const noKey = 0xff

// pairIndex is the slot of the pair a, b: the two bytes as one number.
func pairIndex(a, b byte) uint16 { return uint16(a) | uint16(b)<<8 }

// load8 returns s[i:i+8] as a little-endian word (one load, once compiled).
func load8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func newKeyScan() *keyScan {
	ks := &keyScan{}
	for i := range ks.step {
		ks.step[i] = keyLen - 1
	}
	return ks
}

// add adds key (keyLen bytes) unless it is there already, and returns its
// bit; 0 when key is "" or maxKeys are taken.
func (ks *keyScan) add(key string) uint64 {
	if key == "" {
		return 0
	}
	w := load8(key, 0)
	for i, k := range ks.added() {
		if k.word == w {
			return 1 << i
		}
	}
	if ks.nkeys == maxKeys {
		return 0
	}
	idx := ks.nkeys
	k := scanKey{word: w, next: noKey}
	// The pair ending at key[j], j < keyLen-1, lets a window ending in it
	// move keyLen-1-j bytes: any less and the key could end inside it.
	for j := 1; j < keyLen-1; j++ {
		h := pairIndex(key[j-1], key[j])
		if s := ks.step[h]; s < keyLen && s > keyLen-1-uint8(j) {
			ks.step[h] = keyLen - 1 - uint8(j)
		}
	}
	h := pairIndex(key[keyLen-2], key[keyLen-1])
	if s := ks.step[h]; s >= keyLen {
		k.next = s - keyLen
	}
	ks.step[h] = keyLen + uint8(idx)
	ks.keys[idx] = k
	ks.nkeys++
	return 1 << idx
}

// find returns the bits of the keys s holds. Each step of a scan waits
// for the load of the step before it, so a long message is scanned as two
// halves at once, one step of each in turn: the processor overlaps the two
// chains of loads. The second half's scan starts at the first window that
// ends in it, so every window is looked at by exactly one of them.
//
// Window ends are unsigned, and the loops test i-1 < n-1 rather than
// i < n: the same for i >= 1, in a form from which the compiler proves
// s[i-1] and s[i] in bounds, so the loops carry no bounds checks.
func (ks *keyScan) find(s string) (found uint64) {
	n := uint(len(s))
	if n < splitScan {
		return ks.scan(s, keyLen-1)
	}
	step := &ks.step
	mid := n / 2
	a, b := uint(keyLen-1), mid
	for a-1 < mid-1 && b-1 < n-1 {
		sa, sb := step[pairIndex(s[a-1], s[a])], step[pairIndex(s[b-1], s[b])]
		a = ks.next(s, a, sa, &found)
		b = ks.next(s, b, sb, &found)
	}
	return found | ks.scan(s[:mid], a) | ks.scan(s, b)
}

// splitScan is the shortest message find scans as two halves.
const splitScan = 4 * keyLen

// scan returns the bits of the keys held by the windows of s that end at
// from (at least keyLen-1) or later.
func (ks *keyScan) scan(s string, from uint) (found uint64) {
	n := uint(len(s))
	if n < keyLen {
		return 0
	}
	step := &ks.step
	for i := from; i-1 < n-1; {
		i = ks.next(s, i, step[pairIndex(s[i-1], s[i])], &found)
	}
	return found
}

// next adds to found the keys the window of s ending at i holds, if its
// step st says it may hold any, and returns the end of the next window to
// look at.
func (ks *keyScan) next(s string, i uint, st uint8, found *uint64) uint {
	if st < keyLen {
		return i + uint(st)
	}
	*found |= ks.compare(s, i, st)
	return i + 1
}

// compare returns the bits of the keys in st's chain (st >= keyLen) that
// the window of s ending at i holds.
func (ks *keyScan) compare(s string, i uint, st uint8) (found uint64) {
	w := load8(s, int(i)-(keyLen-1))
	for k := st - keyLen; k != noKey; k = ks.keys[k%maxKeys].next {
		if ks.keys[k%maxKeys].word == w {
			found |= 1 << k
		}
	}
	return found
}

// keyReq is what a candidate asks of a message's keys: every key in all,
// and at least one of each set in oneOf.
type keyReq struct {
	all   uint64
	oneOf []uint64
}

func (r *keyReq) none() bool { return r.all == 0 && r.oneOf == nil }

// heldBy reports whether the keys found meet r.
func (r *keyReq) heldBy(found uint64) bool {
	if found&r.all != r.all {
		return false
	}
	for _, set := range r.oneOf {
		if found&set == 0 {
			return false
		}
	}
	return true
}

// requirements adds to ks the keys of a pattern whose main path (see
// paths) is path, and returns what a message must hold for the pattern to
// match it. Each literal in lits (those of path that mayMatch searches
// for) gives a key. When none does, each group on path whose every branch
// holds text of its own gives a set of keys, one per branch, of which a
// message needs one: "{unknown user|Password mismatch}". A branch's text
// takes in the literals next to the group, so "for {invalid|illegal} user"
// gives " for invalid user " and " for illegal user ". A literal shorter
// than keyLen, or a key past maxKeys, asks nothing.
func (ks *keyScan) requirements(ps *paths, path, lits []*node) keyReq {
	var r keyReq
	for _, n := range lits {
		r.all |= ks.add(ks.keyOf(n.lit))
	}
	if r.all != 0 {
		return r
	}
	for i, g := range path {
		if g.kind != tokSplit {
			continue
		}
		join := ps.rejoin(g)
		var before, after string // the literals right before and after the group
		if i > 0 && path[i-1].kind == tokLit && path[i-1].next == g {
			before = path[i-1].lit
		}
		if join != nil && join.kind == tokLit {
			after = join.lit
		}
		var set uint64
		for _, a := range g.alts {
			var texts []string // what every match through a holds
			switch {
			case a == join: // an empty branch
				texts = append(texts, before+after)
			case a.kind == tokLit && a.next == join:
				texts = append(texts, before+a.lit+after)
			default:
				for _, n := range ps.mainPath(a) {
					if n == join {
						break
					}
					if n.kind == tokLit {
						texts = append(texts, n.lit)
					}
				}
			}
			bit := ks.add(ks.keyOf(texts...))
			if bit == 0 {
				set = 0
				break
			}
			set |= bit
		}
		if set != 0 {
			r.oneOf = append(r.oneOf, set)
		}
	}
	return r
}

// keyOf returns the keyLen-byte window of texts that costs the scan least,
// or "" when none is that long: a key already added, else the one of the
// rarest bytes (by byteRank), its last two weighing five times as much, as
// the scan compares a window with the keys whenever its last two bytes end
// one. Any window will do for correctness: a text holds all of its own.
func (ks *keyScan) keyOf(texts ...string) string {
	best, bestScore := "", 0
	for _, t := range texts {
		for i := 0; i+keyLen <= len(t); i++ {
			w := t[i : i+keyLen]
			score := 4 * (int(byteRank[w[keyLen-2]]) + int(byteRank[w[keyLen-1]]))
			for j := 0; j < keyLen; j++ {
				score += int(byteRank[w[j]])
			}
			if ks.has(w) {
				score = -1
			}
			if best == "" || score < bestScore {
				best, bestScore = w, score
			}
		}
	}
	return best
}

func (ks *keyScan) has(key string) bool {
	w := load8(key, 0)
	for _, k := range ks.added() {
		if k.word == w {
			return true
		}
	}
	return false
}

// msgKeys is the key scan of one message, made when a candidate first asks
// for it: a message whose candidates all fail at their anchored ends costs
// no scan.
type msgKeys struct {
	scan  *keyScan
	msg   string
	found uint64
	done  bool
}

func (k *msgKeys) get() uint64 {
	if !k.done {
		k.found, k.done = k.scan.find(k.msg), true
	}
	return k.found
}
