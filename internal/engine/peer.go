package engine

import (
	"net/netip"
	"time"

	"github.com/gaissmai/bart"

	"github.com/rampart-dev/rampart/internal/event"
)

// Marks from other nodes (the fleet, signed feeds): an address or prefix a
// peer flagged as suspect, a user name a peer sees sprayed. They never ban
// by themselves; they tighten local thresholds, as a suspect prefix or a
// hot user name found locally does, and so keep every carve-out: an
// allowlisted address is never counted, a known-good client is counted
// per user at the jail's threshold, and a ban on a tightened threshold
// waits out KnownGood.Grace for a login that cancels it.

// Peers configures the marks.
type Peers struct {
	MaxRetry int // per-address threshold inside a flagged address or prefix; 0 means 1
	Max      int // cap on flagged targets and on hot user names, each; 0 means DefaultPeerMarks
}

// DefaultPeers bans an address a peer flagged at its first failure (after
// the grace).
var DefaultPeers = Peers{MaxRetry: 1}

// DefaultPeerMarks bounds each kind of mark.
const DefaultPeerMarks = 100_000

type peerMark struct {
	until  stamp
	origin uint16 // in Engine.names
	slow   bool   // MarkEvidence: the ban lasts the slow ban time
}

type peerMarks struct {
	targets *bart.Table[peerMark]
	users   map[uint64]peerMark
}

func (e *Engine) peerMax() int {
	if e.cfg.Peers.Max > 0 {
		return e.cfg.Peers.Max
	}
	return DefaultPeerMarks
}

// MarkSuspect flags target (an address or a prefix) as suspect until
// until, on origin's word: addresses in it are banned at Peers.MaxRetry
// failures (after the grace a login may cancel). An allowlisted or
// never-ban target is refused; at the cap, expired marks are dropped
// first and a new one is refused if none was. It reports whether the
// mark was taken.
func (e *Engine) MarkSuspect(target netip.Prefix, until time.Time, origin string) bool {
	return e.mark(target, until, origin, false)
}

// MarkEvidence flags addr as suspect until until because it failed on
// origin (the fleet's suspect signal), as MarkSuspect does, except that
// the ban it leads to lasts as a low-and-slow ban does (the longer of
// Slow.BanTime and the jail's bantime): an address a peer saw failing
// over the slow window comes back at that pace, and a jail's short ban
// would end before its next attempt.
func (e *Engine) MarkEvidence(addr netip.Addr, until time.Time, origin string) bool {
	if !addr.IsValid() {
		return false
	}
	return e.mark(event.AddrPrefix(addr.Unmap()), until, origin, true)
}

func (e *Engine) mark(target netip.Prefix, until time.Time, origin string, slow bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	target = normPrefix(target)
	if !target.IsValid() || !until.After(e.now) || e.checkAllowed(target) != nil {
		return false
	}
	m := &e.peer
	if m.targets == nil {
		m.targets = &bart.Table[peerMark]{}
	}
	if _, ok := m.targets.Get(target); !ok && m.targets.Size() >= e.peerMax() {
		now := toStamp(e.now)
		for p, v := range m.targets.All() {
			if v.until <= now {
				m.targets.Delete(p)
			}
		}
		if m.targets.Size() >= e.peerMax() {
			return false
		}
	}
	m.targets.Insert(target, peerMark{until: toStamp(until), origin: e.names.id(origin), slow: slow})
	return true
}

// MarkHotUser flags user as sprayed across the fleet until until: a
// failure for it from an address that is not known-good is a ban, as for
// a user name found hot locally (see Spray). It reports whether the mark
// was taken (not at the cap).
func (e *Engine) MarkHotUser(user string, until time.Time, origin string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	user = normUser(user)
	if user == "" || !until.After(e.now) {
		return false
	}
	m := &e.peer
	if m.users == nil {
		m.users = map[uint64]peerMark{}
	}
	id := userID(user)
	if _, ok := m.users[id]; !ok && len(m.users) >= e.peerMax() {
		now := toStamp(e.now)
		for k, v := range m.users {
			if v.until <= now {
				delete(m.users, k)
			}
		}
		if len(m.users) >= e.peerMax() {
			return false
		}
	}
	m.users[id] = peerMark{until: toStamp(until), origin: e.names.id(origin)}
	return true
}

// PeerMarks returns how many targets and user names peers flagged are
// held (some may have expired and wait to be dropped).
func (e *Engine) PeerMarks() (targets, users int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.peer.targets != nil {
		targets = e.peer.targets.Size()
	}
	return targets, len(e.peer.users)
}

// peerSuspect returns the suspicion of a flagged target holding addr.
func (e *Engine) peerSuspect(addr netip.Addr, t stamp) suspicion {
	m := &e.peer
	if m.targets == nil || m.targets.Size() == 0 {
		return suspicion{}
	}
	for p, v := range m.targets.Supernets(netip.PrefixFrom(addr, addr.BitLen())) {
		if v.until > t {
			return suspicion{limit: max(e.cfg.Peers.MaxRetry, 1), scenario: "peer-suspect", prefix: p, origin: e.names.name(v.origin), slow: v.slow}
		}
	}
	return suspicion{}
}

// peerHot reports whether a peer flagged the user name as sprayed, and who.
func (e *Engine) peerHot(uid uint64, t stamp) (string, bool) {
	if v, ok := e.peer.users[uid]; ok && v.until > t {
		return e.names.name(v.origin), true
	}
	return "", false
}

// Evidence returns how many failures ev's address has had on this node
// within window before ev's time, in the jail that counts the most, for an
// address a peer may be told about (the fleet's suspect signal): 0 for an
// address that is allowlisted or never banned, banned already, a known-good
// client, a delivering relay, or in a network ev's user logs in from (a
// person's typo). Failures are counted as far back as the node keeps them
// (the longest of a jail's findtime and the slow window).
func (e *Engine) Evidence(ev event.Event, window time.Duration) int {
	if !ev.Addr.IsValid() {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	addr := ev.Addr.Unmap()
	if ev.Time.IsZero() {
		ev.Time = e.now
	}
	t := toStamp(ev.Time)
	if e.exempt(addr) || e.goodAt(addr, t).any() || e.ownNetwork(addr, ev.User, t) {
		return 0
	}
	if _, _, banned := e.banOn(addr, ev.Time); banned {
		return 0
	}
	since := stampBefore(ev.Time, window)
	n := 0
	for ji, j := range e.jails {
		if r, ok := e.tracked.get(keyOf(addr, ji)); ok {
			n = max(n, r.count(since, j.per))
		}
	}
	return n
}

// SuspectPrefix returns the prefix that makes addr suspect at t because it
// holds many bad addresses here (the prefix-suspect scenario, at whichever
// aggregation level flagged it), for the fleet's bad-prefix signal.
func (e *Engine) SuspectPrefix(addr netip.Addr, t time.Time) (netip.Prefix, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.localSuspect(addr.Unmap(), toStamp(t), &asOf{})
	return s.prefix, s.scenario == "prefix-suspect"
}
