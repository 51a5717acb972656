package fail2ban

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/logline"
)

func TestParseINI(t *testing.T) {
	f, err := parseINI("x.conf", []byte("# c\n[A]\nkey = one ; inline\n  two\n\n  three\nOther: x;y\n[DEFAULT]\nd = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.sections["A"].vals["key"]; got != "one\ntwo\n\nthree" {
		t.Errorf("key = %q", got)
	}
	if got := f.sections["A"].vals["other"]; got != "x;y" {
		t.Errorf("other = %q (a ';' not after a space is no comment)", got)
	}
	if f.defaults.vals["d"] != "1" {
		t.Errorf("defaults = %v", f.defaults.vals)
	}
	for _, bad := range []string{"key = 1\n", "[A]\njust text\n"} {
		if _, err := parseINI("bad.conf", []byte(bad)); err == nil || !strings.Contains(err.Error(), "bad.conf:") {
			t.Errorf("%q: error %v, want one naming bad.conf:line", bad, err)
		}
	}
}

func TestInterpolation(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.conf", "[DEFAULT]\nx = 1\n[S]\ny = %(x)s-%%\nz = %(y)s/%(T/w)s\nloop = %(loop)s\nbad = %(nope)s\n[T]\nw = tw\n")
	c, err := readConfig([]string{filepath.Join(dir, "a.conf")})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.get("S", "z", nil); err != nil || v != "1-%/tw" {
		t.Errorf("z = %q, %v", v, err)
	}
	if v, err := c.get("S", "y", map[string]string{"x": "2"}); err != nil || v != "2-%" {
		t.Errorf("y with vars = %q, %v", v, err)
	}
	if _, err := c.get("S", "loop", nil); err == nil || !strings.Contains(err.Error(), "a.conf:") {
		t.Errorf("loop: %v, want an error naming the file", err)
	}
	if _, err := c.get("S", "bad", nil); err == nil {
		t.Error("bad: no error")
	}
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := writeFile(filepath.Join(dir, name), text); err != nil {
		t.Fatal(err)
	}
}

func TestTranslate(t *testing.T) {
	for _, tc := range []struct {
		src, engine, line, host string
	}{
		{`^from <HOST>$`, "go", "from 192.0.2.1", "192.0.2.1"},
		{`^from <HOST>$`, "go", "from 2001:db8::1", "2001:db8::1"},
		{`^from <HOST>$`, "go", "from ::ffff:192.0.2.1", "192.0.2.1"},
		{`^(?:(?i)FROM) <ADDR>\Z`, "go", "from 192.0.2.1", "192.0.2.1"},
		{`^a{,2} <ADDR>$`, "go", "aa 192.0.2.1", "192.0.2.1"},
		{`^(?!x)from <HOST>$`, "regexp2", "from 192.0.2.3", "192.0.2.3"},
		{`^(?P<w>\w+) (?P=w) <HOST>$`, "regexp2", "ab ab 192.0.2.4", "192.0.2.4"},
		{`^(?P<w>\w+) (?P=w) <HOST>$`, "regexp2", "ab ac 192.0.2.4", ""},
	} {
		r, err := compileRx(resolveTags(tc.src, "warn"), false)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if r.Engine() != tc.engine {
			t.Errorf("%s: engine %s, want %s", tc.src, r.Engine(), tc.engine)
		}
		var rs []rune
		g, _, _ := r.find(tc.line, &rs)
		host := g["ip4"] + g["ip6"] + g["dns"]
		if host != tc.host {
			t.Errorf("%s on %q: host %q, want %q", tc.src, tc.line, host, tc.host)
		}
	}
}

func TestDemoFilter(t *testing.T) {
	f, err := Load("testdata/conf", "demo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.Modes, ",") != "normal,aggressive" {
		t.Errorf("modes %v", f.Modes)
	}
	type want struct {
		line       string
		kind       event.Kind // 0: no event
		host, user string
	}
	run := func(mode string, cases []want) {
		m, err := f.NewMatcher(mode)
		if err != nil {
			t.Fatal(err)
		}
		p := logline.Parser{Year: 2024}
		for _, c := range cases {
			l, err := p.Parse(c.line)
			if err != nil {
				t.Fatal(err)
			}
			mt, ok := m.Match(&l)
			switch {
			case c.kind == 0 && ok:
				t.Errorf("[%s] %q: matched %+v, want nothing", mode, c.line, mt)
			case c.kind != 0 && !ok:
				t.Errorf("[%s] %q: no match, want %s %s", mode, c.line, c.kind, c.host)
			case ok && (mt.Kind != c.kind || mt.Host != c.host || mt.User != c.user):
				t.Errorf("[%s] %q: %s %s %q, want %s %s %q", mode, c.line, mt.Kind, mt.Host, mt.User, c.kind, c.host, c.user)
			}
		}
	}
	run("", []want{
		{"Jan  2 10:00:00 host demo[1]: conn 1: bad login for alice from 192.0.2.1", event.AuthFailure, "192.0.2.1", "alice"},
		{"Jan  2 10:00:00 host demo[1]: conn 1: bad login for trusted from 192.0.2.1", 0, "", ""},
		{"Jan  2 10:00:00 host demo[1]: conn 1: bad login for root from 192.0.2.99", 0, "", ""}, // demo.local's ignoreregex
		{"Jan  2 10:00:00 host other[1]: conn 1: bad login for alice from 192.0.2.1", 0, "", ""},
		// F-MLFID: the address comes from an earlier line of conn 2.
		{"Jan  2 10:00:01 host demo[1]: conn 2: hello from 192.0.2.2", 0, "", ""},
		{"Jan  2 10:00:02 host demo[1]: conn 2: too many failures", event.AuthFailure, "192.0.2.2", ""},
		{"Jan  2 10:00:03 host demo[1]: conn 3: hello from 192.0.2.3", 0, "", ""},
		{"Jan  2 10:00:04 host demo[1]: conn 3: logged in as bob", event.AuthSuccess, "192.0.2.3", "bob"},
		{"Jan  2 10:00:05 host demo[1]: conn 9: probe from 192.0.2.5 port 1", 0, "", ""},
	})
	run("aggressive", []want{
		{"Jan  2 10:00:05 host demo[1]: conn 9: probe from 192.0.2.5 port 1", event.AuthFailure, "192.0.2.5", ""},
		{"Jan  2 10:00:05 host demo[1]: conn 9: repeat ab ab from 192.0.2.6", event.AuthFailure, "192.0.2.6", ""},
		{"2024-01-02 10:00:05 host demo[1]: conn 9: repeat ab ab from 192.0.2.7", event.AuthFailure, "192.0.2.7", ""},
	})
	if _, err := f.NewMatcher("nosuch"); err == nil {
		t.Error("unknown mode: no error")
	}
	var _ filter.Engine = f.Engine()
}

func TestParseFilterOption(t *testing.T) {
	name, opts, err := ParseFilterOption(`sshd[mode=aggressive, port="22,2222"]`)
	if err != nil || name != "sshd" || opts["mode"] != "aggressive" || opts["port"] != "22,2222" {
		t.Errorf("got %q %v %v", name, opts, err)
	}
}
