package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/postfixaudit"
)

// checkPostfix runs `rampart check-postfix -c dir --json` and returns its
// findings' ids and its exit status.
func checkPostfix(t *testing.T, bin, dir string) ([]string, int) {
	t.Helper()
	cmd := exec.Command(bin, "check-postfix", "-c", dir, "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Findings []postfixaudit.Finding `json:"findings"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("check-postfix output %q (stderr %q): %v", out, stderr.String(), err)
	}
	var ids []string
	for _, f := range res.Findings {
		ids = append(ids, f.ID)
	}
	return ids, code
}

// TestCheckPostfixOpenRelay: a Postfix whose mynetworks is 0.0.0.0/0 is
// proven an open relay with swaks (a stranger's mail for another domain is
// accepted), then flagged, exit status 1. Debian's default is flagged for
// its missing defences, also with status 1.
func TestCheckPostfixOpenRelay(t *testing.T) {
	requireMailTools(t)
	bin := rampartBinary(t)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	etc, spool, lib := filepath.Join(dir, "etc"), filepath.Join(dir, "spool"), filepath.Join(dir, "lib")
	for _, d := range []string{spool, lib} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	chown(t, lib, "postfix")
	port := freePorts(t, 1)[0]
	writeFile(t, filepath.Join(etc, "main.cf"), `compatibility_level = 3.6
queue_directory = `+spool+`
data_directory = `+lib+`
mail_owner = postfix
myhostname = mail.example.test
mydestination = example.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
maillog_file = `+filepath.Join(dir, "postfix.log")+`
maillog_file_prefixes = `+dir+`
# The mistake: every address is "my network".
mynetworks = 0.0.0.0/0
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
`)
	writeFile(t, filepath.Join(etc, "master.cf"), "127.0.0.1:"+strconv.Itoa(port)+` inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
error     unix  -       -       n       -       -       error
anvil     unix  -       -       n       -       1       anvil
proxymap  unix  -       -       n       -       -       proxymap
postlog   unix-dgram n  -       n       -       1       postlogd
`)
	if out, err := exec.Command("postfix", "-c", etc, "start").CombinedOutput(); err != nil {
		t.Fatalf("postfix start: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("postfix", "-c", etc, "stop").Run() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postfix log:\n%s", readFile(filepath.Join(dir, "postfix.log")))
		}
	})
	waitUntil(t, 10*time.Second, "postfix answering", func() bool { return greets(port) }, nil)

	// A stranger (127.0.0.9) hands over mail for a domain this server does
	// not serve: an open relay accepts the recipient.
	out, _ := exec.Command("swaks", "--server", "127.0.0.1:"+strconv.Itoa(port), "--local-interface", "127.0.0.9",
		"--from", "spammer@elsewhere.example", "--to", "victim@third-party.example", "--quit-after", "RCPT", "--timeout", "20").CombinedOutput()
	if r, ok := reply(parseSwaks(string(out)), "RCPT"); !ok || r.Code != 250 {
		t.Fatalf("the relay was not open (RCPT %v):\n%s", r, out)
	}
	ids, code := checkPostfix(t, bin, etc)
	if code != 1 || !slices.Contains(ids, "mynetworks-wide") {
		t.Errorf("open relay: findings %v, exit %d; want mynetworks-wide, exit 1", ids, code)
	}

	ids, code = checkPostfix(t, bin, "../../internal/postfixaudit/testdata/debian")
	if code != 1 || !slices.Contains(ids, "rampart-hook-absent") || slices.Contains(ids, "open-relay") {
		t.Errorf("Debian's default: findings %v, exit %d", ids, code)
	}
}
