package main

import (
	"encoding/base64"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"
)

// category is the share of the log a line counts toward.
type category uint8

const (
	catSSH category = iota
	catPostfix
	catDovecot
	catOther
	numCategories
)

// shares are the target fractions of lines per category.
var shares = [numCategories]float64{0.40, 0.25, 0.20, 0.15}

// line is one log line without its stamp and host: "sshd[123]: Failed ...".
type line struct {
	cat  category
	text string
}

// session is a run of lines that belong together (one SSH connection, one
// SMTP session), emitted in order but interleaved with other sessions.
type session struct {
	lines   []line
	next    int
	release func() // returns a reusable process id to its pool when the session ends
}

// scenario builds one session's lines.
type scenario struct {
	weight int
	build  func(g *generator) []line
}

const (
	hostname   = "mail"
	domain     = "example.org"
	maxActive  = 16   // sessions in flight at once
	pStart     = 0.3  // chance per line of opening another session
	meanGapSec = 0.22 // mean time between lines: 1M lines span about 2.5 days
	pidMax     = 4194304
)

// Server addresses, as Dovecot's lip= and postscreen's "to" name them.
var (
	serverV4 = netip.MustParseAddr("198.51.100.10")
	serverV6 = netip.MustParseAddr("2001:db8:1f0c::10")
)

type generator struct {
	r     *rand.Rand
	now   time.Time
	frac  float64 // sub-second part of the clock, carried between lines
	gap   float64 // mean seconds between lines
	pid   int
	pools map[string]*pidPool

	attackers []client
	heavy     *rand.Zipf
	fresh     float64 // chance that an attack comes from the next address never seen before
	nextFresh int
	legit     []client
	relays    []client // mail servers that deliver to us

	scheduled [numCategories]int
	total     int
	scenarios [numCategories][]scenario
	weights   [numCategories]int

	sessionNo      int    // systemd-logind session numbers
	pendingRelease func() // set by pooledPID while a scenario builds
}

// client is a remote address and the reverse DNS name Postfix would show.
type client struct {
	addr netip.Addr
	name string // "" when reverse DNS failed: Postfix writes "unknown"
}

func (c client) ip() string { return c.addr.String() }

// postfix returns Postfix's "name[addr]" form.
func (c client) postfix() string {
	name := c.name
	if name == "" {
		name = "unknown"
	}
	return name + "[" + c.addr.String() + "]"
}

func newGenerator(seed uint64, start time.Time, heavyAttack bool) *generator {
	g := &generator{
		r:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:   start,
		pools: map[string]*pidPool{},
		gap:   meanGapSec,
	}
	g.pid = 1_500_000 + g.r.IntN(500_000)
	if heavyAttack {
		// The attack-heavy log: most attacks from an address never seen
		// before (a botnet rotating through hundreds of thousands), a
		// third of the IPv4 ones four to a /24.
		g.attackers = g.attackerPool(560_000, 140_000)
		g.packV4(len(g.attackers)/3, 4)
		g.fresh = 0.9
	} else {
		g.attackers = g.attackerPool(50_000, 12_000)
	}
	g.heavy = rand.NewZipf(g.r, 1.15, 4, 1999)
	g.legit = g.legitPool(300, 80)
	g.relays = g.relayPool()
	g.scenarios = [numCategories][]scenario{sshScenarios, postfixScenarios, dovecotScenarios, otherScenarios}
	for c, ss := range g.scenarios {
		for _, s := range ss {
			g.weights[c] += s.weight
		}
	}
	return g
}

// write emits n lines to w.
func (g *generator) write(w io.Writer, n int) error {
	var active []*session
	buf := make([]byte, 0, 1024)
	for written := 0; written < n; written++ {
		for len(active) == 0 || (len(active) < maxActive && g.r.Float64() < pStart) {
			active = append(active, g.start())
		}
		i := g.r.IntN(len(active))
		s := active[i]
		g.tick()
		buf = g.now.AppendFormat(buf[:0], time.Stamp)
		buf = append(buf, ' ')
		buf = append(buf, hostname...)
		buf = append(buf, ' ')
		buf = append(buf, s.lines[s.next].text...)
		buf = append(buf, '\n')
		if _, err := w.Write(buf); err != nil {
			return err
		}
		s.next++
		if s.next == len(s.lines) {
			if s.release != nil {
				s.release()
			}
			active[i] = active[len(active)-1]
			active = active[:len(active)-1]
		}
	}
	return nil
}

// tick advances the clock by an exponentially distributed gap.
func (g *generator) tick() {
	g.frac += g.r.ExpFloat64() * g.gap
	if g.frac >= 1 {
		whole := math.Floor(g.frac)
		g.now = g.now.Add(time.Duration(whole) * time.Second)
		g.frac -= whole
	}
}

// start opens a session of the category furthest below its share, picked
// at random with weights that favour the largest deficit.
func (g *generator) start() *session {
	var w [numCategories]float64
	sum := 0.0
	for c := range numCategories {
		w[c] = shares[c]*20 + max(0, shares[c]*float64(g.total+1)-float64(g.scheduled[c]))
		sum += w[c]
	}
	x := g.r.Float64() * sum
	cat := catOther
	for c := range numCategories {
		if x < w[c] {
			cat = c
			break
		}
		x -= w[c]
	}
	s := &session{}
	s.lines, s.release = g.build(cat)
	for _, l := range s.lines {
		g.scheduled[l.cat]++
	}
	g.total += len(s.lines)
	return s
}

func (g *generator) build(cat category) ([]line, func()) {
	x := g.r.IntN(g.weights[cat])
	for _, s := range g.scenarios[cat] {
		if x < s.weight {
			g.pendingRelease = nil
			ls := s.build(g)
			rel := g.pendingRelease
			g.pendingRelease = nil
			return ls, rel
		}
		x -= s.weight
	}
	panic("unreachable")
}

// Process ids. Most daemons fork per connection and get a fresh pid; Postfix
// reuses its smtpd processes for later clients, one client at a time.

func (g *generator) newPID() int {
	g.pid += 1 + g.r.IntN(40)
	if g.pid >= pidMax {
		g.pid = 300 + g.r.IntN(1000)
	}
	return g.pid
}

type pidPool struct{ idle []int }

// pooledPID takes an idle process of service, or starts one, and arranges for
// it to go back to the pool when the session ends.
func (g *generator) pooledPID(service string) int {
	p := g.pools[service]
	if p == nil {
		p = &pidPool{}
		g.pools[service] = p
	}
	var pid int
	if n := len(p.idle); n > 0 && g.r.Float64() < 0.85 {
		j := g.r.IntN(n)
		pid = p.idle[j]
		p.idle[j] = p.idle[n-1]
		p.idle = p.idle[:n-1]
	} else {
		pid = g.newPID()
	}
	prev := g.pendingRelease
	g.pendingRelease = func() {
		if prev != nil {
			prev()
		}
		if len(p.idle) < 12 {
			p.idle = append(p.idle, pid)
		}
	}
	return pid
}

// fixedPID is a long-running daemon's pid (qmgr, postscreen, named, ...).
func (g *generator) fixedPID(service string) int {
	p := g.pools["fixed:"+service]
	if p == nil {
		p = &pidPool{idle: []int{300 + g.r.IntN(2000)}}
		g.pools["fixed:"+service] = p
	}
	return p.idle[0]
}

// Addresses.

// attackerPool returns v4+v6 public addresses in random order. A quarter of
// the IPv6 ones share a few hundred /64s, as address-rotating bots do.
func (g *generator) attackerPool(v4, v6 int) []client {
	seen := map[netip.Addr]bool{}
	var out []client
	add := func(a netip.Addr) {
		if seen[a] {
			return
		}
		seen[a] = true
		out = append(out, client{addr: a, name: g.rdns(a)})
	}
	for len(out) < v4 {
		add(g.publicV4())
	}
	prefixes := make([][8]byte, 300)
	for i := range prefixes {
		prefixes[i] = g.v6Prefix()
	}
	for len(out) < v4+v6 {
		if g.r.IntN(4) == 0 {
			add(g.v6In(prefixes[g.r.IntN(len(prefixes))]))
		} else {
			add(g.v6In(g.v6Prefix()))
		}
	}
	g.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func (g *generator) legitPool(v4, v6 int) []client {
	var out []client
	for range v4 {
		a := g.publicV4()
		out = append(out, client{addr: a, name: g.rdns(a)})
	}
	for range v6 {
		a := g.v6In(g.v6Prefix())
		out = append(out, client{addr: a, name: g.rdns(a)})
	}
	return out
}

func (g *generator) relayPool() []client {
	var out []client
	for range 60 {
		a := netip.AddrFrom4([4]byte{209, 85, byte(128 + g.r.IntN(96)), byte(1 + g.r.IntN(254))})
		out = append(out, client{addr: a, name: "mail-" + g.pick("wm1", "wr1", "ej1", "lj1", "ed1", "pj1", "qt1", "yb1") + "-f" + strconv.Itoa(40+g.r.IntN(160)) + ".google.com"})
	}
	for range 30 {
		a := netip.AddrFrom4([4]byte{40, byte(92 + g.r.IntN(16)), byte(g.r.IntN(256)), byte(1 + g.r.IntN(254))})
		out = append(out, client{addr: a, name: "mail-" + g.pick("db8eur05", "am0eur02", "vi1eur04", "he1eur01", "dub0eur03") + "on20" + strconv.Itoa(60+g.r.IntN(40)) + ".outbound.protection.outlook.com"})
	}
	for range 20 {
		a := netip.AddrFrom16([16]byte{0x2a, 0x00, 0x14, 0x50, 0x40, 0x00 + byte(g.r.IntN(32)), 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, byte(1 + g.r.IntN(254))})
		out = append(out, client{addr: a, name: "mail-" + g.pick("wm1", "ej1", "ed1") + "-x" + strconv.Itoa(g.r.IntN(999)) + ".google.com"})
	}
	for range 40 {
		a := g.publicV4()
		out = append(out, client{addr: a, name: g.pick("mx", "mail", "smtp", "out", "mta") + strconv.Itoa(g.r.IntN(30)) + "." + g.pick("mailgun.net", "sendgrid.net", "amazonses.com", "mcsv.net", "posteo.de", "gmx.net", "web.de", "protonmail.ch")})
	}
	return out
}

// packV4 moves n of the IPv4 attackers into shared /24s, per to a /24:
// each group takes the /24 of its first member.
func (g *generator) packV4(n, per int) {
	var v4 []int
	for i, c := range g.attackers {
		if c.addr.Is4() {
			v4 = append(v4, i)
		}
	}
	n = min(n, len(v4))
	for i := 0; i+per <= n; i += per {
		net := g.attackers[v4[i]].addr.As4()
		for j := 1; j < per; j++ {
			b := net
			b[3] = byte(1 + g.r.IntN(254))
			a := netip.AddrFrom4(b)
			g.attackers[v4[i+j]] = client{addr: a, name: g.rdns(a)}
		}
	}
}

// publicV4 returns a random address outside the reserved ranges.
func (g *generator) publicV4() netip.Addr {
	for {
		v := g.r.Uint32()
		a, b := byte(v>>24), byte(v>>16)
		switch {
		case a == 0, a == 10, a == 127, a >= 224,
			a == 100 && b&0xc0 == 64,
			a == 169 && b == 254,
			a == 172 && b&0xf0 == 16,
			a == 192 && (b == 168 || b == 0 || b == 88),
			a == 198 && (b == 18 || b == 19 || b == 51),
			a == 203 && b == 0,
			byte(v) == 0 || byte(v) == 255:
			continue
		}
		return netip.AddrFrom4([4]byte{a, b, byte(v >> 8), byte(v)})
	}
}

// v6Allocations are /32s of hosting and access providers whose addresses
// commonly show up in attack logs.
var v6Allocations = [][4]byte{
	{0x2a, 0x01, 0x04, 0xf8}, {0x2a, 0x01, 0x04, 0xf9}, {0x20, 0x01, 0x41, 0xd0}, {0x26, 0x04, 0xa8, 0x80},
	{0x2a, 0x03, 0xb0, 0xc0}, {0x20, 0x01, 0x0b, 0xc8}, {0x2a, 0x02, 0x47, 0x80}, {0x24, 0x0e, 0x03, 0xb7},
	{0x24, 0x08, 0x82, 0x07}, {0x24, 0x09, 0x8a, 0x55}, {0x24, 0x00, 0x61, 0x80}, {0x26, 0x00, 0x3c, 0x00},
	{0x2a, 0x0d, 0x56, 0x00}, {0x20, 0x01, 0x19, 0xf0}, {0x2a, 0x05, 0xd0, 0x14}, {0x26, 0x02, 0xff, 0xc5},
	{0x2a, 0x10, 0xc9, 0x41}, {0x24, 0x05, 0x82, 0x00}, {0x2a, 0x06, 0x98, 0xc0}, {0x2c, 0x0f, 0xf7, 0xa8},
}

func (g *generator) v6Prefix() [8]byte {
	var p [8]byte
	copy(p[:4], v6Allocations[g.r.IntN(len(v6Allocations))][:])
	v := g.r.Uint32()
	p[4], p[5], p[6], p[7] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return p
}

// v6In returns an address in the /64 p: a small interface id as servers use,
// or a random one as privacy addresses have.
func (g *generator) v6In(p [8]byte) netip.Addr {
	var b [16]byte
	copy(b[:8], p[:])
	if g.r.IntN(3) == 0 {
		b[15] = byte(1 + g.r.IntN(254))
	} else {
		v := g.r.Uint64()
		for i := range 8 {
			b[8+i] = byte(v >> (8 * i))
		}
	}
	return netip.AddrFrom16(b)
}

// rdns invents the reverse DNS name of a, or "" for the two thirds of
// attacking hosts that have none.
func (g *generator) rdns(a netip.Addr) string {
	if g.r.IntN(3) != 0 {
		return ""
	}
	if a.Is6() {
		return "static." + strconv.Itoa(g.r.IntN(1_000_000)) + ".clients.your-server.de"
	}
	b := a.As4()
	d := func(i int) string { return strconv.Itoa(int(b[i])) }
	switch g.r.IntN(5) {
	case 0:
		return "static." + d(3) + "." + d(2) + "." + d(1) + "." + d(0) + ".clients.your-server.de"
	case 1:
		return "ip-" + d(0) + "-" + d(1) + "-" + d(2) + "-" + d(3) + ".ip.secureserver.net"
	case 2:
		return d(3) + "-" + d(2) + "-" + d(1) + "-" + d(0) + ".dyn.example-isp.net"
	case 3:
		return "vps" + strconv.Itoa(g.r.IntN(99999)) + ".contaboserver.net"
	default:
		return d(0) + "." + d(1) + "." + d(2) + "." + d(3) + ".static.hostingprovider.com"
	}
}

// attacker picks a hostile client: a third of the time one of the few
// thousand busiest (Zipf-distributed), otherwise any of the pool.
func (g *generator) attacker() client {
	if g.fresh > 0 && g.nextFresh < len(g.attackers) && g.r.Float64() < g.fresh {
		g.nextFresh++
		return g.attackers[g.nextFresh-1]
	}
	if g.r.IntN(3) == 0 {
		return g.attackers[g.heavy.Uint64()]
	}
	return g.attackers[g.r.IntN(len(g.attackers))]
}

func (g *generator) legitClient() client { return g.legit[g.r.IntN(len(g.legit))] }
func (g *generator) relay() client       { return g.relays[g.r.IntN(len(g.relays))] }

// Small helpers.

func (g *generator) pick(s ...string) string { return s[g.r.IntN(len(s))] }

func (g *generator) pickList(s []string) string { return s[g.r.IntN(len(s))] }

// port is a client's source port: Linux ephemeral ports mostly, anything for bots.
func (g *generator) port() string {
	if g.r.IntN(4) == 0 {
		return strconv.Itoa(1024 + g.r.IntN(64511))
	}
	return strconv.Itoa(32768 + g.r.IntN(28232))
}

func (g *generator) itoa(lo, hi int) string { return strconv.Itoa(lo + g.r.IntN(hi-lo+1)) }

func (g *generator) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return b
}

// dovecotSession is a Dovecot session id: 12 random bytes in base64.
func (g *generator) dovecotSession() string {
	return base64.RawStdEncoding.EncodeToString(g.bytes(12))
}

// queueID is a Postfix short queue id (Debian does not enable long ids).
func (g *generator) queueID() string {
	const hex = "0123456789ABCDEF"
	n := 10 + g.r.IntN(2)
	b := make([]byte, n)
	for i := range b {
		b[i] = hex[g.r.IntN(16)]
	}
	return string(b)
}

func (g *generator) lowerHex(n int) string {
	const hex = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = hex[g.r.IntN(16)]
	}
	return string(b)
}

// serverFor is the local address a client of a's family talks to.
func serverFor(a netip.Addr) netip.Addr {
	if a.Is6() {
		return serverV6
	}
	return serverV4
}

// bracketPort is Postfix postscreen's "[addr]:port" form.
func bracketPort(a netip.Addr, port string) string { return "[" + a.String() + "]:" + port }

func base64Raw(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }
