package fleet

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestVerify: a signed message verifies; tampering, another node's key,
// an oversized, stale-versioned, future-dated or malformed one does not.
func TestVerify(t *testing.T) {
	kp, pub := newKey(t)
	other, _ := newKey(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	good := Message{Kind: KindBan, Target: "203.0.113.7", Start: now, End: now.Add(time.Hour), Scenario: "ip-failures"}
	s, m, err := Sign(good, kp, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Node != pub || m.Target != "203.0.113.7" {
		t.Fatalf("signed: %+v", m)
	}
	if got, err := Verify(s, now); err != nil || got.Node != pub || got.Name != "web1" {
		t.Fatalf("verify: %+v %v", got, err)
	}
	if p, _ := m.Prefix(); p.String() != "203.0.113.7/32" {
		t.Errorf("prefix %s", p)
	}
	resign := func(mut func(*Message)) Signed {
		x := good
		mut(&x)
		s, _, err := Sign(x, kp, "web1")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherSig, _, _ := Sign(good, other, "web1")
	tests := []struct {
		name string
		s    Signed
	}{
		{"tampered", Signed{Data: []byte(strings.Replace(string(s.Data), "203.0.113.7", "203.0.113.8", 1)), Sig: s.Sig}},
		{"another node's signature", Signed{Data: s.Data, Sig: otherSig.Sig}},
		{"not base64", Signed{Data: s.Data, Sig: "!!"}},
		{"oversized", Signed{Data: make([]byte, MaxMessage+1), Sig: s.Sig}},
		{"not JSON", Signed{Data: []byte("{"), Sig: s.Sig}},
		{"future", resign(func(m *Message) { m.Start = now.Add(time.Hour) })},
		{"ends before start", resign(func(m *Message) { m.End = now.Add(-time.Hour) })},
		{"bad target", resign(func(m *Message) { m.Target = "203.0.113.300" })},
		{"zone", resign(func(m *Message) { m.Target = "fe80::1%eth0" })},
		{"unknown kind", resign(func(m *Message) { m.Kind = "nuke" })},
		{"hot user without user", resign(func(m *Message) { m.Kind = KindHotUser })},
		{"signal without end", resign(func(m *Message) { m.Kind, m.End = KindBadPrefix, time.Time{} })},
		{"signal too long", resign(func(m *Message) { m.Kind, m.End = KindBadPrefix, now.Add(30*24*time.Hour) })},
		{"suspect without end", resign(func(m *Message) { m.Kind, m.End = KindSuspect, time.Time{} })},
		{"suspect too long", resign(func(m *Message) { m.Kind, m.End = KindSuspect, now.Add(8*24*time.Hour) })},
		{"suspect of a prefix", resign(func(m *Message) { m.Kind, m.Target = KindSuspect, "203.0.113.0/24" })},
		{"suspect bad target", resign(func(m *Message) { m.Kind, m.Target = KindSuspect, "203.0.113" })},
		{"suspect without target", resign(func(m *Message) { m.Kind, m.Target = KindSuspect, "" })},
	}
	for _, tc := range tests {
		if _, err := Verify(tc.s, now); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: err %v, want ErrBadMessage", tc.name, err)
		}
	}
	// A suspect address, v4 or v6 (/32 and /128 too), verifies.
	for _, target := range []string{"203.0.113.7", "203.0.113.7/32", "2001:db8::7", "2001:db8::7/128", "::ffff:203.0.113.7"} {
		sus := resign(func(m *Message) { m.Kind, m.Target, m.End = KindSuspect, target, now.Add(time.Hour) })
		got, err := Verify(sus, now)
		if p, _ := got.Prefix(); err != nil || !p.IsSingleIP() {
			t.Errorf("suspect %s: %v %s", target, err, p)
		}
	}
	if m := (Message{Kind: KindSuspect, Target: "203.0.113.7"}); subject("rampart", pub, m) != "rampart.sig."+pub+".suspect.203-0-113-7_32" {
		t.Errorf("suspect subject %s", subject("rampart", pub, m))
	}
	// Long fields are cut, not refused.
	long := good
	long.Reason = strings.Repeat("é", 1000)
	s2, m2, err := Sign(long, kp, strings.Repeat("n", 200))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(s2, now); err != nil || len(m2.Reason) > maxReason || len(m2.Name) > maxName {
		t.Errorf("long fields: %v (%d, %d)", err, len(m2.Reason), len(m2.Name))
	}
	if subject("rampart", pub, m) != "rampart.dec."+pub+".203-0-113-7_32" || nodeOfSubject("rampart", subject("rampart", pub, m)) != pub {
		t.Errorf("subject %s", subject("rampart", pub, m))
	}
	v6 := Message{Kind: KindBan, Target: "2001:db8::/32"}
	if got := v6.Key(); got != "2001-db8--_32" {
		t.Errorf("v6 key %s", got)
	}
}

// TestPolicy: ban, suspect, ignore and unknown peers; a quorum of distinct
// peers bans until the earliest end among them; expired votes do not
// count; a revocation takes the vote back.
func TestPolicy(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := NewPolicy([]Peer{
		{Name: "a", Key: "UA", Trust: TrustBan}, {Name: "s", Key: "US", Trust: TrustSuspect},
		{Name: "q1", Key: "UQ1", Trust: TrustQuorum}, {Name: "q2", Key: "UQ2", Trust: TrustQuorum},
		{Name: "i", Key: "UI", Trust: TrustIgnore},
	}, 2)
	ban := func(node, target string, end time.Duration) Message {
		return Message{V: 1, Kind: KindBan, Node: node, Target: target, Start: now, End: now.Add(end)}
	}
	check := func(m Message, at time.Time, want Verdict, wantEnd time.Time) {
		t.Helper()
		v, end := p.Judge(m, at)
		if v != want || (want == Ban && !end.Equal(wantEnd)) {
			t.Errorf("%s on %s: %s until %s, want %s until %s", m.Node, m.Target, v, end, want, wantEnd)
		}
	}
	check(ban("UA", "192.0.2.1", time.Hour), now, Ban, now.Add(time.Hour))
	check(ban("US", "192.0.2.2", time.Hour), now, Suspect, time.Time{})
	check(ban("UI", "192.0.2.3", time.Hour), now, Drop, time.Time{})
	check(ban("UX", "192.0.2.3", time.Hour), now, Drop, time.Time{})
	check(ban("UA", "192.0.2.4", time.Hour), now.Add(2*time.Hour), Drop, time.Time{})
	check(ban("UQ1", "198.51.100.0/24", 2*time.Hour), now, Suspect, time.Time{})
	check(ban("UQ1", "198.51.100.0/24", 2*time.Hour), now, Suspect, time.Time{}) // the same peer twice is one vote
	check(ban("UQ2", "198.51.100.0/24", time.Hour), now, Ban, now.Add(time.Hour))
	// A suspect-only peer's vote counts too.
	check(ban("UQ1", "198.51.100.9", 10*time.Minute), now, Suspect, time.Time{})
	check(ban("US", "198.51.100.9", time.Hour), now.Add(time.Minute), Ban, now.Add(10*time.Minute))
	if v, _ := p.Judge(ban("UQ2", "198.51.100.9", time.Hour), now.Add(20*time.Minute)); v != Ban {
		// q1's vote expired at 10 minutes: only s and q2 remain, still two.
		t.Errorf("quorum of s and q2: %s", v)
	}
	rev := ban("UQ2", "198.51.100.0/24", time.Hour)
	rev.Kind = KindRevoke
	check(rev, now, Drop, time.Time{})
	check(ban("UQ1", "198.51.100.0/24", 2*time.Hour), now, Suspect, time.Time{})
	rev.Node = "UA"
	check(rev, now, Unban, time.Time{})
	hot := Message{V: 1, Kind: KindHotUser, Node: "UA", User: "admin", Start: now, End: now.Add(time.Hour)}
	check(hot, now, Suspect, time.Time{})
	// A suspect address: flagged on the word of any peer heard (even one
	// trusted only as suspect), never a ban, never a vote.
	for _, node := range []string{"UA", "US", "UQ1"} {
		sus := Message{V: 1, Kind: KindSuspect, Node: node, Target: "192.0.2.50", Start: now, End: now.Add(time.Hour)}
		if v, end := p.Judge(sus, now); v != Suspect || !end.Equal(now.Add(time.Hour)) {
			t.Errorf("suspect from %s: %s until %s", node, v, end)
		}
	}
	check(Message{V: 1, Kind: KindSuspect, Node: "UI", Target: "192.0.2.50", Start: now, End: now.Add(time.Hour)}, now, Drop, time.Time{})
	check(Message{V: 1, Kind: KindSuspect, Node: "UA", Target: "192.0.2.50", Start: now, End: now.Add(time.Hour)}, now.Add(2*time.Hour), Drop, time.Time{})
	if v, _ := p.Judge(ban("UQ2", "192.0.2.50", time.Hour), now); v != Suspect {
		t.Errorf("suspect signals counted as quorum votes: %s", v)
	}
}

// TestPolicyVotes: without a peer trusted below ban no vote is kept; at
// the bound a new target's vote is not counted until some vote has ended,
// and then the ended ones make room.
func TestPolicyVotes(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ban := func(node, target string, end time.Duration) Message {
		return Message{V: 1, Kind: KindBan, Node: node, Target: target, Start: now, End: now.Add(end)}
	}
	p := NewPolicy([]Peer{{Name: "a", Key: "UA", Trust: TrustBan}, {Name: "b", Key: "UB", Trust: TrustBan}}, 2)
	for i := range 10 {
		if v, end := p.Judge(ban("UA", fmt.Sprintf("192.0.2.%d", i), time.Hour), now); v != Ban || !end.Equal(now.Add(time.Hour)) {
			t.Fatalf("ban-trusted peer: %s until %s", v, end)
		}
	}
	if len(p.votes) != 0 {
		t.Errorf("%d targets kept without a quorum to count", len(p.votes))
	}

	p = NewPolicy([]Peer{{Name: "a", Key: "UA", Trust: TrustBan}, {Name: "q1", Key: "UQ1", Trust: TrustQuorum}, {Name: "q2", Key: "UQ2", Trust: TrustQuorum}}, 2)
	p.max = 2
	p.Judge(ban("UA", "192.0.2.1", time.Hour), now)
	p.Judge(ban("UQ1", "192.0.2.2", 2*time.Hour), now)
	// Full, nothing ended: the vote for a third target is not kept.
	p.Judge(ban("UQ1", "192.0.2.3", 3*time.Hour), now)
	if v, _ := p.Judge(ban("UQ2", "192.0.2.3", 3*time.Hour), now); v != Suspect {
		t.Errorf("third target at the bound: %s, want suspect (q1's vote not kept)", v)
	}
	// The first vote has ended: room for one.
	p.Judge(ban("UQ1", "192.0.2.3", 3*time.Hour), now.Add(90*time.Minute))
	if v, end := p.Judge(ban("UQ2", "192.0.2.3", 3*time.Hour), now.Add(90*time.Minute)); v != Ban || !end.Equal(now.Add(3*time.Hour)) {
		t.Errorf("after the first vote ended: %s until %s, want ban", v, end)
	}
	if len(p.votes) != 2 || !p.expiry.Equal(now.Add(2*time.Hour)) {
		t.Errorf("%d targets, next end %s", len(p.votes), p.expiry)
	}
	// A vote of the ban-trusted peer still counts towards a quorum.
	p.max = DefaultMaxVotes
	p.Judge(ban("UA", "198.51.100.1", time.Hour), now)
	if v, _ := p.Judge(ban("UQ2", "198.51.100.1", time.Hour), now); v != Ban {
		t.Errorf("quorum of a and q2: %s", v)
	}
}
