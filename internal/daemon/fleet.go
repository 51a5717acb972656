package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/fleet"
)

// fleetLink is the daemon's member of a fleet (see package fleet): it
// shares the decisions this node takes and applies its peers' as their
// trust allows. What it applies goes through the engine like a manual
// ban, so an allowlisted or never-ban target is refused there; a
// known-good client is refused here; a peer's prefix ban carves the local
// good clients out like any other. Nil when the fleet is off: every
// method is then a no-op.
type fleetLink struct {
	d       *Daemon
	cfg     config.Fleet
	name    string
	key     nkeys.KeyPair
	secret  string
	storeAt string
	policy  *fleet.Policy
	node    *fleet.Node
	srv     *server.Server
	log     *slog.Logger

	applied, suspects, unbans          atomic.Uint64
	refusedAllow, refusedGood, already atomic.Uint64

	// evidence: addresses shared as suspect, and when (at most once per
	// half signal_ttl each; at most maxEvidence held).
	evMu            sync.Mutex
	evidence        map[netip.Addr]time.Time
	evShared, evCap atomic.Uint64
}

// maxEvidence bounds the addresses remembered as shared suspect: past it,
// those whose signal has ended are forgotten, and a new one is not shared
// if none had (counted).
const maxEvidence = 100_000

// FleetStatus is the fleet's part of status.
type FleetStatus struct {
	Name string `json:"name"`
	Key  string `json:"key"` // this node's public NKey
	fleet.Stats
	Applied      uint64 `json:"applied"`       // peers' bans enforced here
	Suspects     uint64 `json:"suspects"`      // targets and user names flagged on a peer's word
	Evidence     uint64 `json:"evidence"`      // addresses this node shared as suspect (their failures here)
	EvidenceCap  uint64 `json:"evidence_cap"`  // suspect addresses not shared: too many shared at once
	Unbans       uint64 `json:"unbans"`        // peers' bans lifted by their revocation
	Refused      uint64 `json:"refused"`       // allowlisted or never-ban targets
	RefusedGood  uint64 `json:"refused_good"`  // known-good clients
	AlreadyInSet uint64 `json:"already_known"` // bans already in force here (replays)
}

// newFleet reads [fleet]'s keys; nil when it is off.
func newFleet(d *Daemon, cfg *config.Config) (*fleetLink, error) {
	fc := cfg.Fleet
	if !fc.Enabled {
		return nil, nil
	}
	seed, err := os.ReadFile(fc.SeedFile)
	if err != nil {
		return nil, fmt.Errorf("fleet: seed_file: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(seed)
	if err != nil {
		return nil, fmt.Errorf("fleet: seed_file %s: not an NKey seed", fc.SeedFile)
	}
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("fleet: seed_file %s: not a user NKey (rampart fleet keygen writes one)", fc.SeedFile)
	}
	f := &fleetLink{d: d, cfg: fc, key: kp, name: fc.Name, log: d.log.With("component", "fleet")}
	if f.name == "" {
		f.name, _ = os.Hostname()
	}
	if fc.ClusterSecretFile != "" {
		b, err := os.ReadFile(fc.ClusterSecretFile)
		if err != nil {
			return nil, fmt.Errorf("fleet: cluster_secret_file: %w", err)
		}
		if f.secret = strings.TrimSpace(string(b)); len(f.secret) < 16 {
			return nil, fmt.Errorf("fleet: cluster_secret_file %s: the secret needs 16 characters or more", fc.ClusterSecretFile)
		}
	}
	f.storeAt = fc.StoreDir
	if f.storeAt == "" {
		f.storeAt = filepath.Join(cfg.Daemon.StateDir, "fleet")
	}
	var peers []fleet.Peer
	for _, p := range fc.Peers {
		t := fleet.TrustBan
		if p.Trust != "" {
			if t, err = fleet.ParseTrust(p.Trust); err != nil {
				return nil, fmt.Errorf("fleet: peer %q: %w", p.Name, err)
			}
		}
		peers = append(peers, fleet.Peer{Name: p.Name, Key: p.Key, Trust: t})
	}
	f.policy = fleet.NewPolicy(peers, fc.Quorum)
	return f, nil
}

// start starts the embedded server (unless an external cluster is used)
// and the node; run shares until ctx ends.
func (f *fleetLink) start() error {
	if f == nil {
		return nil
	}
	pub, _ := f.key.PublicKey()
	replicas := f.cfg.Replicas
	opt := fleet.Options{Name: f.name, Key: f.key, Policy: f.policy, Handle: f.handle, Logger: f.log}
	if len(f.cfg.Servers) > 0 {
		opt.URLs = f.cfg.Servers
		if replicas == 0 {
			replicas = min(len(f.cfg.Servers), 3)
		}
	} else {
		users := []string{pub}
		for _, p := range f.cfg.Peers {
			users = append(users, p.Key)
		}
		srv, err := fleet.StartServer(fleet.ServerOptions{Name: f.name, Listen: f.cfg.Listen, ClusterListen: f.cfg.ClusterListen,
			Routes: f.cfg.Routes, ClusterSecret: f.secret, StoreDir: f.storeAt, MaxStore: int64(f.cfg.MaxStore),
			Users: users, Prefix: "rampart", Logger: f.log})
		if err != nil {
			return fmt.Errorf("fleet: embedded server: %w", err)
		}
		f.srv, opt.Server = srv, srv
		if replicas == 0 {
			replicas = min(1+len(f.cfg.Routes), 3)
		}
	}
	opt.Replicas = replicas
	opt.MaxBytes = int64(f.cfg.MaxStore) / 2 // two streams
	node, err := fleet.New(opt)
	if err != nil {
		f.stop()
		return err
	}
	f.node = node
	f.log.Info("fleet: joined", "name", f.name, "key", pub, "peers", len(f.cfg.Peers), "embedded", f.srv != nil, "replicas", replicas)
	return nil
}

func (f *fleetLink) run(ctx context.Context) {
	if f == nil || f.node == nil {
		return
	}
	if err := f.node.Run(ctx); err != nil {
		f.log.Error("fleet: stopped", "err", err)
	}
}

// stop shuts the embedded server down (after run has returned).
func (f *fleetLink) stop() {
	if f == nil || f.srv == nil {
		return
	}
	f.srv.Shutdown()
	f.srv.WaitForShutdown()
	f.srv = nil
}

// share publishes this node's own new bans (the applier calls it with
// every batch it takes; restored, peers' and carve-out decisions are
// left out).
func (f *fleetLink) share(ds []event.Decision) {
	if f == nil || f.node == nil || !f.cfg.Publish {
		return
	}
	var ms []fleet.Message
	for _, d := range ds {
		if d.Origin != "local" || (d.Action != event.Ban && d.Action != event.Trap) {
			continue
		}
		ms = append(ms, fleet.FromDecision(d))
		if f.cfg.Signals && d.Scenario == "prefix-suspect" && d.Target.IsSingleIP() {
			if p, ok := f.d.currentPipe().Engine.SuspectPrefix(d.Target.Addr(), d.Start); ok {
				ms = append(ms, fleet.Message{Kind: fleet.KindBadPrefix, Target: p.String(), Start: d.Start, End: d.Start.Add(f.cfg.SignalTTL.D())})
			}
		}
	}
	f.node.Publish(ms...)
}

// observed shares a user name found sprayed, and an address whose
// failures here are evidence enough (evidence_failures within
// evidence_window) but not a ban: the event ev led to ds.
func (f *fleetLink) observed(ev event.Event, ds []event.Decision) {
	if f == nil || f.node == nil || !f.cfg.Signals {
		return
	}
	for _, d := range ds {
		if d.Scenario == "user-spray" && d.Origin == "local" && ev.User != "" {
			now := time.Now()
			f.node.Publish(fleet.Message{Kind: fleet.KindHotUser, User: ev.User, Start: now, End: now.Add(f.cfg.SignalTTL.D())})
			break
		}
	}
	if f.cfg.EvidenceFailures <= 0 || !ev.Kind.Failure() || !ev.Addr.IsValid() {
		return
	}
	if m, ok := f.suspectOf(f.d.currentPipe().Engine, ev, ds, time.Now()); ok {
		f.node.Publish(m)
	}
}

// suspectOf returns the suspect signal ev calls for, if any: a failure of
// an address that now has evidence_failures within evidence_window here
// (see engine.Evidence for the addresses never shared) and that ds did not
// ban, not shared as suspect within the last half signal_ttl.
func (f *fleetLink) suspectOf(e *engine.Engine, ev event.Event, ds []event.Decision, now time.Time) (fleet.Message, bool) {
	need := f.cfg.EvidenceFailures
	if need <= 0 || !ev.Kind.Failure() || !ev.Addr.IsValid() {
		return fleet.Message{}, false
	}
	addr := ev.Addr.Unmap()
	for _, d := range ds {
		if d.Target.Contains(addr) && (d.Action == event.Ban || d.Action == event.Trap) {
			return fleet.Message{}, false // its ban is shared
		}
	}
	ttl := f.cfg.SignalTTL.D()
	recent := func() bool { at, ok := f.evidence[addr]; return ok && now.Sub(at) < ttl/2 }
	f.evMu.Lock()
	shared := recent()
	f.evMu.Unlock()
	if shared || e.Evidence(ev, f.cfg.EvidenceWindow.D()) < need {
		return fleet.Message{}, false
	}
	f.evMu.Lock()
	defer f.evMu.Unlock()
	if recent() {
		return fleet.Message{}, false
	}
	if f.evidence == nil {
		f.evidence = map[netip.Addr]time.Time{}
	}
	if _, ok := f.evidence[addr]; !ok && len(f.evidence) >= maxEvidence {
		for a, at := range f.evidence {
			if now.Sub(at) >= ttl {
				delete(f.evidence, a)
			}
		}
		if len(f.evidence) >= maxEvidence {
			f.evCap.Add(1)
			return fleet.Message{}, false
		}
	}
	f.evidence[addr] = now
	f.evShared.Add(1)
	return fleet.Message{Kind: fleet.KindSuspect, Target: event.AddrPrefix(addr).String(), Start: now, End: now.Add(ttl)}, true
}

// unban publishes the revocation of this node's ban of target.
func (f *fleetLink) unban(target netip.Prefix) {
	if f == nil || f.node == nil || !f.cfg.Publish {
		return
	}
	now := time.Now()
	f.node.Publish(fleet.Message{Kind: fleet.KindRevoke, Target: target.String(), Start: now, End: now.Add(24 * time.Hour)})
}

// handle applies a peer's message as its verdict says.
func (f *fleetLink) handle(m fleet.Message, peer fleet.Peer, v fleet.Verdict, until time.Time) {
	origin := "fleet:" + peer.Name
	e := f.d.currentPipe().Engine
	now := time.Now()
	switch v {
	case fleet.Suspect:
		if until.IsZero() { // a peer's ban until revoked: flagged for signal_ttl
			until = now.Add(f.cfg.SignalTTL.D())
		}
		ok := false
		if m.Kind == fleet.KindHotUser {
			ok = e.MarkHotUser(m.User, until, origin)
		} else if p, err := m.Prefix(); err == nil && m.Kind == fleet.KindSuspect {
			ok = e.MarkEvidence(p.Addr(), until, origin)
		} else if err == nil {
			ok = e.MarkSuspect(p, until, origin)
		}
		if ok {
			f.suspects.Add(1)
		}
	case fleet.Ban:
		d, err := m.Decision(origin)
		if err != nil {
			return
		}
		if !until.IsZero() {
			d.Duration = until.Sub(d.Start)
		}
		switch f.d.peerBan(d) {
		case peerApplied:
			f.applied.Add(1)
		case peerKnown:
			f.already.Add(1)
		case peerGood:
			f.refusedGood.Add(1)
			f.log.Info("fleet: peer's ban of a known-good client refused", "addr", Target(d.Target), "peer", peer.Name)
		case peerAllowed:
			f.refusedAllow.Add(1)
			f.log.Info("fleet: peer's ban of an allowlisted target refused", "addr", Target(d.Target), "peer", peer.Name)
		}
	case fleet.Unban:
		p, err := m.Prefix()
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lifted, err := f.d.peerUnban(ctx, p, origin, "revoked by "+origin)
		if err != nil {
			f.log.Warn("fleet: revocation failed", "addr", Target(p), "err", err)
			return
		}
		if lifted {
			f.unbans.Add(1)
		}
	}
}

func (f *fleetLink) status() *FleetStatus {
	if f == nil || f.node == nil {
		return nil
	}
	return &FleetStatus{Name: f.name, Key: f.node.PublicKey(), Stats: f.node.Stats(),
		Applied: f.applied.Load(), Suspects: f.suspects.Load(), Evidence: f.evShared.Load(), EvidenceCap: f.evCap.Load(), Unbans: f.unbans.Load(),
		Refused: f.refusedAllow.Load(), RefusedGood: f.refusedGood.Load(), AlreadyInSet: f.already.Load()}
}
