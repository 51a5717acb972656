package filter

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRouterRecent checks that routes remembered in Router.recent stay
// right while more programs than it has slots come and go.
func TestRouterRecent(t *testing.T) {
	reg, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var ms []*Matcher
	for _, f := range reg.Filters() {
		m, err := f.NewMatcher("")
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	r := NewRouter(ms...)
	progs := []string{"sshd", "sshd-session", "postfix/smtpd", "postfix/submission/smtpd", "postfix-in/smtpd",
		"dovecot", "auth", "imap-login", "CRON", "systemd", "kernel", "nginx", "apache2", "named", "proftpd",
		"pure-ftpd", "vsftpd", "mysqld", "exim", "sendmail", "sm-mta", "courierpop3login", "sudo", "x", "postfix"}
	for i := range 40 {
		progs = append(progs, "prog"+string(rune('a'+i%26))+string(rune('0'+i/26)))
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20_000 {
		prog := progs[rng.IntN(len(progs))]
		// A fresh copy, as a reused line buffer would hold.
		got := r.route(string([]byte(prog)))
		if want := r.routeOf(prog, nil); !slices.Equal(got, want) {
			t.Fatalf("route(%q) = %v, want %v", prog, got, want)
		}
	}
}
