package main

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"
)

// The line shapes below are those of Debian 12's daemons at their default
// log levels, as rsyslog writes them (RFC 3164, year-less stamp):
//
//   - OpenSSH 9.2p1, LogLevel INFO, UsePAM yes, password authentication on;
//   - Postfix 3.7 (3.7.8 and later log ", sasl_username=..." after a SASL
//     failure and "(reason unavailable)" for an empty reason), smtpd on 25,
//     submission (587, STARTTLS) and smtps (465) from master.cf, Dovecot
//     SASL, no postscreen;
//   - Dovecot 2.3.19 with passwd-file users and auth_verbose = yes, which
//     makes the auth process log every failed password check (fail2ban's
//     dovecot filter documentation asks for it).

// Server addresses, for Dovecot's lip=.
var (
	serverV4 = netip.MustParseAddr("192.0.2.25")
	serverV6 = netip.MustParseAddr("2001:db8:25::25")
)

func lip(client netip.Addr) string {
	if client.Is4() {
		return serverV4.String()
	}
	return serverV6.String()
}

// who says whose attempts a session records; the zero who records none
// (lines that belong in the logs but in no scenario's ground truth).
type who struct {
	role, scenario string
}

// attempt records an attempt at a recipient (result "accepted" when it
// exists, "failure" when not).
func (ss *session) attempt(w who, addr netip.Addr, service, rcpt, result string) {
	ss.record(w, Attempt{Service: service, User: rcpt, Result: result}, addr)
}

// login records an attempt that is a password check (SSH, IMAP or POP3,
// SMTP AUTH).
func (ss *session) login(w who, addr netip.Addr, service, user, result string) {
	ss.record(w, Attempt{Service: service, User: user, Result: result, Login: true}, addr)
}

func (ss *session) record(w who, a Attempt, addr netip.Addr) {
	if w.role == "" {
		return
	}
	a.Time, a.IP, a.Role, a.Scenario = ss.t, addr.String(), w.role, w.scenario
	ss.s.record(a)
}

func port(r *rand.Rand) string { return itoa(between(r, 1024, 65535)) }

// --- sshd -------------------------------------------------------------------

// sshUser says how sshd sees a user name.
type sshUser struct {
	name  string
	valid bool // the account exists
}

// sshFail writes one connection that tries n passwords (at most 6,
// OpenSSH's MaxAuthTries) for u and fails every one; each is an attempt.
// It returns when the connection ended.
func (s *sim) sshFail(r *rand.Rand, w who, t time.Time, addr netip.Addr, u sshUser, n int) time.Time {
	ss := s.session(authLog, "sshd["+itoa(s.newPID(r))+"]", t)
	ip, p := addr.String(), port(r)
	ipPort := ip + " port " + p
	named, who := u.name, "authenticating user "+u.name
	pamUser := "  user=" + u.name
	if !u.valid {
		named, who, pamUser = "invalid user "+u.name, "invalid user "+u.name, ""
		ss.log("Invalid user " + u.name + " from " + ipPort)
	}
	for i := range n {
		ss.wait(r, 300*time.Millisecond, 1500*time.Millisecond) // the client sends a password
		if i == 0 {
			if !u.valid {
				ss.log("pam_unix(sshd:auth): check pass; user unknown")
			}
			ss.log("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=" + ip + pamUser)
		}
		ss.wait(r, 1800*time.Millisecond, 2600*time.Millisecond) // pam_unix's delay on failure
		ss.login(w, addr, "sshd", u.name, "failure")
		ss.log("Failed password for " + named + " from " + ipPort + " ssh2")
	}
	pamMore := func() {
		if n > 1 {
			ss.log("PAM " + itoa(n-1) + " more authentication failure" + plural(n-1) + "; logname= uid=0 euid=0 tty=ssh ruser= rhost=" + ip + pamUser)
		}
	}
	if n >= 6 {
		ss.log("error: maximum authentication attempts exceeded for " + named + " from " + ipPort + " ssh2 [preauth]")
		ss.log("Disconnecting " + who + " " + ipPort + ": Too many authentication failures [preauth]")
		pamMore()
		ss.log("PAM service(sshd) ignoring max retries; " + itoa(n) + " > 3")
		return ss.t
	}
	ss.wait(r, 100*time.Millisecond, 900*time.Millisecond)
	switch r.IntN(3) {
	case 0:
		ss.log("Connection closed by " + who + " " + ipPort + " [preauth]")
	default:
		ss.log("Received disconnect from " + ipPort + ":11: Bye Bye [preauth]")
		ss.log("Disconnected from " + who + " " + ipPort + " [preauth]")
	}
	pamMore()
	return ss.t
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// sshLogin writes a user's interactive login: typos failed passwords, then
// the right one, a session and its end.
func (s *sim) sshLogin(r *rand.Rand, w who, t time.Time, addr netip.Addr, user string, uid, typos int) {
	ss := s.session(authLog, "sshd["+itoa(s.newPID(r))+"]", t)
	ip, p := addr.String(), port(r)
	ipPort := ip + " port " + p
	for i := range typos {
		ss.wait(r, 2*time.Second, 9*time.Second) // typing
		if i == 0 {
			ss.log("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=" + ip + "  user=" + user)
		}
		ss.wait(r, 1800*time.Millisecond, 2600*time.Millisecond)
		ss.login(w, addr, "sshd", user, "failure")
		ss.log("Failed password for " + user + " from " + ipPort + " ssh2")
	}
	ss.wait(r, 2*time.Second, 8*time.Second)
	ss.login(w, addr, "sshd", user, "success")
	ss.log("Accepted password for " + user + " from " + ipPort + " ssh2")
	ss.log("pam_unix(sshd:session): session opened for user " + user + "(uid=" + itoa(uid) + ") by (uid=0)")
	sess := itoa(between(r, 10, 900))
	ss.logAs("systemd-logind[431]", "New session "+sess+" of user "+user+".")
	ss.wait(r, 2*time.Minute, 40*time.Minute)
	ss.log("Received disconnect from " + ipPort + ":11: disconnected by user")
	ss.log("Disconnected from user " + user + " " + ipPort)
	ss.log("pam_unix(sshd:session): session closed for user " + user)
	ss.logAs("systemd-logind[431]", "Session "+sess+" logged out. Waiting for processes to exit.")
	ss.logAs("systemd-logind[431]", "Removed session "+sess+".")
}

// --- postfix ----------------------------------------------------------------

// smtpService is a smtpd instance of master.cf.
type smtpService struct {
	name     string // syslog name
	starttls bool   // AUTH only after STARTTLS (submission)
	wrapper  bool   // TLS from the start (smtps)
}

var (
	smtp       = smtpService{name: "postfix/smtpd"}
	submission = smtpService{name: "postfix/submission/smtpd", starttls: true}
	smtps      = smtpService{name: "postfix/smtps/smtpd", wrapper: true}
)

const tlsV13 = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256"

// mailUser says how Dovecot's passwd-file sees a login name.
type mailUser struct {
	name  string
	valid bool
}

// dovecotAuthFail is the auth process's line for a failed password check
// (auth_verbose = yes). sess is the login session, "" for Postfix SASL
// requests, which carry none.
func dovecotAuthFail(u mailUser, addr netip.Addr, sess string) string {
	id := u.name + "," + addr.String()
	if sess != "" {
		id += ",<" + sess + ">"
	}
	if u.valid {
		return "auth: passwd-file(" + id + "): Password mismatch"
	}
	return "auth: passwd-file(" + id + "): unknown user"
}

// smtpAuthFail writes one SMTP connection that tries n SASL logins and
// fails every one; each is an attempt.
func (s *sim) smtpAuthFail(r *rand.Rand, w who, t time.Time, addr netip.Addr, svc smtpService, u mailUser, n int) time.Time {
	ss := s.session(mailLog, svc.name+"["+itoa(s.newPID(r))+"]", t)
	client := "unknown[" + addr.String() + "]"
	ss.log("connect from " + client)
	ehlo, ok := "ehlo=1", 1
	if svc.starttls {
		ss.wait(r, 300*time.Millisecond, 1200*time.Millisecond)
		ss.log("Anonymous TLS connection established from " + client + ": " + tlsV13)
		ehlo, ok = "ehlo=2 starttls=1", 3
	} else if svc.wrapper {
		ss.log("Anonymous TLS connection established from " + client + ": " + tlsV13)
	}
	mech := pick(r, "LOGIN", "LOGIN", "PLAIN")
	for range n {
		ss.wait(r, 400*time.Millisecond, 2*time.Second)
		ss.login(w, addr, "postfix", u.name, "failure")
		ss.logAs("dovecot", dovecotAuthFail(u, addr, ""))
		ss.wait(r, 2*time.Second, 2200*time.Millisecond) // Dovecot's auth_failure_delay
		if mech == "LOGIN" {
			ss.log("warning: " + client + ": SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=" + u.name)
		} else {
			ss.log("warning: " + client + ": SASL PLAIN authentication failed: (reason unavailable), sasl_username=" + u.name)
		}
	}
	auth := " auth=0/" + itoa(n)
	ss.wait(r, 100*time.Millisecond, 1500*time.Millisecond)
	if r.IntN(2) == 0 {
		ss.log("lost connection after AUTH from " + client)
		ss.log("disconnect from " + client + " " + ehlo + auth + " commands=" + itoa(ok) + "/" + itoa(ok+n))
	} else {
		ss.log("disconnect from " + client + " " + ehlo + auth + " quit=1 commands=" + itoa(ok+1) + "/" + itoa(ok+n+1))
	}
	return ss.t
}

// smtpSubmit writes a mail client sending one message after typos failed
// logins (a password typed by hand; usually none).
func (s *sim) smtpSubmit(r *rand.Rand, w who, t time.Time, addr netip.Addr, user string, typos int) {
	svc := pick(r, submission, submission, smtps)
	ss := s.session(mailLog, svc.name+"["+itoa(s.newPID(r))+"]", t)
	client := "unknown[" + addr.String() + "]"
	ss.log("connect from " + client)
	ss.wait(r, 100*time.Millisecond, 600*time.Millisecond)
	ss.log("Anonymous TLS connection established from " + client + ": " + tlsV13)
	ehlo, ok := "ehlo=1", 1
	if svc.starttls {
		ehlo, ok = "ehlo=2 starttls=1", 3
	}
	for range typos {
		ss.wait(r, 3*time.Second, 15*time.Second)
		ss.login(w, addr, "postfix", user, "failure")
		ss.logAs("dovecot", dovecotAuthFail(mailUser{user, true}, addr, ""))
		ss.wait(r, 2*time.Second, 2200*time.Millisecond)
		ss.log("warning: " + client + ": SASL PLAIN authentication failed: (reason unavailable), sasl_username=" + user)
	}
	ss.wait(r, 200*time.Millisecond, 5*time.Second)
	ss.login(w, addr, "postfix", user, "success")
	qid := queueID(r)
	ss.log(qid + ": client=" + client + ", sasl_method=PLAIN, sasl_username=" + user)
	ss.logAs("postfix/cleanup["+itoa(s.newPID(r))+"]", qid+": message-id=<"+strings.ToLower(sessionID(r))+"@example.org>")
	ss.logAs("postfix/qmgr[1187]", qid+": from=<"+user+">, size="+itoa(between(r, 900, 90000))+", nrcpt=1 (queue active)")
	ss.wait(r, 100*time.Millisecond, 800*time.Millisecond)
	auth := ""
	if typos > 0 {
		auth = " auth=1/" + itoa(typos+1)
	} else {
		auth = " auth=1"
	}
	ss.log("disconnect from " + client + " " + ehlo + auth + " mail=1 rcpt=1 data=1 quit=1 commands=" + itoa(ok+5+typos) + "/" + itoa(ok+5+typos))
	ss.wait(r, 300*time.Millisecond, 2*time.Second)
	ss.logAs("postfix/smtp["+itoa(s.newPID(r))+"]", qid+": to=<"+pick(r, "orders", "jane.doe", "m.rossi", "friend")+"@"+pick(r, "gmail.com", "outlook.com", "posteo.de")+">, relay="+pick(r, "gmail-smtp-in.l.google.com[142.250.102.26]:25", "mx.posteo.de[185.67.36.1]:25")+", delay=1.2, delays=0.05/0.01/0.45/0.7, dsn=2.0.0, status=sent (250 2.0.0 OK)")
	ss.logAs("postfix/qmgr[1187]", qid+": removed")
}

// queueID is a Postfix queue id (Debian leaves enable_long_queue_ids off:
// short hexadecimal ids).
func queueID(r *rand.Rand) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 10)
	for i := range b {
		b[i] = hex[r.IntN(16)]
	}
	return string(b)
}

// rcptProbe is one recipient an enumerating client tries.
type rcptProbe struct {
	rcpt   string
	exists bool
}

// smtpEnum writes one port-25 connection that tries recipients; each is an
// attempt. The first existing recipient makes smtpd open a queue file and
// log "QUEUEID: client=..."; the session ends before DATA, so no message is
// ever queued.
func (s *sim) smtpEnum(r *rand.Rand, w who, t time.Time, addr netip.Addr, probes []rcptProbe) time.Time {
	ss := s.session(mailLog, smtp.name+"["+itoa(s.newPID(r))+"]", t)
	client := "unknown[" + addr.String() + "]"
	ss.log("connect from " + client)
	helo := pick(r, "User", "WIN-CLJ1B0GQ6JP", "ylmf-pc", "localhost", "mail.example.com", "["+addr.String()+"]")
	from := pick(r, "", "info@"+pick(r, "mail.ru", "qq.com", "gmail.com", "example.net"))
	accepted := 0
	qid := "NOQUEUE"
	for _, p := range probes {
		ss.wait(r, 200*time.Millisecond, 1500*time.Millisecond)
		if p.exists {
			accepted++
			ss.attempt(w, addr, "postfix", p.rcpt, "accepted")
			if qid == "NOQUEUE" {
				// smtpd opens the queue file at the first valid recipient.
				qid = queueID(r)
				ss.log(qid + ": client=" + client)
			}
			continue
		}
		ss.attempt(w, addr, "postfix", p.rcpt, "failure")
		ss.log(qid + ": reject: RCPT from " + client + ": 550 5.1.1 <" + p.rcpt + ">: Recipient address rejected: User unknown in virtual mailbox table; from=<" + from + "> to=<" + p.rcpt + "> proto=ESMTP helo=<" + helo + ">")
	}
	n := len(probes)
	rcpt := " rcpt=" + itoa(accepted) + "/" + itoa(n)
	if accepted == n {
		rcpt = " rcpt=" + itoa(n)
	}
	ss.wait(r, 100*time.Millisecond, 1*time.Second)
	if r.IntN(3) == 0 {
		ss.log("lost connection after RCPT from " + client)
		ss.log("disconnect from " + client + " ehlo=1 mail=1" + rcpt + " commands=" + itoa(2+accepted) + "/" + itoa(2+n))
	} else {
		ss.log("disconnect from " + client + " ehlo=1 mail=1" + rcpt + " rset=1 quit=1 commands=" + itoa(4+accepted) + "/" + itoa(4+n))
	}
	return ss.t
}

// --- dovecot ----------------------------------------------------------------

// imapFail writes one IMAP (or POP3) connection that tries n logins and
// fails every one; each is an attempt.
func (s *sim) imapFail(r *rand.Rand, w who, t time.Time, addr netip.Addr, u mailUser, n int) time.Time {
	ss := s.session(mailLog, "dovecot", t)
	proto := pick(r, "imap", "imap", "imap", "pop3")
	sess := sessionID(r)
	tls := r.IntN(3) != 0
	start := t
	for range n {
		ss.wait(r, 500*time.Millisecond, 2500*time.Millisecond)
		ss.login(w, addr, "dovecot", u.name, "failure")
		ss.log(dovecotAuthFail(u, addr, sess))
		ss.wait(r, 2*time.Second, 2200*time.Millisecond) // auth_failure_delay
	}
	ss.wait(r, 100*time.Millisecond, 1500*time.Millisecond)
	secs := itoa(int(ss.t.Sub(start).Seconds()))
	reason := "(auth failed, " + itoa(n) + " attempts in " + secs + " secs)"
	var head string
	switch r.IntN(4) {
	case 0:
		head = "Disconnected " + reason
	case 1:
		head = "Aborted login " + reason
	default:
		head = "Disconnected: Connection closed " + reason
	}
	ss.log(proto + "-login: " + head + ": user=<" + u.name + ">, method=" + pick(r, "PLAIN", "PLAIN", "LOGIN") + ", " + loginTail(addr, tls, sess))
	return ss.t
}

func loginTail(addr netip.Addr, tls bool, sess string) string {
	t := "rip=" + addr.String() + ", lip=" + lip(addr)
	if tls {
		t += ", TLS"
	}
	return t + ", session=<" + sess + ">"
}

// imapLogin writes a mail client's login after typos failed attempts: in
// the same connection (the client asks again) or, after the first
// connection gave up, in a new one. It returns when the last line was
// written.
func (s *sim) imapLogin(r *rand.Rand, w who, t time.Time, addr netip.Addr, user string, typos []mailUser) time.Time {
	ss := s.session(mailLog, "dovecot", t)
	sess := sessionID(r)
	start := ss.t
	for _, u := range typos {
		ss.wait(r, 3*time.Second, 20*time.Second) // a person typing
		ss.login(w, addr, "dovecot", u.name, "failure")
		ss.log(dovecotAuthFail(u, addr, sess))
		ss.wait(r, 2*time.Second, 2200*time.Millisecond)
	}
	if len(typos) > 0 && r.IntN(2) == 0 {
		// The client dropped the connection; the next try is a new one.
		ss.log("imap-login: Disconnected (auth failed, " + itoa(len(typos)) + " attempts in " + itoa(int(ss.t.Sub(start).Seconds())) + " secs): user=<" + typos[len(typos)-1].name + ">, method=PLAIN, " + loginTail(addr, true, sess))
		sess = sessionID(r)
	}
	ss.wait(r, 200*time.Millisecond, 4*time.Second)
	mpid := itoa(s.newPID(r))
	ss.login(w, addr, "dovecot", user, "success")
	ss.log("imap-login: Login: user=<" + user + ">, method=PLAIN, rip=" + addr.String() + ", lip=" + lip(addr) + ", mpid=" + mpid + ", TLS, session=<" + sess + ">")
	ss.wait(r, 5*time.Second, 25*time.Minute)
	ss.log("imap(" + user + ")<" + mpid + "><" + sess + ">: Logged out in=" + itoa(between(r, 50, 9000)) + " out=" + itoa(between(r, 500, 900000)) + " deleted=0 expunged=0 trashed=0 hdr_count=" + itoa(between(r, 0, 40)) + " hdr_bytes=" + itoa(between(r, 0, 40000)) + " body_count=" + itoa(between(r, 0, 5)) + " body_bytes=" + itoa(between(r, 0, 200000)))
	return ss.t
}
