package filter

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/rampart-dev/rampart/internal/event"
)

func TestUserCaptureClasses(t *testing.T) {
	tests := []struct {
		pat, msg   string
		ok         bool
		host, user string
	}{
		// <USER:LOGIN> holds no ':', so the first ", client: " after it is the daemon's.
		{`user "<USER:LOGIN>": bad, client: <HOST>, <*>`, `user "bob smith": bad, client: 192.0.2.1, ref: "x": bad, client: 6.6.6.6, ref: y`, true, "192.0.2.1", "bob smith"},
		// Without the class the rightmost binding takes the forged address.
		{`user "<USER>": bad, client: <HOST>, <*>`, `user "bob smith": bad, client: 192.0.2.1, ref: "x": bad, client: 6.6.6.6, ref: y`, true, "6.6.6.6", `bob smith": bad, client: 192.0.2.1, ref: "x`},
		{`user "<USER:LOGIN>" no`, `user "" no`, true, "", ""},
		{`user "<USER:LOGIN>" no`, `user "a:b" no`, false, "", ""},
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
	if _, err := compilePattern("<USER:FOO>"); err == nil {
		t.Error("<USER:FOO> compiled")
	}
}

func TestFragments(t *testing.T) {
	def := `name = "t"
[fragments]
pre = "[<WORD>] "
client = "<@pre>client <HOST>"
[[rule]]
kind = "auth-failure"
patterns = ["<@client> said \\<@pre> <USER>"]
`
	f, _, err := Parse("t.toml", []byte(def))
	if err != nil {
		t.Fatal(err)
	}
	p := f.rules[0].pats[0]
	var c capture
	if !p.match("[error] client 192.0.2.1 said <@pre> bob", &c) || c.host != "192.0.2.1" || c.user != "bob" {
		t.Errorf("expanded pattern %q: host=%q user=%q", p.src, c.host, c.user)
	}
	for _, bad := range []struct{ frag, pat, want string }{
		{`a = "x"`, "<@b>", `unknown fragment "b"`},
		{`a = "<@a>"`, "<@a>", "nested more than"},
		{`a = "x"`, "<@a", "unterminated"},
	} {
		def := "name = \"t\"\n[fragments]\n" + bad.frag + "\n[[rule]]\nkind = \"probe\"\npatterns = [\"" + bad.pat + "\"]\n"
		if _, _, err := Parse("t.toml", []byte(def)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("fragment %s, pattern %s: err %v, want %q", bad.frag, bad.pat, err, bad.want)
		}
	}
}

// TestNodeSize keeps a pattern node within one cache line (see node).
func TestNodeSize(t *testing.T) {
	if size := unsafe.Sizeof(node{}); size > 64 {
		t.Errorf("a node takes %d bytes, more than a 64-byte cache line", size)
	}
}

// TestMinLen: a rule with min_len applies only to messages that long,
// trailing blanks included (a logger that cuts lines leaves them full);
// a negative min_len is a load error.
func TestMinLen(t *testing.T) {
	match := matching(t, compiled(t, `name = "t"
[[rule]]
kind = "context"
min_len = 40
patterns = ["LOGIN FAILED, <*>"]
[[rule]]
kind = "auth-failure"
patterns = ["LOGIN FAILED, user=<USER>, ip=[<HOST>]"]
`))
	for _, tt := range []struct {
		msg  string
		want bool // an auth-failure
	}{
		{"LOGIN FAILED, user=bob, ip=[192.0.2.1]", true},      // 38 bytes
		{"LOGIN FAILED, user=bobby, ip=[192.0.2.1]", false},   // 40
		{"LOGIN FAILED, user=bob, ip=[192.0.2.1]    ", false}, // cut among blanks
	} {
		mt, ok := match("Nov 23 15:02:13 mx imapd: " + tt.msg)
		if got := ok && mt.Kind == event.AuthFailure; got != tt.want {
			t.Errorf("%q: auth-failure %v, want %v", tt.msg, got, tt.want)
		}
	}
	if _, _, err := Parse("t.toml", []byte("name = \"t\"\n[[rule]]\nkind = \"probe\"\nmin_len = -1\npatterns = [\"x\"]\n")); err == nil || !strings.Contains(err.Error(), "min_len -1 is negative") {
		t.Errorf("negative min_len: err %v", err)
	}
}
