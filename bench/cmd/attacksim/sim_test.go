package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/logline"
)

var testStart = time.Date(2025, 3, 10, 6, 0, 0, 0, time.UTC)

// gen writes a small run (a tenth of the attackers, a 6-hour warm-up) into
// a temporary directory and returns it.
func gen(t *testing.T, seed uint64, only string) string {
	t.Helper()
	picked, err := selectScenarios(only)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := generate(seed, testStart, 12*time.Hour, 6*time.Hour, picked, 0.1).write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDeterministic(t *testing.T) {
	a, b, c := gen(t, 7, "all"), gen(t, 7, "all"), gen(t, 8, "all")
	for _, f := range []string{"auth.log", "mail.log", "truth.jsonl"} {
		if !bytes.Equal(read(t, a, f), read(t, b, f)) {
			t.Errorf("%s differs between two runs with the same seed", f)
		}
		if bytes.Equal(read(t, a, f), read(t, c, f)) {
			t.Errorf("%s is the same for seeds 7 and 8", f)
		}
	}
}

// Leaving scenarios out does not change the others: each draws from its
// own random stream.
func TestScenariosIndependent(t *testing.T) {
	pick := func(dir, scenario string) []Attempt {
		var out []Attempt
		for _, a := range readTruth(t, dir) {
			if a.Scenario == scenario {
				out = append(out, a)
			}
		}
		return out
	}
	all, one := gen(t, 3, "all"), gen(t, 3, "rotation,legit-travel")
	for _, sc := range []string{"rotation", "legit-travel"} {
		x, y := pick(all, sc), pick(one, sc)
		if len(x) == 0 || fmt.Sprint(x) != fmt.Sprint(y) {
			t.Errorf("%s: %d attempts alone, %d with the others, or they differ", sc, len(y), len(x))
		}
	}
	if _, err := selectScenarios("rotation,nope"); err == nil {
		t.Error("unknown scenario accepted")
	}
}

func readTruth(t *testing.T, dir string) []Attempt {
	t.Helper()
	var out []Attempt
	sc := bufio.NewScanner(bytes.NewReader(read(t, dir, "truth.jsonl")))
	for sc.Scan() {
		var a Attempt
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// syslogShape is rsyslog's traditional file format as Debian 12 writes it.
var syslogShape = regexp.MustCompile(`^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d mx1 (sshd\[\d+\]|systemd-logind\[\d+\]|postfix/(smtpd|submission/smtpd|smtps/smtpd|cleanup|qmgr|smtp)\[\d+\]|dovecot): \S`)

// The logs are what Rampart's sshd, postfix (aggressive, as the default
// jail) and dovecot filters, the equivalents of fail2ban's, recognise:
// every failed attempt of the ground truth, attacker or legitimate, is an
// event for its address in the second it was made, and every successful
// SSH or IMAP login (Postfix logs no success the filter reads) an
// auth-success event.
func TestLineShapesRecognised(t *testing.T) {
	dir := gen(t, 1, "all")
	reg, err := filter.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var ms []*filter.Matcher
	for _, fm := range [][2]string{{"sshd", ""}, {"postfix", "aggressive"}, {"dovecot", ""}} {
		f, _, ok := reg.Lookup(fm[0])
		if !ok {
			t.Fatalf("no filter %s", fm[0])
		}
		m, err := f.NewMatcher(fm[1])
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	type key struct {
		addr netip.Addr
		sec  int64
		ok   bool
	}
	seen := map[key]bool{}
	parser := logline.Parser{Year: 2025, Location: time.UTC}
	for _, name := range []string{"auth.log", "mail.log"} {
		router := filter.NewRouter(ms...)
		sc := bufio.NewScanner(bytes.NewReader(read(t, dir, name)))
		n := 0
		for sc.Scan() {
			n++
			raw := sc.Text()
			if !syslogShape.MatchString(raw) {
				t.Fatalf("%s:%d: not a Debian syslog line: %q", name, n, raw)
			}
			l, err := parser.Parse(raw)
			if err != nil {
				t.Fatalf("%s:%d: %v: %q", name, n, err, raw)
			}
			if mt, _, ok := router.Match(&l); ok && mt.Addr.IsValid() {
				seen[key{mt.Addr, l.Time.Unix(), mt.Kind == event.AuthSuccess}] = true
			}
		}
	}
	missed := map[string]int{}
	counted := map[string]int{}
	for _, a := range readTruth(t, dir) {
		var want key
		switch {
		case a.Result == "failure":
			want = key{netip.MustParseAddr(a.IP), a.Time.Unix(), false}
		case a.Result == "success" && a.Service != "postfix":
			want = key{netip.MustParseAddr(a.IP), a.Time.Unix(), true}
		default:
			continue
		}
		k := a.Role + "/" + a.Service + "/" + a.Result
		counted[k]++
		if !seen[want] {
			missed[k]++
			if missed[k] <= 3 {
				t.Errorf("%s attempt not recognised: %+v", k, a)
			}
		}
	}
	for _, k := range []string{"attacker/sshd/failure", "attacker/postfix/failure", "attacker/dovecot/failure", "legit/dovecot/failure", "legit/dovecot/success", "legit/sshd/success"} {
		if counted[k] == 0 {
			t.Errorf("no %s attempts generated", k)
		}
	}
	t.Logf("attempts checked: %v", counted)
}

// One attempt is several lines, as the daemons write them.
func TestSessionShapes(t *testing.T) {
	s := newSim(testStart, time.Hour, 0)
	r := rng(1, "t")
	w := who{"attacker", "t"}
	a := netip.MustParseAddr("192.0.2.9")
	s.sshFail(r, w, testStart, a, sshUser{"admin", false}, 2)
	s.smtpAuthFail(r, w, testStart.Add(time.Minute), a, submission, mailUser{"info@example.org", true}, 1)
	s.imapFail(r, w, testStart.Add(2*time.Minute), a, mailUser{"test", false}, 1)
	s.smtpEnum(r, w, testStart.Add(3*time.Minute), a, []rcptProbe{{"anna@example.org", false}})
	var got []string
	for _, f := range s.lines {
		for _, l := range f {
			got = append(got, regexp.MustCompile(`\[\d+\]|port \d+|<[A-Za-z0-9+/]{16}>|in \d+ secs`).ReplaceAllString(l.text, "#"))
		}
	}
	want := []string{
		"sshd#: Invalid user admin from 192.0.2.9 #",
		"sshd#: pam_unix(sshd:auth): check pass; user unknown",
		"sshd#: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.9",
		"sshd#: Failed password for invalid user admin from 192.0.2.9 # ssh2",
		"sshd#: Failed password for invalid user admin from 192.0.2.9 # ssh2",
		"postfix/submission/smtpd#: connect from unknown[192.0.2.9]",
		"postfix/submission/smtpd#: Anonymous TLS connection established from unknown[192.0.2.9]: " + tlsV13,
		"dovecot: auth: passwd-file(info@example.org,192.0.2.9): Password mismatch",
		"postfix/submission/smtpd#: warning: unknown[192.0.2.9]: SASL ",
		"dovecot: auth: passwd-file(test,192.0.2.9,#): unknown user",
		"postfix/smtpd#: connect from unknown[192.0.2.9]",
		"postfix/smtpd#: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 550 5.1.1 <anna@example.org>: Recipient address rejected: User unknown in virtual mailbox table; ",
	}
	joined := "\n" + fmt.Sprint(got)
	for _, w := range want {
		if !bytes.Contains([]byte(joined), []byte(w)) {
			t.Errorf("no line like %q in\n%s", w, joined)
		}
	}
	if n := len(s.truth); n != 5 {
		t.Errorf("%d attempts recorded, want 5 (2 ssh, 1 smtp, 1 imap, 1 rcpt)", n)
	}
}
