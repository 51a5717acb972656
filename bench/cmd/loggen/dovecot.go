package main

import "strconv"

// Dovecot 2.3.19 (Debian 12) with auth_verbose=yes, virtual users in a
// passwd-file, a few system users through PAM, IMAP and POP3 with and
// without TLS, logging to syslog (no "Info:" prefix).

var dovecotScenarios = []scenario{
	{40, dovecotAuthFailure},
	{6, dovecotPAMFailure},
	{14, dovecotNoAuth},
	{28, dovecotLogin},
}

type imapConn struct {
	g     *generator
	proto string // "imap" or "pop3"
	c     client
	sess  string
	tls   bool
	ls    []line
}

func (g *generator) imapConn(c client) *imapConn {
	return &imapConn{g: g, proto: g.pick("imap", "imap", "imap", "pop3"), c: c, sess: g.dovecotSession(), tls: g.r.IntN(4) != 0}
}

func (d *imapConn) log(msg string) { d.ls = append(d.ls, line{catDovecot, "dovecot: " + msg}) }

// tail is the end of a *-login line: addresses, TLS, session.
func (d *imapConn) tail() string { return d.tailWith("") }

// tailWith is tail with a note (such as a TLS error) before the session.
func (d *imapConn) tailWith(note string) string {
	t := "rip=" + d.c.ip() + ", lip=" + serverFor(d.c.addr).String()
	if d.tls {
		t += ", TLS"
	}
	if note != "" {
		t += ", " + note
	}
	return t + ", session=<" + d.sess + ">"
}

// disconnected is the *-login line closing a session that failed to log in.
func (d *imapConn) disconnected(user, method string, n int) {
	reason := "(auth failed, " + strconv.Itoa(n) + " attempts in " + d.g.itoa(n*2, n*6) + " secs)"
	var head string
	switch d.g.r.IntN(10) {
	case 0, 1, 2, 3, 4:
		head = "Disconnected: Connection closed " + reason
	case 5, 6:
		head = "Disconnected " + reason
	case 7:
		head = "Disconnected: Aborted login by logging out " + reason
	case 8:
		head = "Disconnected: Too many invalid commands " + reason
	default:
		head = "Disconnected: Inactivity " + reason
	}
	d.log(d.proto + "-login: " + head + ": user=<" + user + ">, method=" + method + ", " + d.tail())
}

// dovecotAuthFailure: password guessing against IMAP or POP3; each guess
// logs one auth line, the session one *-login line at its end.
func dovecotAuthFailure(g *generator) []line {
	d := g.imapConn(g.attacker())
	user := g.pickList(mailGuesses)
	if g.r.IntN(4) != 0 {
		user += "@" + domain
	}
	n := 1
	if g.r.IntN(3) == 0 {
		n = 2 + g.r.IntN(2)
	}
	for range n {
		if isMailUser(user) {
			d.log("auth: passwd-file(" + user + "," + d.c.ip() + ",<" + d.sess + ">): Password mismatch")
		} else {
			d.log("auth: passwd-file(" + user + "," + d.c.ip() + ",<" + d.sess + ">): unknown user")
		}
	}
	d.disconnected(user, g.pick("PLAIN", "PLAIN", "LOGIN"), n)
	return d.ls
}

// dovecotPAMFailure: a system user's password checked through PAM.
func dovecotPAMFailure(g *generator) []line {
	d := g.imapConn(g.attacker())
	user := g.pick("alice", "root", "admin", "test", "backup")
	worker := "auth-worker(" + strconv.Itoa(g.pooledPID("dovecot/auth-worker")) + "): "
	ip := d.c.ip()
	if user == "alice" || user == "root" || user == "backup" {
		d.ls = append(d.ls, line{catDovecot, "auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=" + user + " rhost=" + ip + "  user=" + user})
		d.log(worker + "pam(" + user + "," + ip + ",<" + d.sess + ">): pam_authenticate() failed: Authentication failure (Password mismatch?)")
	} else {
		d.ls = append(d.ls, line{catDovecot, "auth: pam_unix(dovecot:auth): check pass; user unknown"})
		d.ls = append(d.ls, line{catDovecot, "auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=" + user + " rhost=" + ip})
		d.log(worker + "pam(" + user + "," + ip + ",<" + d.sess + ">): unknown user")
	}
	d.disconnected(user, "PLAIN", 1)
	return d.ls
}

// dovecotNoAuth: scanners that connect and never authenticate.
func dovecotNoAuth(g *generator) []line {
	d := g.imapConn(g.attacker())
	switch g.r.IntN(4) {
	case 0:
		d.tls = false
		d.log(d.proto + "-login: Disconnected: Connection closed (no auth attempts in " + g.itoa(0, 2) + " secs): user=<>, " + d.tailWith("TLS handshaking: SSL_accept() failed: error:0A00006C:SSL routines::bad key share"))
	case 1:
		d.log(d.proto + "-login: Disconnected: Connection closed (disconnected before greeting, waited 0 secs): user=<>, " + d.tail())
	case 2:
		d.log(d.proto + "-login: Disconnected: Inactivity (no auth attempts in 180 secs): user=<>, " + d.tail())
	default:
		d.log(d.proto + "-login: Disconnected (no auth attempts in " + g.itoa(0, 10) + " secs): user=<>, " + d.tail())
	}
	return d.ls
}

// dovecotLogin: a mail client logs in, works, logs out.
func dovecotLogin(g *generator) []line {
	d := g.imapConn(g.legitClient())
	d.tls = true
	user := g.pickList(mailUsers) + "@" + domain
	mpid := strconv.Itoa(g.newPID())
	d.log(d.proto + "-login: Login: user=<" + user + ">, method=PLAIN, rip=" + d.c.ip() + ", lip=" + serverFor(d.c.addr).String() + ", mpid=" + mpid + ", TLS, session=<" + d.sess + ">")
	who := d.proto + "(" + user + ")<" + mpid + "><" + d.sess + ">: "
	if d.proto == "pop3" {
		n := g.itoa(0, 5)
		d.log(who + "Disconnected: Logged out top=0/0, retr=" + n + "/" + g.itoa(0, 90000) + ", del=" + n + "/" + n + ", size=" + g.itoa(0, 90000))
		return d.ls
	}
	counts := " in=" + g.itoa(50, 9000) + " out=" + g.itoa(500, 900000) + " deleted=" + g.itoa(0, 3) + " expunged=" + g.itoa(0, 3) + " trashed=0 hdr_count=" + g.itoa(0, 40) + " hdr_bytes=" + g.itoa(0, 40000) + " body_count=" + g.itoa(0, 5) + " body_bytes=" + g.itoa(0, 200000)
	if g.r.IntN(3) == 0 {
		d.log(who + "Disconnected: Connection closed (IDLE finished " + g.itoa(1, 1700) + ".1 secs ago)" + counts)
	} else {
		d.log(who + "Logged out" + counts)
	}
	return d.ls
}
