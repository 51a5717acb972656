package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// hostileUser is an unprivileged local account made for a test, which
// commands run as through setpriv.
type hostileUser struct {
	name, uid, gid string
}

func newHostileUser(t *testing.T) *hostileUser {
	t.Helper()
	for _, b := range []string{"useradd", "userdel", "setpriv", "python3"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: needs %s (Debian's passwd, util-linux, python3)", b)
		}
	}
	name := "rampart-hostile"
	exec.Command("userdel", name).Run() // left by an earlier run that died
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return &hostileUser{name: name, uid: u.Uid, gid: u.Gid}
}

// run runs argv as the user, with no supplementary groups and no
// capabilities, and returns its combined output and error.
func (h *hostileUser) run(argv ...string) (string, error) {
	args := append([]string{"--reuid=" + h.uid, "--regid=" + h.gid, "--clear-groups", "--inh-caps=-all", "--"}, argv...)
	cmd := exec.Command("setpriv", args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// hostileProbe is what the hostile user tries, in Python: each line of its
// output is "NAME: ok ..." or "NAME: denied ...".
const hostileProbe = `
import http.client, json, socket, sys
control, postfix, secret, dovecot_addr = sys.argv[1:5]

def attempt(name, f):
    try:
        print(name + ": ok " + str(f()))
    except PermissionError as e:
        print(name + ": denied " + str(e))
    except Exception as e:
        print(name + ": error " + repr(e))

def unix_http(path, method, url, body=None):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    req = "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" % (method, url)
    if body is not None:
        req += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    s.sendall((req + "\r\n" + (body or "")).encode())
    return s.recv(200)

attempt("status", lambda: unix_http(control, "GET", "/status"))
attempt("ban", lambda: unix_http(control, "POST", "/ban", json.dumps({"ip": "192.0.2.66"})))
attempt("unban", lambda: unix_http(control, "POST", "/unban", json.dumps({"ip": "192.0.2.66"})))

def postfix_claim():
    s = socket.socket(socket.AF_UNIX)
    s.connect(postfix)
    s.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=198.51.100.77\nsasl_username=alice\n\n")
    return s.recv(100)
attempt("postfix-policy", postfix_claim)
attempt("secret", lambda: open(secret).read())

def dovecot(cmd, body):
    c = http.client.HTTPConnection(dovecot_addr, timeout=5)
    c.request("POST", "/?command=" + cmd, body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise PermissionError("HTTP %d" % r.status)
    return r.read()

def dovecot_ban():
    denied = 0
    for i in range(8):
        try:
            dovecot("report", json.dumps({"login": "root", "remote": "198.51.100.66", "success": False}))
        except PermissionError:
            denied += 1
    if denied:
        raise PermissionError("%d of 8 refused" % denied)
attempt("dovecot-fail", dovecot_ban)
attempt("dovecot-success", lambda: dovecot("report", json.dumps({"login": "alice", "remote": "198.51.100.77", "success": True})))
`

// TestHostileLocalUser: a local user without privileges, on a host set up
// as docs/integrations.md says, can neither read Rampart's status nor ban
// or unban through the control socket, nor reach the Postfix policy
// socket, nor read the Dovecot secret, nor get an address banned or made
// known-good through the Dovecot policy port.
func TestHostileLocalUser(t *testing.T) {
	l := startMailLab(t, labOptions{})
	hu := newHostileUser(t)
	before := l.status(t)
	probe := filepath.Join(l.dir, "probe.py")
	writeFile(t, probe, hostileProbe)
	out, err := hu.run("python3", probe, l.socket, filepath.Join(l.spool, "rampart", "policy"),
		filepath.Join(l.stateDir, "dovecot-policy-auth"), fmt.Sprintf("127.0.0.1:%d", l.dovecotPolicy))
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	t.Logf("as %s:\n%s", hu.name, out)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if name, res, ok := strings.Cut(line, ": "); ok {
			got[name] = res
		}
	}
	for _, name := range []string{"status", "ban", "unban", "postfix-policy", "secret", "dovecot-fail", "dovecot-success"} {
		if !strings.HasPrefix(got[name], "denied ") {
			t.Errorf("%s: %q, want denied", name, got[name])
		}
	}
	// The client commands too (the binary copied where the user can run it).
	bin := filepath.Join(l.dir, "rampart-client")
	if b, err := os.ReadFile(l.bin); err != nil {
		t.Fatal(err)
	} else {
		writeFile(t, bin, string(b))
		os.Chmod(bin, 0o755)
	}
	for _, argv := range [][]string{{"status"}, {"ban", "192.0.2.67"}, {"unban", "192.0.2.67"}} {
		out, err := hu.run(append([]string{bin}, append(argv, "--socket", l.socket)...)...)
		if err == nil || !strings.Contains(out, "permission denied") {
			t.Errorf("rampart %s as %s: %v\n%s", argv[0], hu.name, err, out)
		}
	}
	after := l.status(t)
	if _, ok := l.bannedBy(t, addr("198.51.100.66")); ok {
		t.Errorf("the hostile user got 198.51.100.66 banned")
	}
	if _, ok := l.bannedBy(t, addr("192.0.2.67")); ok {
		t.Errorf("the hostile user banned 192.0.2.67")
	}
	if after.Engine.KnownGood != before.Engine.KnownGood || after.Engine.Successes != before.Engine.Successes {
		t.Errorf("the hostile user made a client known-good: %d -> %d known-good, %d -> %d successes",
			before.Engine.KnownGood, after.Engine.KnownGood, before.Engine.Successes, after.Engine.Successes)
	}
	if p := after.Policy; p == nil || p.Dovecot.Unauthorized != 9 {
		t.Errorf("dovecot policy: %+v, want 9 unauthorized requests", p.Dovecot)
	}
	// Postfix itself still reaches its socket: a client gets its greeting
	// after a policy answer (CONNECT on submission).
	if rs := l.smtpAuth(t, addr("127.0.12.2"), "bob@example.test", mailUsers["bob@example.test"]); rs[0].Code != 220 {
		t.Fatalf("submission after the probe: %v", rs)
	}
}
