package filter

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// findSlow is keyScan.find done plainly: a strings.Contains per key.
func findSlow(ks *keyScan, s string) uint64 {
	var found uint64
	for i, k := range ks.added() {
		var b [keyLen]byte
		for j := range b {
			b[j] = byte(k.word >> (8 * j))
		}
		if strings.Contains(s, string(b[:])) {
			found |= 1 << i
		}
	}
	return found
}

func TestKeyScanFind(t *testing.T) {
	// A small alphabet, so keys share pairs, end in the same pair, overlap
	// one another and occur overlapping in the messages.
	rng := rand.New(rand.NewPCG(3, 4))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "ab c"[rng.IntN(4)]
		}
		return string(b)
	}
	for round := range 300 {
		ks := newKeyScan()
		nkeys := 1 + rng.IntN(maxKeys+8) // past maxKeys too
		var keys []string
		for range nkeys {
			k := word(keyLen)
			keys = append(keys, k)
			bit := ks.add(k)
			if bit == 0 && ks.nkeys < maxKeys {
				t.Fatalf("add(%q) = 0 with %d keys", k, ks.nkeys)
			}
		}
		for range 50 {
			var msg string
			switch rng.IntN(4) {
			case 0:
				msg = word(rng.IntN(40))
			case 3: // long enough to be scanned as two halves
				for len(msg) < splitScan+rng.IntN(100) {
					msg += word(rng.IntN(12)) + keys[rng.IntN(len(keys))]
				}
				msg = msg[rng.IntN(keyLen):]
			case 1: // keys end to end, and cut
				for range 1 + rng.IntN(4) {
					msg += keys[rng.IntN(len(keys))]
				}
				msg = msg[rng.IntN(len(msg)/2+1):]
			case 2:
				msg = word(rng.IntN(8)) + keys[rng.IntN(len(keys))] + word(rng.IntN(8))
			}
			if got, want := ks.find(msg), findSlow(ks, msg); got != want {
				t.Fatalf("round %d: find(%q) = %b, want %b", round, msg, got, want)
			}
		}
	}
}

func TestKeyScanAdd(t *testing.T) {
	ks := newKeyScan()
	a := ks.add("Password")
	if a == 0 || ks.add("Password") != a {
		t.Fatal("the same key twice gets two bits")
	}
	if ks.add("") != 0 {
		t.Fatal(`add("") gave a bit`)
	}
	for i := ks.nkeys; i < maxKeys; i++ {
		ks.add(strings.Repeat(string(rune('A'+i%26)), 4) + strings.Repeat(string(rune('a'+i/26)), 4))
	}
	if ks.nkeys != maxKeys || ks.add("one more") != 0 {
		t.Fatalf("%d keys; a key past maxKeys got a bit", ks.nkeys)
	}
}

// TestKeyRequirements checks what candidates ask of a message's keys.
func TestKeyRequirements(t *testing.T) {
	tests := []struct {
		pat     string
		keyed   bool
		yes, no []string
	}{
		// Literals of at least keyLen bytes, not at an end: all needed.
		{"<*> ssh1: ruser <*> ssh1: ruser <*>", true,
			[]string{"x ssh1: ruser a ssh1: ruser b"}, []string{"Failed password for root from 1.2.3.4 port 22 ssh2"}},
		// Only short literals, or only ones at the ends: no keys.
		{"<*>rip=<*>rip=<*>", false, nil, nil},
		{"Connection from <HOST>", false, nil, nil},
		// A group on the main path, when no literal gives a key: one of
		// its branches, with the literals around the group.
		{"{error: |}Failed <WORD> for {invalid|illegal} user <USER> from <HOST>", true,
			[]string{"Failed password for invalid user x from 1.2.3.4", "error: Failed none for illegal user  from 1.2.3.4"},
			[]string{"Failed password for root from 1.2.3.4", "Failed password for user invalid from 1.2.3.4"}},
		{"<WORD>(<USER>,<HOST>): {unknown user|Password mismatch}", true,
			[]string{"passwd-file(u,1.2.3.4): unknown user", "pam(u,1.2.3.4): Password mismatch"},
			[]string{"passwd-file(u,1.2.3.4): user not known", "pam(u,1.2.3.4): mismatch"}},
		// An optional branch too short for a key: the group asks nothing.
		{"<WORD>(<USER>,<HOST>): {unknown user|}", false, nil, nil},
	}
	for _, tt := range tests {
		p, err := compilePattern(tt.pat)
		if err != nil {
			t.Fatal(err)
		}
		ks := newKeyScan()
		c := newCandidate(0, p, ks)
		if c.keys.none() == tt.keyed {
			t.Errorf("%q: keyed %v, want %v", tt.pat, !c.keys.none(), tt.keyed)
			continue
		}
		for _, msg := range tt.yes {
			var cp capture
			if !p.match(msg, &cp) {
				t.Fatalf("%q does not match %q: fix the test", tt.pat, msg)
			}
			if !c.mayMatch(msg, &msgKeys{scan: ks, msg: msg}) {
				t.Errorf("%q: mayMatch(%q) = false", tt.pat, msg)
			}
		}
		for _, msg := range tt.no {
			if c.mayMatch(msg, &msgKeys{scan: ks, msg: msg}) {
				t.Errorf("%q: mayMatch(%q) = true", tt.pat, msg)
			}
		}
	}
}

// TestPrefilterSound checks the prefilter's one promise on every built-in
// pattern: a message the pattern matches passes mayMatch.
func TestPrefilterSound(t *testing.T) {
	msgs := testMessages(t)
	if testing.Short() {
		msgs = msgs[:len(msgs)/8]
	}
	for _, m := range builtinMatchers(t) {
		for i := range m.disp.all {
			c := &m.disp.all[i]
			for _, msg := range msgs {
				var cp capture
				if c.pat.match(msg, &cp) && !c.mayMatch(msg, &msgKeys{scan: m.disp.keys, msg: msg}) {
					t.Errorf("%s %q: matches %q, mayMatch says no", m.f.Name, c.pat.src, msg)
				}
			}
		}
	}
}

// builtinMatchers returns a Matcher of every built-in filter in its
// default mode and, where it has modes, in "aggressive".
func builtinMatchers(tb testing.TB) []*Matcher {
	reg, err := Builtin()
	if err != nil {
		tb.Fatal(err)
	}
	var ms []*Matcher
	for _, f := range reg.Filters() {
		modes := []string{""}
		if len(f.Modes) > 0 {
			modes = append(modes, "aggressive")
		}
		for _, mode := range modes {
			m, err := f.NewMatcher(mode)
			if err != nil {
				tb.Fatal(err)
			}
			ms = append(ms, m)
		}
	}
	return ms
}

// FuzzDispatchAgrees checks, for every built-in filter, that the first-byte
// dispatch and the prefilter find what trying every pattern finds, and that
// the key scan finds what plain searches find.
func FuzzDispatchAgrees(f *testing.F) {
	for _, s := range []string{
		"Failed password for invalid user x from 1.2.3.4 port 22 ssh2",
		"x ssh1: ruser a ssh1: ruser b from 1.2.3.4",
		"imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u>, method=PLAIN, rip=1.2.3.4, lip=5.6.7.8",
		"auth: passwd-file(u,1.2.3.4): unknown user",
		"NOQUEUE: reject: RCPT from unknown[192.0.2.1]:1234: 550 5.1.1 <a@b>: Recipient address rejected: User unknown",
	} {
		f.Add(s)
	}
	ms := builtinMatchers(f)
	f.Fuzz(func(t *testing.T, msg string) {
		for _, m := range ms {
			if got, want := m.disp.keys.find(msg), findSlow(m.disp.keys, msg); got != want {
				t.Fatalf("%s: find(%q) = %b, want %b", m.f.Name, msg, got, want)
			}
			want, wantOK := firstMatch(m.disp.all, msg, nil)
			got, gotOK := firstMatch(m.disp.candidates(msg), msg, m.disp.keys)
			if got != want || gotOK != wantOK {
				t.Fatalf("%s mode %q: %q: dispatch found %v %v, full scan %v %v", m.f.Name, m.mode, msg, got, gotOK, want, wantOK)
			}
		}
	})
}
