package main

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// domain is the company's mail domain.
const domain = "example.org"

// directory is the company's accounts.
type directory struct {
	users   []string        // staff local parts
	mailbox map[string]bool // full addresses that exist (staff and role accounts)
	public  []string        // addresses on the web site: role accounts and named staff
	// Where the staff work from: twenty in the office, twelve at home,
	// eight on their phones.
	office, home, mobile []string
}

var staffNames = []string{
	"anna.keller", "ben.roth", "clara.vogt", "david.brandt", "eva.lorenz", "finn.hahn", "greta.sommer", "hugo.frank",
	"ida.berger", "jonas.pohl", "karla.wolf", "leon.kraus", "mia.schulz", "noah.peters", "olga.simon", "paul.jung",
	"rosa.haas", "sven.otto", "tina.graf", "uwe.lang", "vera.busch", "willi.ernst", "xenia.stein", "yannik.kuhn",
	"zoe.arnold", "adam.beck", "bea.ludwig", "carl.moser", "dora.seidel", "emil.hartmann", "frieda.engel", "georg.horn",
	"hanna.witt", "igor.marx", "jana.roth", "kurt.pfeiffer", "lisa.winkler", "malte.vogel", "nora.lehmann", "oskar.weiss",
}

var roleAccounts = []string{"info", "sales", "office", "support", "billing"}

func newDirectory(r *rand.Rand) *directory {
	d := &directory{users: staffNames, mailbox: map[string]bool{}}
	for _, u := range staffNames {
		d.mailbox[u+"@"+domain] = true
	}
	for _, u := range roleAccounts[:4] {
		d.public = append(d.public, u+"@"+domain)
	}
	for _, u := range roleAccounts {
		d.mailbox[u+"@"+domain] = true
	}
	// The web site's team page names eight of the staff.
	for _, i := range r.Perm(len(staffNames))[:8] {
		d.public = append(d.public, staffNames[i]+"@"+domain)
	}
	staff := slices.Clone(staffNames)
	r.Shuffle(len(staff), func(i, j int) { staff[i], staff[j] = staff[j], staff[i] })
	d.office, d.home, d.mobile = staff[:20], staff[20:32], staff[32:40]
	return d
}

func (d *directory) exists(addr string) bool { return d.mailbox[addr] }

func (d *directory) isPublic(addr string) bool { return slices.Contains(d.public, addr) }

// typos returns what a person gets wrong before logging in as addr: n
// wrong passwords, now and then a login name without the domain instead.
func typos(r *rand.Rand, addr string, n int) []mailUser {
	out := make([]mailUser, n)
	for i := range out {
		if r.IntN(5) == 0 {
			local, _, _ := cutAt(addr)
			out[i] = mailUser{local, false}
		} else {
			out[i] = mailUser{addr, true}
		}
	}
	return out
}

func cutAt(addr string) (string, string, bool) {
	for i := range len(addr) {
		if addr[i] == '@' {
			return addr[:i], addr[i+1:], true
		}
	}
	return addr, "", false
}

// typoCount is how many times a person typing a password gets it wrong
// first, with probability p of getting it wrong at all.
func typoCount(r *rand.Rand, p float64) int {
	if r.Float64() >= p {
		return 0
	}
	return pick(r, 1, 1, 1, 2, 2, 3)
}

// poll writes a mail client's sessions from t to stop: a login (after
// typos), then the client's reconnects every 10 to 30 minutes, and now
// and then a message sent.
func (s *sim) poll(r *rand.Rand, w who, t, stop time.Time, addr netip.Addr, user string, first []mailUser, sendP float64) {
	for i := 0; t.Before(stop) && s.inLegit(t); i++ {
		var ty []mailUser
		if i == 0 {
			ty = first
		}
		end := s.imapLogin(r, w, t, addr, user, ty)
		if r.Float64() < sendP {
			s.smtpSubmit(r, w, end.Add(dur(r, time.Minute, 8*time.Minute)), addr, user, 0)
		}
		t = t.Add(dur(r, 10*time.Minute, 30*time.Minute))
	}
}

// The company's users, one scenario of the ground truth per group.

// legitNAT: twenty staff in the office behind one NAT address, from about
// 8:00 to 17:00. A person retypes a password at arrival, now and then
// wrongly; two of them also read the shared role mailboxes (which the web
// site publishes, so the botnets try them too); the office admin uses SSH
// from there.
func legitNAT(s *sim, r *rand.Rand, d *directory, _ float64) {
	w := who{"legit", "legit-nat"}
	for _, day := range s.days() {
		for i, u := range d.office {
			addr := u + "@" + domain
			arrive := clock(day, 8, 0).Add(dur(r, -30*time.Minute, 75*time.Minute))
			leave := clock(day, 16, 30).Add(dur(r, 0, 90*time.Minute))
			arrive = maxTime(arrive, s.warm)
			s.poll(r, w, arrive, leave, officeNAT, addr, typos(r, addr, typoCount(r, 0.25)), 0.3)
			if i < 2 {
				role := roleAccounts[i] + "@" + domain
				s.poll(r, w, arrive.Add(dur(r, time.Minute, 10*time.Minute)), leave, officeNAT, role, typos(r, role, typoCount(r, 0.2)), 0.2)
			}
			if i == 0 {
				for t := arrive.Add(dur(r, 10*time.Minute, time.Hour)); t.Before(leave) && s.inLegit(t); t = t.Add(dur(r, time.Hour, 4*time.Hour)) {
					s.sshLogin(r, w, t, officeNAT, localPart(u), 1000, typoCount(r, 0.3))
				}
			}
		}
	}
}

// legitHome: twelve staff working from home, each from a fixed address,
// in two or three stretches of the day; three of them are admins who also
// log in over SSH and mistype now and then.
func legitHome(s *sim, r *rand.Rand, d *directory, _ float64) {
	w := who{"legit", "legit-home"}
	prefixes := distinct24s(r, residentialV4, len(d.home))
	ips := make([]netip.Addr, len(d.home))
	for i := range ips {
		ips[i] = prefixes[i].host(1 + r.IntN(254))
	}
	for _, day := range s.days() {
		for i, u := range d.home {
			addr := u + "@" + domain
			for range between(r, 2, 3) {
				t := clock(day, 6, 0).Add(dur(r, 0, 11*time.Hour))
				if s.inLegit(t) {
					s.poll(r, w, t, t.Add(dur(r, 20*time.Minute, 2*time.Hour)), ips[i], addr, typos(r, addr, typoCount(r, 0.2)), 0.3)
				}
			}
			if i < 3 {
				for range between(r, 1, 3) {
					if t := clock(day, 6, 0).Add(dur(r, 0, 11*time.Hour)); s.inLegit(t) {
						s.sshLogin(r, w, t, ips[i], localPart(u), 1100+i, typoCount(r, 0.3))
					}
				}
			}
		}
	}
}

// legitMobile: eight phones on a mobile carrier's IPv6, polling all day.
// Privacy addresses change every few hours and the phone moves to another
// /64 now and then; a changed address is a new login, and now and then the
// user had to type the password again.
func legitMobile(s *sim, r *rand.Rand, d *directory, _ float64) {
	w := who{"legit", "legit-mobile"}
	for _, u := range d.mobile {
		addr := u + "@" + domain
		net := random64(r, mobileV6)
		for t := s.warm.Add(dur(r, 0, 30*time.Minute)); s.inLegit(t); {
			if r.IntN(4) == 0 {
				net = random64(r, mobileV6)
			}
			stop := t.Add(dur(r, 90*time.Minute, 4*time.Hour))
			s.poll(r, w, t, stop, v6In(r, net), addr, typos(r, addr, typoCount(r, 0.1)), 0.2)
			t = stop
		}
	}
}

// legitTravel: three staff log in once from a hotel, typing the password
// by hand on a new device and getting it wrong first. One of them is named
// on the web site, so the botnets try that address too.
func legitTravel(s *sim, r *rand.Rand, d *directory, _ float64) {
	w := who{"legit", "legit-travel"}
	avoid := avoid16()
	var travellers []string
	for _, u := range slices.Concat(d.home, d.mobile, d.office) {
		if d.isPublic(u+"@"+domain) && len(travellers) == 0 {
			travellers = append(travellers, u)
		}
	}
	for _, u := range d.home {
		if len(travellers) < 3 && !d.isPublic(u+"@"+domain) {
			travellers = append(travellers, u)
		}
	}
	for _, u := range travellers {
		addr := u + "@" + domain
		hotel := randomPublicV4(r, avoid)
		t := s.at(7, 30).Add(dur(r, 0, 8*time.Hour+30*time.Minute))
		wrong := []mailUser{{addr, true}}
		if r.IntN(2) == 0 {
			wrong = append(wrong, mailUser{addr, true})
		}
		s.poll(r, w, t, t.Add(dur(r, time.Hour, 3*time.Hour)), hotel, addr, wrong, 0.5)
	}
}

// at returns h:m on the day the attacks start.
func (s *sim) at(h, m int) time.Time { return clock(s.start.Truncate(24*time.Hour), h, m) }

// clock returns h:m on day (a midnight).
func clock(day time.Time, h, m int) time.Time {
	return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func localPart(u string) string {
	l, _, _ := cutAt(u)
	for i := range len(l) {
		if l[i] == '.' {
			return l[:i]
		}
	}
	return l
}
