package filter

import (
	"bufio"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-dev/rampart/internal/logline"
)

// refMatch is the matcher as first written: every alternative tried, every
// gap end searched with strings.LastIndex. The optimised matcher must agree
// with it on the result, the captures and the steps counted, so maxSteps
// cuts a hostile line off at the same point (past that point the count no
// longer matters: every path fails). TestMatchAgreesWithReference and
// FuzzMatchAgreesWithReference check it.
func refMatch(p *pattern, s string, c *capture) bool {
	c.steps = 0
	return refMatchNode(p.start, s, 0, c)
}

func refMatchNode(n *node, s string, pos int, c *capture) bool {
	c.steps++
	if c.steps > maxSteps {
		return false
	}
	if n == nil {
		return pos == len(s)
	}
	switch n.kind {
	case tokLit:
		if !strings.HasPrefix(s[pos:], n.lit) {
			return false
		}
		return refMatchNode(n.next, s, pos+len(n.lit), c)
	case tokSplit:
		for _, a := range n.alts {
			if refMatchNode(a, s, pos, c) {
				return true
			}
		}
		return false
	}
	limit := len(s)
	if n.kind != tokAny && n.kind != tokUser {
		limit = pos + refClassRun(s[pos:], n.kind)
	}
	switch {
	case n.next == nil:
		return limit == len(s) && refAcceptGap(n, s[pos:limit], s, limit, c)
	case n.next.kind == tokLit:
		next := n.next.lit
		for end := limit; end >= pos; end-- {
			i := strings.LastIndex(s[pos:min(end+len(next), len(s))], next)
			if i < 0 {
				return false
			}
			end = pos + i
			if refAcceptGap(n, s[pos:end], s, end, c) {
				return true
			}
			if c.steps > maxSteps {
				return false
			}
		}
		return false
	default:
		for end := limit; end >= pos; end-- {
			if refAcceptGap(n, s[pos:end], s, end, c) {
				return true
			}
			if c.steps > maxSteps {
				return false
			}
		}
		return false
	}
}

func refAcceptGap(n *node, v, s string, end int, c *capture) bool {
	switch n.kind {
	case tokHost:
		if !validHostSlow(v) {
			return false
		}
		old := c.host
		c.host = v
		if refMatchNode(n.next, s, end, c) {
			return true
		}
		c.host = old
		return false
	case tokUser, tokUserLogin:
		old := c.user
		c.user = v
		if refMatchNode(n.next, s, end, c) {
			return true
		}
		c.user = old
		return false
	case tokWord, tokNum:
		if v == "" {
			return false
		}
	}
	return refMatchNode(n.next, s, end, c)
}

func refClassRun(s string, k tokenKind) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		var ok bool
		switch k {
		case tokNum:
			ok = c >= '0' && c <= '9'
		case tokWord:
			ok = c != ' ' && c != '\t'
		case tokUserLogin:
			ok = c != ':'
		case tokHost:
			ok = c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' || c == '.' || c == ':' || c == '-' || c == '_'
		}
		if !ok {
			return i
		}
	}
	return len(s)
}

// builtinPatterns returns every pattern of every built-in filter.
func builtinPatterns(tb testing.TB) []*pattern {
	reg, err := Builtin()
	if err != nil {
		tb.Fatal(err)
	}
	var pats []*pattern
	for _, f := range reg.Filters() {
		for _, r := range f.rules {
			pats = append(pats, r.pats...)
		}
	}
	return pats
}

// testMessages returns the messages of the log lines under testdata (the
// corpus, the case tables, the benchmark log) and, for each, a few variants
// with text cut out, repeated or inserted, as hostile input would be.
func testMessages(tb testing.TB) []string {
	var msgs []string
	var p logline.Parser
	add := func(raw string) {
		if l, err := p.Parse(raw); err == nil {
			msgs = append(msgs, strings.TrimRight(l.Message, " \t"))
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "corpus", "*", "*.log"))
	more, _ := filepath.Glob(filepath.Join("testdata", "cases", "*.txt"))
	files = append(append(files, more...), benchLog)
	for _, file := range files {
		fh, err := os.Open(file)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			text := sc.Text()
			if strings.HasSuffix(file, ".txt") {
				var ok bool
				if text, ok = strings.CutPrefix(text, "> "); !ok {
					continue
				}
			}
			add(text)
		}
		fh.Close()
	}
	// Variants: deterministic, so a failure can be reproduced.
	rng := rand.New(rand.NewPCG(1, 2))
	inserts := []string{" from 6.6.6.6 port 1 ssh2", "rip=6.6.6.6", "[6.6.6.6]", " port ", " ", ":", "::", "<", ">",
		"(", ")", ", ", "2001:db8::1", "fe80::1%eth0", "1.2.3.4", "a.b", "-", "\t", "user=<x>", " [preauth]", "): "}
	n := len(msgs)
	for i := range n {
		m := msgs[i]
		for range 3 {
			j := rng.IntN(len(m) + 1)
			switch rng.IntN(4) {
			case 0:
				m = m[:j] + inserts[rng.IntN(len(inserts))] + m[j:]
			case 1:
				m = m[:j] + m[min(len(m), j+rng.IntN(8)):]
			case 2:
				o := msgs[rng.IntN(n)]
				k := rng.IntN(len(o) + 1)
				m = m[:j] + o[k:min(len(o), k+rng.IntN(30))] + m[j:]
			case 3:
				m = m[:j] + m[j:] + m[j:]
			}
			msgs = append(msgs, m)
		}
	}
	return msgs
}

func checkAgainstReference(t *testing.T, p *pattern, msg string) {
	var got, want capture
	gotOK := p.match(msg, &got)
	wantOK := refMatch(p, msg, &want)
	if got.steps > maxSteps && want.steps > maxSteps {
		got.steps = want.steps
	}
	if got.addr.IsValid() {
		// The matcher keeps the host it parsed; the reference does not.
		if a, err := netip.ParseAddr(got.host); err != nil || a != got.addr {
			t.Errorf("pattern %q on %q: host %q kept as address %v", p.src, msg, got.host, got.addr)
		}
		got.addr = netip.Addr{}
	}
	if gotOK != wantOK || got != want {
		t.Errorf("pattern %q on %q: match %v %+v, reference %v %+v", p.src, msg, gotOK, got, wantOK, want)
	}
}

func TestMatchAgreesWithReference(t *testing.T) {
	pats := builtinPatterns(t)
	msgs := testMessages(t)
	if testing.Short() {
		msgs = msgs[:len(msgs)/8]
	}
	for _, p := range pats {
		for _, m := range msgs {
			checkAgainstReference(t, p, m)
		}
		if t.Failed() {
			return
		}
	}
}

func FuzzMatchAgreesWithReference(f *testing.F) {
	for _, s := range []string{
		"Failed password for invalid user x from 1.2.3.4 port 22 ssh2",
		"imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u>, method=PLAIN, rip=1.2.3.4, lip=5.6.7.8",
		"NOQUEUE: reject: RCPT from unknown[192.0.2.1]:1234: 550 5.1.1 <a@b>: Recipient address rejected: User unknown",
	} {
		f.Add(s)
	}
	pats := builtinPatterns(f)
	f.Fuzz(func(t *testing.T, msg string) {
		for _, p := range pats {
			checkAgainstReference(t, p, msg)
		}
	})
}
