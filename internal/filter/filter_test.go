package filter

import (
	"strings"
	"testing"

	"github.com/rampart-dev/rampart/internal/logline"
)

func TestBuiltinCompiles(t *testing.T) {
	r, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Filters()) == 0 {
		t.Fatal("no built-in filters")
	}
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pat, msg   string
		ok         bool
		host, user string
	}{
		{"Failed <WORD> for <USER> from <HOST>{ port <NUM>|}{ ssh2|}", "Failed password for root from 1.2.3.4 port 22 ssh2", true, "1.2.3.4", "root"},
		{"Failed <WORD> for <USER> from <HOST>{ port <NUM>|}{ ssh2|}", "Failed password for root from 1.2.3.4", true, "1.2.3.4", "root"},
		// An attacker-chosen user name cannot move the blamed address.
		{"Failed <WORD> for <USER> from <HOST>{ port <NUM>|}{ ssh2|}", "Failed password for x from 6.6.6.6 port 1 ssh2 from 1.2.3.4 port 22 ssh2", true, "1.2.3.4", "x from 6.6.6.6 port 1 ssh2"},
		{"Failed <WORD> for <USER> from <HOST>{ port <NUM>|}{ ssh2|}", "Failed password for root from 1.2.3.4 port 22 ssh2 trailing", false, "", ""},
		{"<*>[<HOST>]:<*>", "warning: unknown[192.0.2.1]: SASL LOGIN authentication failed", true, "192.0.2.1", ""},
		{"client <HOST>#<NUM>: query<*> denied", "client 194.145.196.18#4795: query 'ricreig.com/NS/IN' denied", true, "194.145.196.18", ""},
		{"from <HOST>:<NUM>", "from 1.2.3.4:5678", true, "1.2.3.4", ""},
		{"from <HOST>", "from unknown", false, "", ""},
		{"from <HOST>", "from ::ffff:1.2.3.4", true, "::ffff:1.2.3.4", ""},
		{`a \{b\} <NUM>`, "a {b} 12", true, "", ""},
	}
	for _, tt := range tests {
		p, err := compilePattern(tt.pat)
		if err != nil {
			t.Fatalf("compile %q: %v", tt.pat, err)
		}
		var c capture
		ok := p.match(tt.msg, &c)
		if ok != tt.ok || (ok && (c.host != tt.host || c.user != tt.user)) {
			t.Errorf("%q on %q = %v host=%q user=%q, want %v host=%q user=%q", tt.pat, tt.msg, ok, c.host, c.user, tt.ok, tt.host, tt.user)
		}
	}
}

func TestPatternErrors(t *testing.T) {
	for _, src := range []string{"<HOST", "<FOO>", "{a|b", "a}", "<USER><HOST>", `x\`} {
		if _, err := compilePattern(src); err == nil {
			t.Errorf("compilePattern(%q) succeeded", src)
		}
	}
}

func TestSessionContext(t *testing.T) {
	r, _ := Builtin()
	f, _, _ := r.Lookup("sshd")
	m, err := f.NewMatcher("")
	if err != nil {
		t.Fatal(err)
	}
	p := logline.Parser{}
	l, _ := p.Parse("Feb 12 04:09:18 h sshd[26713]: Connection from 115.249.163.77 port 51353")
	if _, ok := m.Match(&l); ok {
		t.Fatal("context line reported as a match")
	}
}

func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		"Nov 22 14:03:07 host sshd[123]: Failed password for invalid user x from 1.2.3.4 port 22 ssh2",
		"Nov 22 14:03:07 host postfix/smtpd[1]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
		"Nov 22 14:03:07 host dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u>, method=PLAIN, rip=1.2.3.4, lip=5.6.7.8",
		"1.2.3.4 - - [20/Jan/2015:19:53:28 +0100] \"GET /phpmyadmin HTTP/1.1\" 404 47 \"-\" \"-\"",
	} {
		f.Add(s)
	}
	reg, err := Builtin()
	if err != nil {
		f.Fatal(err)
	}
	var ms []*Matcher
	for _, flt := range reg.Filters() {
		m, err := flt.NewMatcher("aggressive")
		if err != nil {
			f.Fatal(err)
		}
		ms = append(ms, m)
	}
	router := NewRouter(ms...)
	var p logline.Parser
	f.Fuzz(func(t *testing.T, raw string) {
		l, err := p.Parse(raw)
		if err != nil {
			return
		}
		mt, _, ok := router.Match(&l)
		if !ok {
			return
		}
		if mt.Host == "" || !strings.Contains(raw, mt.Host) && !strings.Contains(l.Message, mt.Host) {
			t.Fatalf("match blames %q, not in the line", mt.Host)
		}
		if mt.Count < 1 {
			t.Fatalf("match with count %d", mt.Count)
		}
	})
}
