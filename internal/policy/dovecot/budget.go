package dovecot

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// Dovecot asks `allow` twice for a login that succeeds: before it checks
// the password, and again after a correct one (auth_policy_check_before_auth,
// auth_policy_check_after_auth), with the same JSON both times. It waits out
// a positive status only before the password is checked, so a delay given
// to the second question is none: counted, it would make one tarpitted
// login two. checks remembers each login being checked, from its first
// `allow` until its `report`, to tell the second question from a new login.
//
// A login is the remote address, login, pwhash (a hash of the password and
// the login under auth_policy_hash_nonce), protocol and session id. A
// client that sends the same password again before the first attempt is
// reported would be taken for the second question and not delayed: it
// learns nothing it did not know.
type checks struct {
	mu      sync.Mutex
	seed    maphash.Seed
	pending map[uint64]time.Time // login → its first allow
}

// checkTTL forgets a login whose report never came (a Dovecot with
// auth_policy_report_after_auth = no, or one that died). The second
// question follows the first within the tarpit and the passdb lookup.
const checkTTL = 2 * time.Minute

// maxChecks bounds the table: logins in progress, not clients seen.
const maxChecks = 100_000

func (c *checks) key(addr netip.Addr, req *Request) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	b := addr.As16()
	h.Write(b[:])
	for _, s := range []string{req.Login, req.PwHash, req.Protocol, req.SessionID} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	return h.Sum64()
}

// first notes an allow question and reports whether it is the first for
// this login (before the password), not the second (after it).
func (c *checks) first(addr netip.Addr, req *Request, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.seed = maphash.MakeSeed()
		c.pending = map[uint64]time.Time{}
	}
	k := c.key(addr, req)
	if t, ok := c.pending[k]; ok && now.Sub(t) < checkTTL {
		return false
	}
	if len(c.pending) >= maxChecks {
		for k, t := range c.pending {
			if now.Sub(t) >= checkTTL {
				delete(c.pending, k)
			}
		}
		if len(c.pending) >= maxChecks {
			clear(c.pending) // a flood: some second questions count again, none is lost
		}
	}
	c.pending[k] = now
	return true
}

// done forgets a login once Dovecot reports its outcome.
func (c *checks) done(addr netip.Addr, req *Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending != nil {
		delete(c.pending, c.key(addr, req))
	}
}

// SMTP AUTH has a time budget. Postfix waits at most 10 seconds for
// Dovecot's answer to an AUTH command and then answers the client
// "454 4.7.0 Temporary authentication failure", whatever the password. In
// those 10 seconds Dovecot also spends its own delays: the per-address
// penalty (anvil: 4s after one recent failure, 8s after two, 15s after
// three), Rampart's tarpit, the password check and, when it fails,
// auth_failure_delay (2s). A tarpit that ignored them would turn a person's
// right password, typed after two typos, into a 454.
//
// So for a login Postfix passes on (protocol "smtp"), the tarpit is cut to
// what is left of the budget after Dovecot's own delays, which Rampart
// follows from the reports (penalties below), less a second of margin for
// the lookup and for Dovecot's whole-second timers. SMTP clients are held
// back at Postfix's CONNECT instead, which has no such limit.

// smtpBudget is Postfix's wait for Dovecot's SASL answer (a constant of its
// Dovecot SASL client).
const smtpBudget = 10 * time.Second

// budgetMargin covers the password lookup and Dovecot's rounding.
const budgetMargin = time.Second

// budgeted reports whether a protocol's logins are answered within
// smtpBudget: "smtp" is what Postfix's (and Exim's) Dovecot SASL client
// sends as the service. Dovecot's own submission server ("submission")
// waits for its auth process without such a limit.
func budgeted(protocol string) bool { return protocol == "smtp" }

// penalties follows Dovecot's per-address authentication penalty
// (anvil-auth-penalty, on by default): each failed login from an address
// (an IPv6 /48) within 15 seconds of the previous one raises it by one, a
// success clears it, and a login starts only after 2·2^n seconds, at most
// 15, while it is n > 0 and the last failure is less than 15 seconds old.
type penalties struct {
	mu sync.Mutex
	m  map[netip.Prefix]penalty
}

type penalty struct {
	n    int
	last time.Time
}

// penaltyFresh is how long Dovecot keeps a penalty in force after the last
// failure: every step of its decay is at most 15s (AUTH_PENALTY_MAX_SECS).
const penaltyFresh = 15 * time.Second

const maxPenalties = 100_000

func penaltyKey(a netip.Addr) netip.Prefix {
	bits := 32
	if a.Is6() {
		bits = 48
	}
	p, _ := a.Prefix(bits)
	return p
}

// failed notes a failed login from a.
func (p *penalties) failed(a netip.Addr, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) >= maxPenalties {
		p.m = map[netip.Prefix]penalty{} // only fresh entries matter: none older than 15s is lost
	}
	k := penaltyKey(a)
	e := p.m[k]
	if now.Sub(e.last) >= penaltyFresh {
		e.n = 0
	}
	e.n++
	e.last = now
	p.m[k] = e
}

// succeeded notes a login from a: Dovecot clears its penalty.
func (p *penalties) succeeded(a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, penaltyKey(a))
}

// delay is the wait Dovecot imposes on a login from a starting now.
func (p *penalties) delay(a netip.Addr, now time.Time) time.Duration {
	p.mu.Lock()
	e, ok := p.m[penaltyKey(a)]
	p.mu.Unlock()
	if !ok || e.n == 0 || now.Sub(e.last) >= penaltyFresh {
		return 0
	}
	d := 2 * time.Second
	for range e.n {
		d *= 2
		if d >= penaltyFresh {
			return penaltyFresh
		}
	}
	return d
}

// smtpCap is the most Rampart may delay a login from a within the SMTP
// budget, in whole seconds (the unit of Dovecot's status); 0 when Dovecot's
// own delays use it all.
func (h *Handler) smtpCap(a netip.Addr, now time.Time) int {
	fd := h.FailureDelay
	if fd <= 0 {
		fd = 2 * time.Second
	}
	left := smtpBudget - budgetMargin - fd - h.penalties.delay(a, now)
	return max(int(left/time.Second), 0)
}
