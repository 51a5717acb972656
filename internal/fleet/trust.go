package fleet

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Trust is how far a node goes on a peer's word.
type Trust uint8

// Trust levels, from least to most.
const (
	TrustIgnore  Trust = iota + 1 // read nothing from the peer
	TrustSuspect                  // its bans flag the target as suspect: tighter thresholds
	TrustQuorum                   // its bans count towards a quorum; until then, suspect
	TrustBan                      // its bans are bans here
)

var trustNames = map[Trust]string{TrustIgnore: "ignore", TrustSuspect: "suspect", TrustQuorum: "quorum", TrustBan: "ban"}

func (t Trust) String() string {
	if s, ok := trustNames[t]; ok {
		return s
	}
	return fmt.Sprintf("trust(%d)", uint8(t))
}

// ParseTrust returns the Trust named s.
func ParseTrust(s string) (Trust, error) {
	for t, n := range trustNames {
		if n == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown trust %q (ban, quorum, suspect or ignore)", s)
}

// Peer is a node this one knows.
type Peer struct {
	Name  string
	Key   string // public NKey
	Trust Trust
}

// Verdict is what to do with a peer's message here.
type Verdict uint8

// Verdicts.
const (
	Drop    Verdict = iota // nothing
	Suspect                // flag the target (or user name) until the message's end
	Ban                    // enforce the ban
	Unban                  // lift the peer's own ban of the target
)

func (v Verdict) String() string {
	return [...]string{"drop", "suspect", "ban", "unban"}[v]
}

// Policy judges peers' messages: per peer trust, and a quorum of distinct
// peers for those trusted only in numbers. Unknown nodes are dropped.
// Safe for concurrent use.
type Policy struct {
	peers  map[string]Peer // by key
	quorum int
	// counts: some peer is trusted below TrustBan, so votes are counted.
	// Without such a peer no vote is ever consulted and none is kept.
	counts bool

	mu    sync.Mutex
	votes map[netip.Prefix]map[string]time.Time // target → peer key → end of its ban
	max   int
	// expiry is no later than the earliest end among the votes (zero: no
	// vote ends): before it a prune would find nothing to delete.
	expiry time.Time
}

// DefaultMaxVotes bounds the targets a quorum is counted for.
const DefaultMaxVotes = 200_000

// NewPolicy returns the policy for peers, banning on quorum distinct
// peers' word (at least 2) for those trusted with TrustQuorum.
func NewPolicy(peers []Peer, quorum int) *Policy {
	p := &Policy{peers: map[string]Peer{}, quorum: max(quorum, 2), votes: map[netip.Prefix]map[string]time.Time{}, max: DefaultMaxVotes}
	for _, x := range peers {
		p.peers[x.Key] = x
		if x.Trust == TrustSuspect || x.Trust == TrustQuorum {
			p.counts = true
		}
	}
	return p
}

// Peer returns the peer with key.
func (p *Policy) Peer(key string) (Peer, bool) {
	x, ok := p.peers[key]
	return x, ok && x.Trust != TrustIgnore
}

// Judge returns what to do with m, from the peer it was verified to come
// from, at now. Every peer trusted with more than TrustIgnore is a vote
// for a quorum, whatever its own trust; bans the quorum decides last until
// the earliest end among the votes that made it.
func (p *Policy) Judge(m Message, now time.Time) (Verdict, time.Time) {
	peer, ok := p.Peer(m.Node)
	if !ok || m.Expired(now) {
		return Drop, time.Time{}
	}
	switch m.Kind {
	case KindHotUser, KindBadPrefix, KindSuspect:
		return Suspect, m.End
	case KindRevoke:
		p.unvote(m)
		if peer.Trust == TrustBan {
			return Unban, time.Time{}
		}
		return Drop, time.Time{}
	}
	if peer.Trust == TrustBan && !p.counts {
		return Ban, m.End // no quorum is ever counted: no vote to keep
	}
	n, end := p.vote(m, now)
	switch {
	case peer.Trust == TrustBan:
		return Ban, m.End
	case n >= p.quorum:
		return Ban, end
	default:
		return Suspect, m.End
	}
}

// vote records m's ban and returns the number of peers agreeing on its
// target at now and the earliest end among them (zero: until revoked).
func (p *Policy) vote(m Message, now time.Time) (int, time.Time) {
	t, err := m.Prefix()
	if err != nil {
		return 0, time.Time{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.votes[t]
	if v == nil {
		if len(p.votes) >= p.max && !p.expiry.IsZero() && !now.Before(p.expiry) {
			p.pruneLocked(now) // only when some vote has ended: a prune walks every target
		}
		if len(p.votes) >= p.max {
			return 1, m.End
		}
		v = map[string]time.Time{}
		p.votes[t] = v
	}
	v[m.Node] = m.End
	if !m.End.IsZero() && (p.expiry.IsZero() || m.End.Before(p.expiry)) {
		p.expiry = m.End
	}
	var end time.Time
	n := 0
	for k, e := range v {
		if !e.IsZero() && !now.Before(e) {
			delete(v, k)
			continue
		}
		n++
		if !e.IsZero() && (end.IsZero() || e.Before(end)) {
			end = e
		}
	}
	return n, end
}

func (p *Policy) unvote(m Message) {
	t, err := m.Prefix()
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if v := p.votes[t]; v != nil {
		delete(v, m.Node)
		if len(v) == 0 {
			delete(p.votes, t)
		}
	}
}

// pruneLocked deletes the votes ended at now and sets expiry to the
// earliest end left.
func (p *Policy) pruneLocked(now time.Time) {
	var next time.Time
	for t, v := range p.votes {
		for k, e := range v {
			switch {
			case e.IsZero():
			case !now.Before(e):
				delete(v, k)
			case next.IsZero() || e.Before(next):
				next = e
			}
		}
		if len(v) == 0 {
			delete(p.votes, t)
		}
	}
	p.expiry = next
}
