package main

import (
	"strconv"
	"strings"
)

// Postfix 3.7 (Debian 12) with postscreen on port 25, submission (587) and
// smtps (465) from master.cf, Dovecot SASL, delivery to Dovecot over LMTP.

var mailUsers = []string{"alice", "bob", "info", "postmaster", "carol", "sales"}

// mailGuesses are local parts bots try, existing or not.
var mailGuesses = []string{
	"info", "admin", "test", "contact", "sales", "support", "office", "webmaster", "postmaster",
	"marketing", "hr", "billing", "noreply", "no-reply", "mail", "user", "alice", "bob", "root",
	"abuse", "service", "accounts", "finance", "jobs", "newsletter", "scanner", "printer", "backup",
	"demo", "guest", "help", "hello", "team", "dev", "manager", "admin1", "test1", "web", "shop",
}

var spamHelos = []string{"WIN-CLJ1B0GQ6JP", "User", "ylmf-pc", "localhost", "mail.example.com", "[127.0.0.1]", "email.com", "WIN-9QL4SDRB93L", "ADMIN", "desktop-1", "msnbc.com"}

var postfixScenarios = []scenario{
	{30, postfixSASLFailure},
	{12, postfixUnknownRecipient},
	{4, postfixRelayDenied},
	{8, postfixBlocklisted},
	{5, postfixPostscreenDrop},
	{14, postfixInboundMail},
	{6, postfixOutboundMail},
	{10, postfixScanner},
	{1, postfixAnvil},
}

type smtpSession struct {
	g   *generator
	tag string // "postfix/submission/smtpd[123]: "
	c   client
	ls  []line
}

func (g *generator) smtpd(service string, c client) *smtpSession {
	name := "postfix/smtpd"
	if service != "smtp" {
		name = "postfix/" + service + "/smtpd"
	}
	return &smtpSession{g: g, tag: name + "[" + strconv.Itoa(g.pooledPID(name)) + "]: ", c: c}
}

func (s *smtpSession) log(msg string) { s.ls = append(s.ls, line{catPostfix, s.tag + msg}) }
func (s *smtpSession) add(l line)     { s.ls = append(s.ls, l) }

func (s *smtpSession) connect() {
	if s.c.name == "" && s.g.r.IntN(4) == 0 {
		// A PTR that points to a name without a matching A record.
		s.log("warning: hostname " + s.g.rdnsLike(s.c) + " does not resolve to address " + s.c.ip() + ": Name or service not known")
	}
	s.log("connect from " + s.c.postfix())
}

func (s *smtpSession) tls() {
	cipher := s.g.pick("TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256",
		"TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
		"TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256")
	s.log("Anonymous TLS connection established from " + s.c.postfix() + ": " + cipher)
}

// rdnsLike is a made-up PTR name for c.
func (g *generator) rdnsLike(c client) string {
	if c.addr.Is6() {
		return "host-" + g.lowerHex(8) + ".ipv6.example-isp.net"
	}
	b := c.addr.As4()
	return strconv.Itoa(int(b[0])) + "-" + strconv.Itoa(int(b[1])) + "-" + strconv.Itoa(int(b[2])) + "-" + strconv.Itoa(int(b[3])) + ".static.example-isp.net"
}

// dovecotSASL is the line Dovecot's auth process logs for a failed SASL login
// from Postfix (auth_verbose=yes).
func (g *generator) dovecotSASL(user string, c client) line {
	if strings.Contains(user, "@") && isMailUser(user) {
		return line{catDovecot, "dovecot: auth: passwd-file(" + user + "," + c.ip() + "): Password mismatch"}
	}
	return line{catDovecot, "dovecot: auth: passwd-file(" + user + "," + c.ip() + "): unknown user"}
}

func isMailUser(addr string) bool {
	local, _, _ := strings.Cut(addr, "@")
	for _, u := range mailUsers {
		if u == local {
			return true
		}
	}
	return false
}

// postfixSASLFailure: a bot guesses passwords over SMTP AUTH, mostly on
// submission, and gives up or is cut off.
func postfixSASLFailure(g *generator) []line {
	service := g.pick("submission", "submission", "submission", "smtps", "smtp")
	s := g.smtpd(service, g.attacker())
	s.connect()
	starttls := service == "submission" && g.r.IntN(4) != 0
	if starttls || service == "smtps" {
		s.tls()
	}
	n := 1
	if g.r.IntN(4) == 0 {
		n = 2 + g.r.IntN(2)
	}
	user := g.pickList(mailGuesses)
	if g.r.IntN(3) != 0 {
		user += "@" + domain
	}
	for range n {
		s.add(g.dovecotSASL(user, s.c))
		switch g.r.IntN(10) {
		case 0, 1, 2:
			s.log("warning: " + s.c.postfix() + ": SASL LOGIN authentication failed: UGFzc3dvcmQ6")
		case 3, 4, 5, 6:
			s.log("warning: " + s.c.postfix() + ": SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=" + user)
		case 7:
			s.log("warning: " + s.c.postfix() + ": SASL PLAIN authentication failed: (reason unavailable), sasl_username=" + user)
		default:
			s.log("warning: " + s.c.postfix() + ": SASL PLAIN authentication failed: ")
		}
	}
	ehlo := "ehlo=1 "
	if starttls {
		ehlo = "ehlo=2 starttls=1 "
	}
	ok := 1 // commands that succeeded: EHLO (and STARTTLS and the second EHLO)
	if starttls {
		ok = 3
	}
	auth := "auth=0/" + strconv.Itoa(n) + " "
	if g.r.IntN(2) == 0 {
		s.log("lost connection after AUTH from " + s.c.postfix())
		s.log("disconnect from " + s.c.postfix() + " " + ehlo + auth + "commands=" + strconv.Itoa(ok) + "/" + strconv.Itoa(ok+n))
	} else {
		s.log("disconnect from " + s.c.postfix() + " " + ehlo + auth + "quit=1 commands=" + strconv.Itoa(ok+1) + "/" + strconv.Itoa(ok+n+1))
	}
	return s.ls
}

// postscreenPass adds postscreen's lines for a client it lets through to smtpd.
func (g *generator) postscreen(c client, port string) (tag string, ls []line) {
	tag = "postfix/postscreen[" + strconv.Itoa(g.fixedPID("postscreen")) + "]: "
	ls = append(ls, line{catPostfix, tag + "CONNECT from " + bracketPort(c.addr, port) + " to [" + serverFor(c.addr).String() + "]:25"})
	return tag, ls
}

// smtpIn is a port 25 client, through postscreen two times out of three.
func (g *generator) smtpIn(c client) *smtpSession {
	var pre []line
	if g.r.IntN(3) != 0 {
		port := g.port()
		tag, ls := g.postscreen(c, port)
		pre = append(ls, line{catPostfix, tag + g.pick("PASS OLD ", "PASS OLD ", "PASS NEW ") + bracketPort(c.addr, port)})
	}
	s := g.smtpd("smtp", c)
	s.ls = pre
	s.connect()
	return s
}

func postfixUnknownRecipient(g *generator) []line {
	s := g.smtpIn(g.attacker())
	helo := g.pickList(spamHelos)
	from := g.pick("", g.pickList(mailGuesses)+"@"+g.pick("gmail.com", "yahoo.com", "example.net", "qq.com", "mail.ru", domain))
	n := 1 + g.r.IntN(3)
	for range n {
		rcpt := g.pickList(mailGuesses) + strconv.Itoa(g.r.IntN(3)) + "@" + domain
		s.log("NOQUEUE: reject: RCPT from " + s.c.postfix() + ": 550 5.1.1 <" + rcpt + ">: Recipient address rejected: User unknown in local recipient table; from=<" + from + "> to=<" + rcpt + "> proto=ESMTP helo=<" + helo + ">")
	}
	ns := strconv.Itoa(n)
	if g.r.IntN(3) == 0 {
		s.log("lost connection after RCPT from " + s.c.postfix())
		s.log("disconnect from " + s.c.postfix() + " ehlo=1 mail=1 rcpt=0/" + ns + " commands=2/" + strconv.Itoa(2+n))
	} else {
		s.log("disconnect from " + s.c.postfix() + " ehlo=1 mail=1 rcpt=0/" + ns + " data=0/1 rset=1 quit=1 commands=4/" + strconv.Itoa(5+n))
	}
	return s.ls
}

func postfixRelayDenied(g *generator) []line {
	s := g.smtpIn(g.attacker())
	helo := g.pickList(spamHelos)
	from := g.pickList(mailGuesses) + "@" + domain
	rcpt := g.pick("spameri@tiscali.it", "lobmarket@yandex.ru", "test@gmail.com", "info@qq.com", "kali1234@outlook.com")
	s.log("NOQUEUE: reject: RCPT from " + s.c.postfix() + ": 454 4.7.1 <" + rcpt + ">: Relay access denied; from=<" + from + "> to=<" + rcpt + "> proto=ESMTP helo=<" + helo + ">")
	s.log("disconnect from " + s.c.postfix() + " ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4")
	return s.ls
}

// postfixBlocklisted: postscreen finds the client on a DNS blocklist and
// rejects whatever it sends.
func postfixBlocklisted(g *generator) []line {
	c := g.attacker()
	port := g.port()
	tag, ls := g.postscreen(c, port)
	dnsblog := "postfix/dnsblog[" + strconv.Itoa(g.pooledPID("postfix/dnsblog")) + "]: "
	rank := 0
	for _, bl := range []string{"zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org"} {
		if g.r.IntN(2) == 0 || rank == 0 && bl == "b.barracudacentral.org" {
			ls = append(ls, line{catPostfix, dnsblog + "addr " + c.ip() + " listed by domain " + bl + " as 127.0.0." + g.pick("2", "3", "4", "10", "11")})
			rank += 2 + g.r.IntN(2)
		}
	}
	if g.r.IntN(3) == 0 {
		ls = append(ls, line{catPostfix, tag + "PREGREET " + g.itoa(11, 20) + " after 0." + g.itoa(10, 99) + " from " + bracketPort(c.addr, port) + ": EHLO " + g.pickList(spamHelos) + "\\r\\n"})
	}
	ls = append(ls, line{catPostfix, tag + "DNSBL rank " + strconv.Itoa(rank) + " for " + bracketPort(c.addr, port)})
	if g.r.IntN(2) == 0 {
		rcpt := g.pickList(mailGuesses) + "@" + domain
		ls = append(ls, line{catPostfix, tag + "NOQUEUE: reject: RCPT from " + bracketPort(c.addr, port) + ": 550 5.7.1 Service unavailable; client [" + c.ip() + "] blocked using zen.spamhaus.org; from=<" + g.pickList(mailGuesses) + "@" + g.pick("gmail.com", "example.net", "mail.ru") + ">, to=<" + rcpt + ">, proto=ESMTP, helo=<" + g.pickList(spamHelos) + ">"})
	}
	ls = append(ls, line{catPostfix, tag + "DISCONNECT " + bracketPort(c.addr, port)})
	return ls
}

// postfixPostscreenDrop: bots that talk too early or hang up.
func postfixPostscreenDrop(g *generator) []line {
	c := g.attacker()
	port := g.port()
	tag, ls := g.postscreen(c, port)
	switch g.r.IntN(4) {
	case 0:
		ls = append(ls, line{catPostfix, tag + "PREGREET 14 after 0." + g.itoa(10, 99) + " from " + bracketPort(c.addr, port) + ": EHLO ylmf-pc\\r\\n"})
		ls = append(ls, line{catPostfix, tag + "DISCONNECT " + bracketPort(c.addr, port)})
	case 1:
		ls = append(ls, line{catPostfix, tag + "HANGUP after " + g.itoa(0, 30) + "." + g.itoa(1, 9) + " from " + bracketPort(c.addr, port) + " in tests after SMTP handshake"})
		ls = append(ls, line{catPostfix, tag + "DISCONNECT " + bracketPort(c.addr, port)})
	case 2:
		ls = append(ls, line{catPostfix, tag + "COMMAND PIPELINING from " + bracketPort(c.addr, port) + " after EHLO: QUIT\\r\\n"})
		ls = append(ls, line{catPostfix, tag + "DISCONNECT " + bracketPort(c.addr, port)})
	default:
		ls = append(ls, line{catPostfix, tag + "PASS NEW " + bracketPort(c.addr, port)})
		ls = append(ls, line{catPostfix, tag + "DISCONNECT " + bracketPort(c.addr, port)})
	}
	return ls
}

// delivery is what the queue manager and the LMTP client log for one message
// to a local mailbox, with Dovecot's LMTP lines.
func (g *generator) deliverLocal(qid string) []line {
	var ls []line
	user := g.pickList(mailUsers) + "@" + domain
	lmtpPID := strconv.Itoa(g.newPID())
	sess := g.dovecotSession()
	msgid := "<" + g.lowerHex(16) + "@" + g.pick("mail.gmail.com", "eu-west-1.amazonses.com", "example.net") + ">"
	ls = append(ls,
		line{catDovecot, "dovecot: lmtp(" + lmtpPID + "): Connect from local"},
		line{catDovecot, "dovecot: lmtp(" + user + ")<" + lmtpPID + "><" + sess + ">: msgid=" + msgid + ": saved mail to INBOX"},
		line{catDovecot, "dovecot: lmtp(" + lmtpPID + "): Disconnect from local: Client has quit the connection (state=READY)"},
		line{catPostfix, "postfix/lmtp[" + strconv.Itoa(g.pooledPID("postfix/lmtp")) + "]: " + qid + ": to=<" + user + ">, relay=mail." + domain + "[private/dovecot-lmtp], delay=0." + g.itoa(10, 99) + ", delays=0.0" + g.itoa(1, 9) + "/0.01/0.01/0.0" + g.itoa(1, 9) + ", dsn=2.0.0, status=sent (250 2.0.0 <" + user + "> " + sess + " Saved)"},
		line{catPostfix, "postfix/qmgr[" + strconv.Itoa(g.fixedPID("qmgr")) + "]: " + qid + ": removed"},
	)
	return ls
}

func postfixInboundMail(g *generator) []line {
	s := g.smtpIn(g.relay())
	s.tls()
	qid := g.queueID()
	s.log(qid + ": client=" + s.c.postfix())
	s.add(line{catPostfix, "postfix/cleanup[" + strconv.Itoa(g.pooledPID("postfix/cleanup")) + "]: " + qid + ": message-id=<" + g.lowerHex(20) + "@" + s.c.name + ">"})
	s.add(line{catPostfix, "postfix/qmgr[" + strconv.Itoa(g.fixedPID("qmgr")) + "]: " + qid + ": from=<" + g.pick("noreply", "notifications", "bounce-"+g.lowerHex(8), "newsletter", "dave") + "@" + g.pick("github.com", "gmail.com", "mailchimp.com", "example.net", "lists.debian.org") + ">, size=" + g.itoa(2000, 90000) + ", nrcpt=1 (queue active)"})
	s.log("disconnect from " + s.c.postfix() + " ehlo=2 starttls=1 mail=1 rcpt=1 " + g.pick("data=1", "bdat=1") + " quit=1 commands=7")
	s.ls = append(s.ls, g.deliverLocal(qid)...)
	return s.ls
}

func postfixOutboundMail(g *generator) []line {
	s := g.smtpd("submission", g.legitClient())
	s.connect()
	s.tls()
	qid := g.queueID()
	user := g.pick("alice", "bob", "carol") + "@" + domain
	s.log(qid + ": client=" + s.c.postfix() + ", sasl_method=" + g.pick("PLAIN", "LOGIN") + ", sasl_username=" + user)
	s.add(line{catPostfix, "postfix/cleanup[" + strconv.Itoa(g.pooledPID("postfix/cleanup")) + "]: " + qid + ": message-id=<" + g.lowerHex(12) + "." + g.lowerHex(8) + "@" + domain + ">"})
	qmgr := "postfix/qmgr[" + strconv.Itoa(g.fixedPID("qmgr")) + "]: "
	s.add(line{catPostfix, qmgr + qid + ": from=<" + user + ">, size=" + g.itoa(900, 250000) + ", nrcpt=1 (queue active)"})
	s.log("disconnect from " + s.c.postfix() + " ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8")
	smtp := "postfix/smtp[" + strconv.Itoa(g.pooledPID("postfix/smtp")) + "]: "
	relay := g.pick("gmail-smtp-in.l.google.com[142.250.102.26]:25", "gmail-smtp-in.l.google.com[2a00:1450:4013:c04::1a]:25",
		"example-net.mail.protection.outlook.com[52.101.68.4]:25", "mx00.mail.com[74.208.5.20]:25", "mx.posteo.de[185.67.36.1]:25")
	s.add(line{catPostfix, smtp + "Trusted TLS connection established to " + relay + ": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (P-256) server-digest SHA256"})
	status := "dsn=2.0.0, status=sent (250 2.0.0 OK  17414" + g.itoa(10000, 99999) + " " + g.lowerHex(12) + "." + g.itoa(100, 999) + " - gsmtp)"
	if g.r.IntN(20) == 0 {
		status = "dsn=4.2.1, status=deferred (host " + strings.TrimSuffix(relay, ":25") + " said: 450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. (in reply to RCPT TO command))"
	}
	s.add(line{catPostfix, smtp + qid + ": to=<" + g.pick("friend", "jane.doe", "orders", "m.rossi") + "@" + g.pick("gmail.com", "outlook.com", "mail.com", "posteo.de") + ">, relay=" + relay + ", delay=" + g.itoa(0, 3) + "." + g.itoa(1, 9) + ", delays=0.0" + g.itoa(1, 9) + "/0.01/0." + g.itoa(10, 60) + "/0." + g.itoa(10, 90) + ", " + status})
	s.add(line{catPostfix, qmgr + qid + ": removed"})
	return s.ls
}

// postfixScanner: port scanners and HTTP bots on the SMTP ports.
func postfixScanner(g *generator) []line {
	s := g.smtpd(g.pick("smtp", "smtp", "submission", "smtps"), g.attacker())
	s.connect()
	c := s.c.postfix()
	switch g.r.IntN(8) {
	case 0, 1:
		s.log("lost connection after CONNECT from " + c)
		s.log("disconnect from " + c + " commands=0/0")
	case 2:
		s.log("lost connection after EHLO from " + c)
		s.log("disconnect from " + c + " ehlo=1 commands=1")
	case 3:
		s.log("timeout after CONNECT from " + c)
		s.log("disconnect from " + c + " commands=0/0")
	case 4:
		s.log("warning: non-SMTP command from " + c + ": GET / HTTP/1.1")
		s.log("disconnect from " + c + " unknown=0/1 commands=0/1")
	case 5:
		s.log("improper command pipelining after CONNECT from " + c + ": EHLO " + g.pickList(spamHelos) + "\\r\\n")
		s.log("disconnect from " + c + " ehlo=1 quit=1 commands=2")
	case 6:
		s.log("SSL_accept error from " + c + ": lost connection")
		s.log("lost connection after CONNECT from " + c)
		s.log("disconnect from " + c + " commands=0/0")
	default:
		s.log("disconnect from " + c + " ehlo=1 quit=1 commands=2")
	}
	return s.ls
}

func postfixAnvil(g *generator) []line {
	tag := "postfix/anvil[" + strconv.Itoa(g.pooledPID("postfix/anvil")) + "]: "
	at := " at " + g.now.Format("Jan _2 15:04:05")
	c := g.attacker()
	return []line{
		{catPostfix, tag + "statistics: max connection rate " + g.itoa(1, 12) + "/60s for (" + g.pick("smtp", "submission", "smtps") + ":" + c.ip() + ")" + at},
		{catPostfix, tag + "statistics: max connection count " + g.itoa(1, 4) + " for (smtp:" + c.ip() + ")" + at},
		{catPostfix, tag + "statistics: max cache size " + g.itoa(2, 20) + at},
	}
}
