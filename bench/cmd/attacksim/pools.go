package main

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Scenarios of shared address space: networks that hold both the
// server's friends and its attackers, where a defence that bans whole
// networks must still let the friends through.
//
//   - legit-relays: big mail providers deliver inbound mail from pools of
//     relays, now and then to a stale or mistyped recipient;
//   - relay-spray: an account compromised at one of those providers sprays
//     passwords from two of its relays (which delivered mail before);
//   - neighbour and legit-neighbour: infected hosts of a residential /24
//     attack while two customers of the same /24 read their mail;
//   - rotation16: a botnet spread over ~50 /24s of six /16s;
//   - legit-webmail: staff reading mail through a webmail provider whose
//     sessions leave from a dozen egress addresses in two /24s.

var (
	// gmailPool: one provider's relays in two /24s, named like
	// mail-wr1-f41.google.com.
	gmailPool = []prefix24{{209, 85, 220}, {209, 85, 221}}
	// outlookPool16: another provider's relays, spread over many /24s of
	// one /16.
	outlookPool16 = [2]int{40, 107}
	// neighbourhood is the residential /24 where customers and infected
	// hosts sit side by side.
	neighbourhood = prefix24{93, 184, 77}
	// rotation16V4 hosts the widely spread botnet.
	rotation16V4 = [][2]int{{103, 151}, {45, 95}, {194, 165}, {91, 240}, {5, 181}, {212, 192}}
	// webmailEgress: a webmail provider's outgoing addresses.
	webmailEgress = []prefix24{{212, 227, 126}, {212, 227, 127}}
)

// relayPool is a provider's outgoing mail servers.
type relayPool struct {
	addrs   []netip.Addr
	name    func(netip.Addr) string // the relay's verified host name
	domains []string                // sender domains
	perHour float64                 // messages to this server per hour
}

// pools returns the providers' relays. Their addresses are the same for
// every seed (a provider's network does not depend on the attack), so the
// scenarios that share them agree.
func pools() []relayPool {
	r := rng(0, "relay pools")
	gmail := hostsIn(r, gmailPool, 60)
	var outlook []netip.Addr
	for _, p := range distinct24s(r, [][2]int{outlookPool16}, 40) {
		outlook = append(outlook, hostsIn(r, []prefix24{p}, 4)...)
	}
	return []relayPool{
		{gmail, func(a netip.Addr) string {
			b := a.As4()
			return "mail-" + []string{"wr1", "wm1", "ej1", "lf1"}[b[3]%4] + "-f" + itoa(int(b[3])) + ".google.com"
		}, []string{"gmail.com", "googlemail.com"}, 30},
		{outlook, func(a netip.Addr) string {
			b := a.As4()
			return "mail-" + []string{"db8eur05", "am6eur02", "vi1eur04"}[b[3]%3] + "on" + itoa(int(b[2])) + itoa(int(b[3])) + ".outbound.protection.outlook.com"
		}, []string{"outlook.com", "hotmail.com", "customer.example.com"}, 20},
	}
}

// neighbourHomes are the customers' addresses in the neighbourhood.
var neighbourHomes = []netip.Addr{neighbourhood.host(23), neighbourhood.host(141)}

// staleRecipients are addresses that no longer exist here (people who
// left, typos of real ones) which outside senders still write to.
var staleRecipients = []string{"old.staff", "j.meier", "anna.kelller", "info2", "webmaster", "sales.team", "ben.rot", "noreply"}

// legitRelays: the providers' relays deliver mail all day, warm-up
// included, one message every few minutes from a random relay of the
// pool; one in twenty-five carries a stale recipient.
func legitRelays(s *sim, r *rand.Rand, d *directory, _ float64) {
	w := who{"legit", "legit-relays"}
	for i, p := range pools() {
		addrs := p.addrs
		if i == 0 {
			addrs = addrs[sprayingRelays:]
		}
		mean := time.Duration(float64(time.Hour) / p.perHour)
		for t := s.warm.Add(dur(r, 0, mean)); s.inLegit(t); t = t.Add(dur(r, mean/4, 2*mean)) {
			a := addrs[r.IntN(len(addrs))]
			s.smtpDeliver(r, w, t, a, p.name(a), p.domains, d, r.IntN(25) == 0)
		}
	}
}

// sprayingRelays is how many relays of the first pool relay-spray takes
// over; legit-relays leaves them out.
const sprayingRelays = 2

// relaySpray: two relays of the first provider, which delivered mail in
// the warm-up (so the server knows them as delivering relays), spray SMTP
// AUTH passwords for an hour: an account compromised on the provider's
// side. Their deliveries are in the logs but not in the ground truth: the
// address is caught for what it does now, and the pool's other relays must
// not suffer for it.
func relaySpray(s *sim, r *rand.Rand, d *directory, _ float64) {
	w := who{"attacker", "relay-spray"}
	p := pools()[0]
	targets := mailTargets(d)
	for i := range sprayingRelays {
		a := p.addrs[i]
		for t := s.warm.Add(time.Hour + dur(r, 0, time.Hour)); t.Before(s.warm.Add(12 * time.Hour)); t = t.Add(dur(r, 20*time.Minute, 2*time.Hour)) {
			s.smtpDeliver(r, who{}, t, a, p.name(a), p.domains, d, false)
		}
		start := s.start.Add(2*time.Hour + dur(r, 0, time.Hour))
		for t := start; t.Before(start.Add(time.Hour)) && s.in(t); t = t.Add(dur(r, 20*time.Second, 3*time.Minute)) {
			t = s.smtpAuthFail(r, w, t, a, submission, targets[r.IntN(len(targets))], between(r, 1, 3))
		}
	}
}

// neighbour: six infected hosts of a residential /24 try passwords on
// SMTP AUTH and IMAP, a few times an hour each, over six hours.
func neighbour(s *sim, r *rand.Rand, d *directory, scale float64) {
	w := who{"attacker", "neighbour"}
	targets := mailTargets(d)
	for _, a := range hostsIn(r, []prefix24{neighbourhood}, scaled(6, scale)+len(neighbourHomes)) {
		if slices.Contains(neighbourHomes, a) {
			continue
		}
		for t := s.start.Add(dur(r, 0, time.Hour)); t.Before(s.start.Add(7*time.Hour)) && s.in(t); t = t.Add(dur(r, 10*time.Minute, 40*time.Minute)) {
			mailAttack(s, r, w, t, a, targets[r.IntN(len(targets))], between(r, 1, 2), r.IntN(2) == 0)
		}
	}
}

// legitNeighbour: two staff whose second home is in the neighbourhood
// read their mail there all day, mistyping now and then.
func legitNeighbour(s *sim, r *rand.Rand, d *directory, _ float64) {
	w := who{"legit", "legit-neighbour"}
	for i, a := range neighbourHomes {
		user := d.home[3+i] + "@" + domain
		for t := s.warm.Add(dur(r, 0, time.Hour)); s.inLegit(t); {
			stop := t.Add(dur(r, time.Hour, 5*time.Hour))
			s.poll(r, w, t, stop, a, user, typos(r, user, typoCount(r, 0.2)), 0.2)
			t = stop.Add(dur(r, 30*time.Minute, 3*time.Hour))
		}
	}
}

// rotation16: 2500 addresses in about fifty /24s of six /16s, one or two
// attempts each, over three hours: each /24 holds few enough addresses
// that it only fills up late.
func rotation16(s *sim, r *rand.Rand, d *directory, scale float64) {
	w := who{"attacker", "rotation16"}
	ps := distinct24s(r, rotation16V4, 50)
	addrs := hostsIn(r, ps, scaled(2500, scale))
	targets := mailTargets(d)
	start, length := s.start.Add(8*time.Hour), 3*time.Hour
	for _, a := range addrs {
		t := start.Add(dur(r, 0, length))
		n := 1 + r.IntN(2)
		for range n {
			if svc := r.IntN(100); svc < 20 {
				t = s.sshFail(r, w, t, a, sshTargets[r.IntN(len(sshTargets))], 1)
			} else {
				t = mailAttack(s, r, w, t, a, targets[r.IntN(len(targets))], 1, svc >= 60)
			}
			t = t.Add(dur(r, 10*time.Second, 90*time.Second))
		}
	}
}

// legitWebmail: six staff read their mail through a webmail provider; each
// session of theirs reaches the server from one of its twelve egress
// addresses, a different one almost every time, and a password typed by
// hand now and then goes wrong first.
func legitWebmail(s *sim, r *rand.Rand, d *directory, _ float64) {
	w := who{"legit", "legit-webmail"}
	egress := hostsIn(r, webmailEgress, 12)
	for _, u := range d.office[10:16] {
		user := u + "@" + domain
		for t := s.warm.Add(dur(r, 0, 2*time.Hour)); s.inLegit(t); t = t.Add(dur(r, 20*time.Minute, 3*time.Hour)) {
			s.imapLogin(r, w, t, egress[r.IntN(len(egress))], user, typos(r, user, typoCount(r, 0.15)))
		}
	}
}

// smtpDeliver writes one message delivered by a provider's relay on port
// 25: one to three recipients of the company, and with stale one of them
// (or the only one) a recipient that does not exist. Each recipient is an
// attempt. A message with no valid recipient is refused at DATA and never
// queued.
func (s *sim) smtpDeliver(r *rand.Rand, w who, t time.Time, addr netip.Addr, name string, domains []string, d *directory, stale bool) {
	ss := s.session(mailLog, smtp.name+"["+itoa(s.newPID(r))+"]", t)
	client := name + "[" + addr.String() + "]"
	ss.log("connect from " + client)
	ss.wait(r, 50*time.Millisecond, 300*time.Millisecond)
	ss.log("Trusted TLS connection established from " + client + ": " + tlsV13)
	var rcpts []rcptProbe
	for range between(r, 1, 3) {
		u := d.users[r.IntN(len(d.users))]
		rcpts = append(rcpts, rcptProbe{u + "@" + domain, true})
	}
	if stale {
		bad := rcptProbe{staleRecipients[r.IntN(len(staleRecipients))] + "@" + domain, false}
		if r.IntN(3) == 0 {
			rcpts = []rcptProbe{bad}
		} else {
			rcpts[r.IntN(len(rcpts))] = bad
		}
	}
	from := strings.ToLower(pick(r, "news", "billing", "j.smith", "maria.rossi", "noreply", "orders")) + "@" + pick(r, domains...)
	qid, ok := "NOQUEUE", 0
	for _, p := range rcpts {
		ss.wait(r, 20*time.Millisecond, 200*time.Millisecond)
		if !p.exists {
			ss.attempt(w, addr, "postfix", p.rcpt, "failure")
			ss.log(qid + ": reject: RCPT from " + client + ": 550 5.1.1 <" + p.rcpt + ">: Recipient address rejected: User unknown in virtual mailbox table; from=<" + from + "> to=<" + p.rcpt + "> proto=ESMTP helo=<" + name + ">")
			continue
		}
		ok++
		ss.attempt(w, addr, "postfix", p.rcpt, "accepted")
		if qid == "NOQUEUE" {
			qid = queueID(r)
			ss.log(qid + ": client=" + client)
		}
	}
	n := len(rcpts)
	counts := " rcpt=" + itoa(ok)
	if ok < n {
		counts += "/" + itoa(n)
	}
	ss.wait(r, 50*time.Millisecond, 400*time.Millisecond)
	if ok == 0 {
		ss.log("disconnect from " + client + " ehlo=2 starttls=1 mail=1" + counts + " data=0/1 quit=1 commands=5/7")
		return
	}
	ss.logAs("postfix/cleanup["+itoa(s.newPID(r))+"]", qid+": message-id=<"+strings.ToLower(sessionID(r))+"@"+pick(r, domains...)+">")
	ss.logAs("postfix/qmgr[1187]", qid+": from=<"+from+">, size="+itoa(between(r, 2000, 300000))+", nrcpt="+itoa(ok)+" (queue active)")
	ss.wait(r, 50*time.Millisecond, 300*time.Millisecond)
	cmds := 6 + ok
	ss.log("disconnect from " + client + " ehlo=2 starttls=1 mail=1" + counts + " data=1 quit=1 commands=" + itoa(cmds) + "/" + itoa(cmds+n-ok))
}
