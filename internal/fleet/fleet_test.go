package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/rampart-dev/rampart/internal/event"
)

func newKey(t testing.TB) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return kp, pub
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// got collects what a node's Handle receives.
type got struct {
	mu sync.Mutex
	ms []string
}

func (g *got) handle(m Message, p Peer, v Verdict, _ time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ms = append(g.ms, fmt.Sprintf("%s %s %s %s", p.Name, v, m.Kind, m.Target+m.User))
}

func (g *got) has(s string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, x := range g.ms {
		if x == s {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type testNode struct {
	name   string
	key    nkeys.KeyPair
	pub    string
	route  string
	srv    *server.Server
	node   *Node
	got    *got
	cancel context.CancelFunc
	done   chan struct{}
}

// TestClusterOnLoopback runs three embedded servers clustered on loopback,
// one node each: a ban published by one reaches the others with the
// verdict their trust in it gives, a node that starts late replays what
// is in force, and a revocation replaces the ban.
func TestClusterOnLoopback(t *testing.T) {
	dir := t.TempDir()
	nodes := make([]*testNode, 3)
	var users []string
	for i := range nodes {
		kp, pub := newKey(t)
		nodes[i] = &testNode{name: fmt.Sprintf("n%d", i+1), key: kp, pub: pub, route: freePort(t)}
		users = append(users, pub)
	}
	peersOf := func(self int, trust Trust) []Peer {
		var ps []Peer
		for i, x := range nodes {
			if i != self {
				ps = append(ps, Peer{Name: x.name, Key: x.pub, Trust: trust})
			}
		}
		return ps
	}
	startServer := func(i int) {
		x := nodes[i]
		var routes []string
		for j, y := range nodes {
			if j != i {
				routes = append(routes, y.route)
			}
		}
		srv, err := StartServer(ServerOptions{Name: x.name, ClusterListen: x.route, Routes: routes, ClusterSecret: "s3cret",
			StoreDir: filepath.Join(dir, x.name), Users: users, Prefix: "rampart", Logger: testLogger(t, x.name+"-srv")})
		if err != nil {
			t.Fatal(err)
		}
		x.srv = srv
	}
	start := func(i int, trust Trust) {
		x := nodes[i]
		if x.srv == nil {
			startServer(i)
		}
		var err error
		x.got = &got{}
		x.node, err = New(Options{Name: x.name, Key: x.key, Server: x.srv, Logger: testLogger(t, x.name), Replicas: 3, Policy: NewPolicy(peersOf(i, trust), 2), Handle: x.got.handle})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		x.cancel, x.done = cancel, make(chan struct{})
		go func() { defer close(x.done); x.node.Run(ctx) }()
	}
	stop := func(i int) {
		x := nodes[i]
		if x.cancel != nil {
			x.cancel()
			<-x.done
		}
		x.srv.Shutdown()
		x.srv.WaitForShutdown()
		x.srv = nil
	}
	for i := range nodes {
		startServer(i)
	}
	start(0, TrustBan)
	start(1, TrustSuspect)
	t.Cleanup(func() {
		for i, x := range nodes {
			if x.srv != nil {
				stop(i)
			}
		}
	})
	now := time.Now()
	ban := FromDecision(event.Decision{Target: netip.MustParsePrefix("203.0.113.7/32"), Action: event.Ban, Start: now, Duration: time.Hour, Scenario: "ip-failures"})
	nodes[0].node.Publish(ban)
	waitFor(t, 30*time.Second, "n2 to get n1's ban", func() bool { return nodes[1].got.has("n1 suspect ban 203.0.113.7/32") })
	hot := Message{Kind: KindHotUser, User: "admin", Start: now, End: now.Add(time.Hour)}
	nodes[1].node.Publish(hot)
	// n2 reads the streams by now; n1 may still be setting up its reading.
	waitFor(t, 30*time.Second, "n1 to get n2's hot user", func() bool { return nodes[0].got.has("n2 suspect hot-user admin") })

	// A node that joins late (its server was up) reads what is in force.
	start(2, TrustBan)
	waitFor(t, 30*time.Second, "n3 to replay n1's ban", func() bool { return nodes[2].got.has("n1 ban ban 203.0.113.7/32") })
	waitFor(t, 10*time.Second, "n3 to replay n2's hot user", func() bool { return nodes[2].got.has("n2 suspect hot-user admin") })
	if nodes[2].got.has("n3 ban ban 203.0.113.7/32") {
		t.Error("a node got its own message back")
	}

	// A revocation replaces the ban: a node restarted afterwards, server
	// and all, does not see the ban at all.
	rev := ban
	rev.Kind, rev.Start, rev.End = KindRevoke, now.Add(time.Second), now.Add(time.Hour)
	nodes[0].node.Publish(rev)
	waitFor(t, 10*time.Second, "n3 to unban", func() bool { return nodes[2].got.has("n1 unban revoke 203.0.113.7/32") })
	stop(2)
	start(2, TrustBan)
	waitFor(t, 30*time.Second, "n3 to replay the revocation", func() bool { return nodes[2].got.has("n1 unban revoke 203.0.113.7/32") })
	if nodes[2].got.has("n1 ban ban 203.0.113.7/32") {
		t.Error("the replaced ban was replayed")
	}
	if st := nodes[0].node.Stats(); st.Published != 2 || st.Rejected != 0 || !st.Connected {
		t.Errorf("n1 stats: %+v", st)
	}
}

type tlog struct{ t testing.TB }

func (l tlog) Write(p []byte) (int, error) { l.t.Log(string(p)); return len(p), nil }

func testLogger(t testing.TB, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
}
