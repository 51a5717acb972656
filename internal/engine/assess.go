package engine

import (
	"net/netip"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Assessment is what the engine knows of a client, for live policy
// answers (Postfix, Dovecot). It never changes engine state.
type Assessment struct {
	Banned      bool           // an active decision covers the address
	Ban         event.Decision // that decision
	Allowlisted bool           // the address is allowlisted or never banned (loopback, this host)
	KnownGood   bool           // the address logged in successfully recently
	HotUser     bool           // the user name is being sprayed from many addresses
	UserNetwork bool           // for a hot user: it logged in recently from the address's network (IPv4 /16, IPv6 /32) or AS
	Enumerating bool           // the address probed unknown recipients
	Failures    int            // recent failures of the address (the most in any jail)
	MaxRetry    int            // the threshold that applies to it now
	Suspect     string         // why it is suspect: "surge", "prefix-suspect", "asn", "pending ban"; "" if not
}

// Assess reports what the engine knows of addr, and of user when not empty,
// at time t.
func (e *Engine) Assess(addr netip.Addr, user string, t time.Time) Assessment {
	e.mu.Lock()
	defer e.mu.Unlock()
	addr = addr.Unmap()
	var a Assessment
	if !addr.IsValid() {
		return a
	}
	if d, ok := e.bannedAt(addr, t); ok {
		a.Banned, a.Ban = true, d
	}
	st := toStamp(t)
	a.Allowlisted = e.exempt(addr)
	a.KnownGood = e.isGood(addr, st)
	if sp := e.cfg.Spray; sp.Addresses > 0 && user != "" {
		uid := userID(normUser(user))
		if d, ok := e.users.get(uid); ok {
			a.HotUser = d.count(st-durStamp(sp.Window)) >= min(sp.Addresses, distinctSize)
		}
		if _, hot := e.peerHot(uid, st); hot {
			a.HotUser = true
		}
		a.UserNetwork = a.HotUser && e.homeNetwork(addr, uid, st)
	}
	if en := e.cfg.Enumeration; en.Recipients > 0 {
		if r, ok := e.enum.get(addr.As16()); ok {
			a.Enumerating = r.count(st-durStamp(en.Window), 1) >= en.Recipients
		}
	}
	a.MaxRetry = 0
	for ji, j := range e.jails {
		if r, ok := e.tracked.get(keyOf(addr, ji)); ok {
			if n := r.count(stampBefore(t, j.FindTime), j.per); n > a.Failures {
				a.Failures = n
			}
		}
		if a.MaxRetry == 0 || j.MaxRetry < a.MaxRetry {
			a.MaxRetry = j.MaxRetry
		}
	}
	if e.isPending(event.AddrPrefix(addr)) {
		a.Suspect = "pending ban"
	}
	if !a.KnownGood {
		if e.surge.on && e.cfg.Surge.MaxRetry > 0 {
			a.Suspect = "surge"
			a.MaxRetry = min(a.MaxRetry, e.cfg.Surge.MaxRetry)
		}
		if sus := e.suspect(addr, st, &asOf{}); sus.limit > 0 {
			a.Suspect = sus.scenario
			a.MaxRetry = min(a.MaxRetry, sus.limit)
		}
	}
	return a
}
