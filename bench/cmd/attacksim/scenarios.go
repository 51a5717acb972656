package main

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"time"
)

// The attacks. Each is what botnets do against mail and SSH servers; none
// reacts to the defence (the logs are written once and replayed against
// each defence), but each is shaped the way a rotating botnet shapes its
// traffic after meeting per-address limits: few attempts per address.

// Address space. The groups of clients live in disjoint /16s: attack
// infrastructure that packs thousands of sources into a few dozen /24s or
// /64s is rented hosting or compromised ranges, not where the server's
// users connect from. Scattered bots (naive, slow) and travellers' hotel
// connections are drawn from all public space outside these /16s.
var (
	// rotationV4 hosts the IPv4 rotation botnet.
	rotationV4 = [][2]int{{45, 134}, {45, 155}, {91, 92}, {185, 220}, {193, 32}, {194, 26}, {141, 98}, {5, 188}, {103, 145}, {80, 94}, {92, 63}, {176, 111}}
	// enumV4 hosts the recipient enumerators.
	enumV4 = [][2]int{{193, 42}, {194, 180}, {212, 70}, {156, 96}, {31, 184}, {77, 90}, {85, 209}, {109, 205}}
	// residentialV4 is where legitimate users' home connections are.
	residentialV4 = [][2]int{{84, 128}, {84, 129}, {87, 122}, {91, 64}, {2, 206}, {79, 194}, {95, 90}, {178, 24}, {188, 100}, {46, 114}}
	// officeNAT is the one address an office of users shares.
	officeNAT = v4(62, 153, 77, 14)
	// rotationV6 is the provider the IPv6 rotation rents /64s from.
	rotationV6 = netip.MustParsePrefix("2a0e:97c0::/32")
	// mobileV6 is the mobile carrier of legitimate users' phones.
	mobileV6 = netip.MustParsePrefix("2a02:3032::/32")
)

// avoid16 lists the /16s of the named groups, for scattered addresses.
func avoid16() map[[2]int]bool {
	m := map[[2]int]bool{}
	for _, set := range [][][2]int{rotationV4, enumV4, residentialV4, rotation16V4, {outlookPool16}} {
		for _, s := range set {
			m[s] = true
		}
	}
	for _, set := range [][]prefix24{gmailPool, webmailEgress, {neighbourhood}} {
		for _, p := range set {
			m[[2]int{p[0], p[1]}] = true
		}
	}
	b := officeNAT.As4()
	m[[2]int{int(b[0]), int(b[1])}] = true
	return m
}

// random64 returns a random /64 inside p (a /32).
func random64(r *rand.Rand, p netip.Prefix) netip.Prefix {
	b := p.Addr().As16()
	for i := 4; i < 8; i++ {
		b[i] = byte(r.IntN(256))
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

// Names attackers try.

// sshTargets: root dominates; the rest are names bots try everywhere. Only
// root and deploy exist here (and the admins' own accounts, not guessed).
var sshTargets = []sshUser{
	{"root", true}, {"root", true}, {"root", true}, {"root", true}, {"root", true},
	{"admin", false}, {"ubuntu", false}, {"test", false}, {"user", false}, {"oracle", false},
	{"postgres", false}, {"git", false}, {"guest", false}, {"pi", false}, {"ftpuser", false},
	{"support", false}, {"deploy", true}, {"ansible", false}, {"jenkins", false}, {"debian", false},
	{"hadoop", false}, {"mysql", false}, {"test1", false}, {"user1", false}, {"centos", false},
}

// mailTargets returns the login names a mail botnet tries: addresses
// scraped from the company's web site (the role accounts and the staff it
// names), guessed role addresses, and bare local parts.
func mailTargets(d *directory) []mailUser {
	var ts []mailUser
	for _, u := range d.public {
		ts = append(ts, mailUser{u, true}, mailUser{u, true}, mailUser{u, true})
	}
	for _, g := range []string{"admin", "test", "webmaster", "postmaster", "contact", "marketing", "hr", "user", "mail", "noreply", "hello", "team", "abuse", "jobs", "newsletter"} {
		a := g + "@" + domain
		ts = append(ts, mailUser{a, d.exists(a)})
	}
	for _, g := range []string{"info", "admin", "test", "sales", "office", "user", "guest", "scanner", "backup", "support"} {
		ts = append(ts, mailUser{g, false})
	}
	return ts
}

// rcptGuesses are local parts enumerators try; directory decides which exist.
var rcptGuesses = []string{
	"info", "admin", "sales", "office", "support", "contact", "hr", "jobs", "billing", "accounts",
	"marketing", "press", "service", "team", "webmaster", "noreply", "mail", "post", "kontakt", "buchhaltung",
	"anna", "ben", "chris", "daniel", "emma", "felix", "hannah", "jan", "julia", "laura",
	"lena", "lukas", "maria", "max", "michael", "nina", "paul", "sarah", "thomas", "tim",
	"a.mueller", "s.schmidt", "j.meyer", "k.wagner", "m.becker", "t.hoffmann", "l.fischer", "d.weber",
}

func scaled(n int, scale float64) int { return max(1, int(math.Round(float64(n)*scale))) }

// mailService picks how a mail bot attacks: SMTP AUTH on submission or
// smtps, or IMAP/POP3 logins.
func mailAttack(s *sim, r *rand.Rand, w who, t time.Time, a netip.Addr, u mailUser, n int, imap bool) time.Time {
	if imap {
		return s.imapFail(r, w, t, a, u, n)
	}
	return s.smtpAuthFail(r, w, t, a, pick(r, submission, submission, smtps), u, n)
}

// naive: a few addresses brute-force as fast as the daemons answer, for
// half an hour or so each: Hydra-style SSH (up to MaxAuthTries per
// connection), SMTP AUTH and IMAP.
func naive(s *sim, r *rand.Rand, d *directory, scale float64) {
	w := who{"attacker", "naive"}
	avoid := avoid16()
	targets := mailTargets(d)
	for i := range scaled(8, scale) {
		a := randomPublicV4(r, avoid)
		t := s.start.Add(30*time.Minute + dur(r, 0, 2*time.Hour))
		stop := t.Add(dur(r, 20*time.Minute, time.Hour))
		kind := i % 8
		u := sshTargets[r.IntN(5)] // root
		for t.Before(stop) && s.in(t) {
			switch {
			case kind < 5:
				if r.IntN(4) == 0 {
					u = sshTargets[r.IntN(len(sshTargets))]
				}
				t = s.sshFail(r, w, t, a, u, between(r, 3, 6))
			default:
				t = mailAttack(s, r, w, t, a, targets[r.IntN(len(targets))], between(r, 1, 3), kind == 7)
			}
			t = t.Add(dur(r, 500*time.Millisecond, 8*time.Second))
		}
	}
}

// rotation: thousands of IPv4 addresses in a few dozen /24s, each trying
// once or twice, over three hours: the botnet the issue describes.
func rotation(s *sim, r *rand.Rand, d *directory, scale float64) {
	w := who{"attacker", "rotation"}
	ps := distinct24s(r, rotationV4, 40)
	addrs := hostsIn(r, ps, scaled(3000, scale))
	targets := mailTargets(d)
	start, length := s.start.Add(time.Hour), 3*time.Hour
	for _, a := range addrs {
		t := start.Add(dur(r, 0, length))
		n := 1
		if r.IntN(10) < 4 {
			n = 2
		}
		svc := r.IntN(100)
		together := r.IntN(2) == 0 // two tries in one connection, or two connections
		for k := 0; k < n; {
			tries := 1
			if together {
				tries = n - k
			}
			switch {
			case svc < 15:
				t = s.sshFail(r, w, t, a, sshTargets[r.IntN(len(sshTargets))], tries)
			default:
				t = mailAttack(s, r, w, t, a, targets[r.IntN(len(targets))], tries, svc >= 65)
			}
			k += tries
			t = t.Add(dur(r, 10*time.Second, 90*time.Second))
		}
	}
}

// ipv6: a rented server with a /64 (three of them) takes a fresh source
// address for every attempt, for two hours.
func ipv6(s *sim, r *rand.Rand, d *directory, scale float64) {
	w := who{"attacker", "ipv6"}
	nets := []netip.Prefix{random64(r, rotationV6), random64(r, rotationV6), random64(r, rotationV6)}
	targets := mailTargets(d)
	start, length := s.start.Add(4*time.Hour), 2*time.Hour
	for range scaled(2000, scale) {
		a := v6In(r, nets[r.IntN(len(nets))])
		t := start.Add(dur(r, 0, length))
		mailAttack(s, r, w, t, a, targets[r.IntN(len(targets))], 1, r.IntN(100) >= 55)
	}
}

// enum: recipient enumeration on port 25 from thousands of addresses in a
// few dozen /24s, one or two connections each, one to three RCPT TO each.
func enum(s *sim, r *rand.Rand, d *directory, scale float64) {
	w := who{"attacker", "enum"}
	ps := distinct24s(r, enumV4, 30)
	addrs := hostsIn(r, ps, scaled(1500, scale))
	start, length := s.start.Add(6*time.Hour), 2*time.Hour
	for _, a := range addrs {
		t := start.Add(dur(r, 0, length))
		conns := 1
		if r.IntN(10) < 3 {
			conns = 2
		}
		for range conns {
			probes := make([]rcptProbe, between(r, 1, 3))
			for i := range probes {
				rc := rcptGuesses[r.IntN(len(rcptGuesses))] + "@" + domain
				probes[i] = rcptProbe{rc, d.exists(rc)}
			}
			t = s.smtpEnum(r, w, t, a, probes).Add(dur(r, 10*time.Second, 2*time.Minute))
		}
	}
}

// slow: low and slow. Hundreds of addresses scattered over the whole
// Internet, each trying once every 20 to 40 minutes (never two failures
// inside a 10-minute findtime) for the whole day, against the addresses
// the company publishes and against root.
func slow(s *sim, r *rand.Rand, d *directory, scale float64) {
	w := who{"attacker", "slow"}
	avoid := avoid16()
	targets := mailTargets(d)
	for range scaled(300, scale) {
		a := randomPublicV4(r, avoid)
		svc := r.IntN(100)
		for t := s.start.Add(dur(r, 0, 40*time.Minute)); s.in(t); t = t.Add(dur(r, 20*time.Minute, 40*time.Minute)) {
			switch {
			case svc < 10:
				s.sshFail(r, w, t, a, sshTargets[r.IntN(5)], 1)
			default:
				mailAttack(s, r, w, t, a, targets[r.IntN(len(targets))], 1, svc >= 55)
			}
		}
	}
}
