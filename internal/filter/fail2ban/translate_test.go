package fail2ban

import (
	"bufio"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNoLiteral checks noLiteral's automaton against its definition on
// every text up to 5 characters over the literal's letters and others,
// and on random longer ones.
func TestNoLiteral(t *testing.T) {
	for _, lit := range []string{" from ", "ab", "aba", "abca", "--", " to "} {
		for _, followed := range []bool{true, false} {
			re := regexp.MustCompile(`\A(?:` + noLiteral(lit, followed) + `)\z`)
			alphabet := uniqueBytes(lit + "xy\n")
			check := func(w []byte) {
				s := string(w)
				want := !strings.Contains(s, lit) && !strings.Contains(s, "\n")
				if followed {
					want = want && strings.Index(s+lit, lit) == len(s)
				}
				if got := re.MatchString(s); got != want {
					t.Fatalf("%q followed=%v on %q: %v, want %v", lit, followed, s, got, want)
				}
			}
			var walk func(w []byte)
			walk = func(w []byte) {
				check(w)
				if len(w) < 5 {
					for _, c := range alphabet {
						walk(append(w, c))
					}
				}
			}
			walk(nil)
			rng := rand.New(rand.NewPCG(uint64(len(lit)), 2))
			for range 20000 {
				w := make([]byte, 6+rng.IntN(14))
				for i := range w {
					w[i] = alphabet[rng.IntN(len(alphabet))]
				}
				check(w)
			}
		}
	}
	if noLiteral("abab", true) != "" || noLiteral("a", true) != "" {
		t.Error("a literal repeating its first character inside must not be rewritten")
	}
}

func uniqueBytes(s string) []byte {
	var out []byte
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(string(out), rune(s[i])) {
			out = append(out, s[i])
		}
	}
	return out
}

// translated returns the expressions of testdata/translate/exprs.txt and
// those of the installed sshd filter (all modes) that are translated, as
// rx (tags resolved).
func translated(t *testing.T) []*rx {
	t.Helper()
	var srcs []string
	f, err := os.Open("testdata/translate/exprs.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			srcs = append(srcs, l)
		}
	}
	srcs = append(srcs, sshdTranslated(t)...)
	var out []*rx
	for _, s := range srcs {
		r, err := compileRx(s, false)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if r.Engine() != "go-translated" {
			t.Fatalf("%s: engine %s, want go-translated", s, r.Engine())
		}
		out = append(out, r)
	}
	return out
}

// sshdTranslated returns the installed sshd filter's failregexes that
// need the backtracking engine and are translated, tags resolved.
func sshdTranslated(t *testing.T) []string {
	path := filepath.Join(DefaultDir, "filter.d", "sshd.conf")
	if _, err := os.Stat(path); err != nil {
		t.Logf("no %s: only testdata's expressions", path)
		return nil
	}
	cfg, err := readConfig([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var out []string
	for _, mode := range []string{"normal", "ddos", "extra", "aggressive"} {
		d, err := cfg.resolve("sshd", map[string]string{"logtype": "file", "mode": mode, "publickey": "nofail"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range d.Failregex {
			src := resolveTags(s, d.UseDNS)
			r, err := compileRx(src, false)
			if err != nil {
				t.Fatal(err)
			}
			if r.Engine() == "go-translated" && !seen[src] {
				seen[src] = true
				out = append(out, src)
			}
		}
	}
	if len(out) < 2 {
		t.Errorf("sshd: %d failregexes translated, want its two \"Failed ... for\" ones", len(out))
	}
	return out
}

// sameMatch compares what the translated expression and regexp2 find in
// s: the groups and the match's bounds.
func sameMatch(t *testing.T, r *rx, s string) (groups, bool) {
	t.Helper()
	var runes []rune
	ref := *r
	ref.tr = nil
	want, ws, we := ref.find(s, &runes)
	got, gs, ge := findFirst(r.tr, s)
	if !maps.Equal(got, want) || (want != nil && (gs != ws || ge != we)) {
		t.Errorf("%s\non %q:\ntranslated %v [%d,%d)\nregexp2    %v [%d,%d)", r.src, s, got, gs, ge, want, ws, we)
		return want, false
	}
	return want, true
}

// TestTranslatedSameAsRegexp2 runs the translated expressions and regexp2
// on the tricky lines of testdata (a " from " injected in the user name,
// a trailing " from", IPv6, addresses in the user name, spaces) and
// checks they find the same; the sshd lines also against what Python's
// re finds (recorded in the file). Lines that are not printable ASCII
// go to regexp2 (rx.find), and the table shows they still match.
func TestTranslatedSameAsRegexp2(t *testing.T) {
	exprs := translated(t)
	type row struct{ user, host, line string }
	var rows []row
	data, err := os.ReadFile("testdata/translate/sshd_failed.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		var f [3]string
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		rows = append(rows, row{f[0], f[1], f[2]})
	}
	failed := sshdTranslated(t)
	for _, r := range exprs {
		for _, row := range rows {
			if plainASCII(row.line) {
				sameMatch(t, r, row.line)
			}
		}
	}
	for _, src := range failed {
		if !strings.HasPrefix(src, "^Failed (?:") {
			continue
		}
		r, _ := compileRx(src, false)
		for _, row := range rows {
			var runes []rune
			g, _, _ := r.find(row.line, &runes)
			user, host := "-", "-"
			if g != nil {
				user, host = g["user"], g["ip4"]+g["ip6"]+g["dns"]
			}
			if user != row.user || host != row.host {
				t.Errorf("%q: user %q host %q, want %q %q", row.line, user, host, row.user, row.host)
			}
		}
	}
}

// TestTranslatedRandom compares the translated expressions with regexp2 on
// random lines made of the words they look for.
func TestTranslatedRandom(t *testing.T) {
	exprs := translated(t)
	words := []string{
		"Failed ", "password", "publickey", "none", " for ", "invalid user ", " from ", " from", "from",
		"fro", " fr", " f", "192.0.2.1", "10.0.0.1", "2001:db8::1", "::ffff:192.0.2.2", "[2001:db8::2]",
		" port 22", " on eth0", " ssh2", ": ", ":", " ", "  ", "x", "root", "host.example",
		"a ", "b ", " to ", " to", "7", ";", "ab", "aba", "abca", "--", "k", "c", "C", "D", "o", "p", "y", "\t",
	}
	rng := rand.New(rand.NewPCG(15, 1))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := 0; i < n; i++ {
		var b strings.Builder
		if rng.IntN(2) == 0 {
			b.WriteString("Failed ")
		}
		for k := rng.IntN(12); k >= 0; k-- {
			b.WriteString(words[rng.IntN(len(words))])
		}
		s := b.String()
		for _, r := range exprs {
			if _, ok := sameMatch(t, r, s); !ok {
				return
			}
		}
	}
}
