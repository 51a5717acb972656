package filter

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// refSessions is the session map as first written: keyed by the whole
// sessionKey, oldest forgotten first.
type refSessions struct {
	m     map[sessionKey]int // key → creation number
	order []sessionKey
	next  int
}

func (r *refSessions) get(k sessionKey, create bool, n int) (int, bool) {
	if id, ok := r.m[k]; ok {
		return id, true
	}
	if !create {
		return 0, false
	}
	if r.m == nil {
		r.m = map[sessionKey]int{}
	}
	if len(r.order) < maxSessions {
		r.order = append(r.order, k)
	} else {
		delete(r.m, r.order[r.next])
		r.order[r.next] = k
		r.next = (r.next + 1) % maxSessions
	}
	r.m[k] = n
	return n, true
}

// TestSessionsAgreeWithReference drives sessions and refSessions with the
// same random lookups, with pids shared by several hosts and programs and
// enough sessions to make both forget, and checks that they find the same
// sessions.
func TestSessionsAgreeWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var ss sessions
	var ref refSessions
	ids := map[*session]int{}
	hosts := []string{"mail", "mx2", ""}
	progs := []string{"sshd", "postfix/smtpd", "dovecot"}
	for n := 1; n <= 200_000; n++ {
		k := sessionKey{
			host: hosts[rng.IntN(len(hosts))],
			prog: progs[rng.IntN(len(progs))],
			pid:  1 + rng.IntN(3*maxSessions),
		}
		// A copy whose bytes do not share memory, as a reused line buffer would.
		k.host = strconv.Quote(k.host)[1 : len(k.host)+1]
		create := rng.IntN(4) != 0
		existing := ss.get(k, false)
		s := ss.get(k, create)
		want, ok := ref.get(k, create, n)
		switch {
		case ok != (s != nil):
			t.Fatalf("lookup %d %+v create=%v: found %v, reference %v", n, k, create, s != nil, ok)
		case s == nil:
		case existing == nil:
			if want != n {
				t.Fatalf("lookup %d %+v: made a session, reference found session %d", n, k, want)
			}
			ids[s] = n // a new session, perhaps in a forgotten one's memory
		case s != existing || ids[s] != want:
			t.Fatalf("lookup %d %+v: found session %d, reference %d", n, k, ids[s], want)
		}
	}
}
