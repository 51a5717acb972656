package fail2ban

import (
	"slices"
	"strings"
	"testing"
)

// The literal prefilters may only say "no match" when there is none: each
// case gives an expression, what the analysis must find, and lines it
// must let through (they match) or may stop.
func TestLiteralPrefilters(t *testing.T) {
	for _, tc := range []struct {
		expr   string
		need   string
		anyOf  []string
		starts []string
		match  []string
	}{
		{expr: `^Failed \S+ for (?P<user>\S+) from (?P<ip>\S+)`, need: "Failed ", starts: []string{"Failed "},
			match: []string{"Failed password for root from 192.0.2.1"}},
		{expr: `^(?i:i)nvalid user \S+`, need: "nvalid user ", starts: []string{"Invalid user ", "invalid user "},
			match: []string{"Invalid user x", "invalid user y"}},
		{expr: `^(?:\w+: reject:|(?:improper command pipelining|too many errors) after \S+) (?P<content>.+)$`,
			anyOf: []string{": reject:", "improper command pipelining", "too many errors"},
			match: []string{"NOQUEUE: reject: RCPT", "too many errors after DATA from x"}},
		{expr: `^(?:a|b)?c.*`, starts: []string{"ac", "bc", "c"}, match: []string{"c", "ac", "bc"}},
		{expr: `x\d+y`, match: []string{"x1y"}},
	} {
		r := newPrefilter(tc.expr, true)
		need, anyOf, starts := r.need, r.anyOf, r.starts
		if need != tc.need || !slices.Equal(anyOf, tc.anyOf) || !slices.Equal(starts, tc.starts) {
			t.Errorf("%s: need %q, anyOf %q, starts %q; want %q, %q, %q", tc.expr, need, anyOf, starts, tc.need, tc.anyOf, tc.starts)
		}
		for _, m := range tc.match {
			if !r.mayMatch(m) {
				t.Errorf("%s: prefilter stops %q, which matches", tc.expr, m)
			}
		}
	}
}

// approxGo must match at least what the Python expression matches: its
// literals are then every match's.
func TestApproxGo(t *testing.T) {
	for in, want := range map[string]string{
		`^a(?=b)c`:                 `^ac`,
		`(?<!x)y(?!z)`:             `y`,
		`(?P<u>\w+) (?P=u)`:        `(?P<u>\w+) (?s:.*)`,
		`(\w)\1`:                   `(\w)(?s:.*)`,
		`(?(c)yes|no)`:             `(?:yes|no)`,
		`[(?=]x`:                   `[(?=]x`,
		`\(?=x`:                    `\(?=x`,
		`(?:(?! from ).)*? from h`: `(?:.)*? from h`,
	} {
		if got := approxGo(in); got != want {
			t.Errorf("approxGo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTextSet(t *testing.T) {
	ts := newTextSet([]string{"Failed ", "Invalid user ", "reject:"})
	for s, want := range map[string]bool{
		"sshd[1]: Failed password":          true,
		"Invalid user x":                    true,
		"NOQUEUE: reject: RCPT":             true,
		"Faile":                             false,
		"failed password":                   false,
		"":                                  false,
		strings.Repeat("Fa", 100):           false,
		strings.Repeat("x", 99) + "reject:": true,
	} {
		if got := ts.any(s); got != want {
			t.Errorf("any(%q) = %v, want %v", s, got, want)
		}
	}
	if newTextSet([]string{"x"}) != nil {
		t.Error("a one-byte text makes a set")
	}
}

// The prefregex head gives the full expression's groups and content.
func TestPrefHead(t *testing.T) {
	src := `^(?P<mlfid>(?:\S+\s+)?(?:sshd\[\d+\]:\s+)?)(?:(?:error|fatal): )?(?P<content>.+)$`
	full, err := compileRx(src, false)
	if err != nil {
		t.Fatal(err)
	}
	c := &compiled{pref: full, head: newPrefHead(full, src)}
	if c.head == nil {
		t.Fatal("no head")
	}
	for _, line := range []string{
		" host sshd[12]: error: Failed password for x",
		" host sshd[12]: Accepted",
		" host postfix/smtpd[3]: connect from y",
		"x",
		" ",
	} {
		var r1, r2 []rune
		got, ok := c.matchPref(line, &r1)
		want, _, _ := full.find(line, &r2)
		if ok != (want != nil) {
			t.Errorf("%q: head says %v, full %v", line, ok, want != nil)
			continue
		}
		if ok && (got.content() != want["content"] || got.groups()["mlfid"] != want["mlfid"]) {
			t.Errorf("%q: head %q %q, full %q %q", line, got.content(), got.groups()["mlfid"], want["content"], want["mlfid"])
		}
	}
}
