// Package engine makes every decision Rampart takes. Events go in, Decisions
// come out; the engine does no I/O and reads time only from the events and
// from the now given to Tick, so a historical log replays to exactly the
// decisions the daemon would have made.
//
// Memory is bounded: every table has a hard cap and evicts its least recently
// active entries when full (see boundedMap), so a flood of millions of unique
// addresses costs at most the cap.
package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/gaissmai/bart"
	"github.com/rampart-dev/rampart/internal/event"
)

// Stats are the engine's counters.
type Stats struct {
	Tracked       int    // (address, jail) keys with recent failures
	TrackedCap    int    // the cap on Tracked
	Evicted       uint64 // keys forgotten because the table was full
	Offenders     int    // addresses with a ban history
	ActiveBans    int
	ActiveEvicted uint64 // active bans forgotten because the table was full (the kernel and store keep them)
	Events        uint64 // events observed
	Ignored       uint64 // events that could not count: no address, unknown jail, weight 0
	Allowlisted   uint64 // events from allowlisted addresses
	WhileBanned   uint64 // events from addresses already banned (log lag, other ports)
	Successes     uint64 // successful logins seen
	Deliveries    uint64 // accepted mail seen
	CarveOuts     uint64 // Allow decisions issued for good addresses
	KnownGood     int    // addresses remembered as known-good or as delivering relays
	HotUsers      int    // user names tracked for spraying
	Prefixes      int    // prefixes tracked for aggregation
	Surges        uint64 // times surge mode turned on
	Surge         bool   // surge mode is on now
	Decisions     uint64
	Repeated      uint64 // bans decided again at the same second as one in the history (lines read twice), not made
}

// Engine holds detection state. It is safe for concurrent use.
type Engine struct {
	mu        sync.Mutex
	cfg       Config
	jails     []jailState
	byName    map[string]int
	byService map[string]int
	tracked   *boundedMap[addrKey, ring]
	offenders *boundedMap[prefixKey, offender]
	users     *boundedMap[uint64, distinct[[16]byte]] // addresses failing per user name
	prefixes  *boundedMap[prefixKey, distinct[uint32]]
	asns      *boundedMap[uint32, distinct[uint32]]
	good      *boundedMap[[16]byte, goodEntry] // good.go
	enum      *boundedMap[[16]byte, ring]      // unknown recipients probed per address
	goodFails *boundedMap[goodFailKey, ring]
	// prefixUsers holds the users who logged in from each aggregation prefix.
	prefixUsers *boundedMap[prefixKey, prefixUsers]
	// homes holds when each user last logged in from each network at
	// homeBits.
	homes *boundedMap[homeKey, stamp]
	// wideBans counts the prefixes banned inside each widening prefix.
	wideBans *boundedMap[prefixKey, distinct[uint32]]
	pending  pendingBans
	// carvePrefixes counts good addresses per prefix a ban can have, for the
	// reasons; relayPrefixes counts delivering relays per aggregation prefix.
	carvePrefixes, relayPrefixes map[prefixKey]uint32
	bits                         levelBits
	surge                        surgeState
	active                       *boundedMap[activeKey, activeBan] // decisions in force (active.go)
	names                        nameTable                         // their scenario, jail and origin names
	portSets                     event.PortSets                    // the ports of per-port bans; ids below maxNames (active.go)
	wide                         *bart.Lite                        // active targets wider than one address, for bannedAt
	now                          time.Time                         // the latest time seen
	keep                         []stamp                           // per jail: how long a failure can still count
	scratch                      reason                            // reasons are written here (reasons.go)
	peer                         peerMarks                         // marks from other nodes (peer.go)
	log                          *slog.Logger
	stats                        Stats
}

// levelBits are the prefix lengths of the aggregation levels (agg) and of
// every scenario ban (carve: the levels and the widened one), per family.
type levelBits struct {
	agg4, agg6, carve4, carve6 []int
}

type jailState struct {
	Jail
	per   int    // failures one ring slot stands for
	ports uint16 // its Ports' id in Engine.portSets; 0: whole-host bans
	// failed counts the failures the jail's events reported (allowlisted
	// addresses left out; those of addresses already banned counted, as
	// fail2ban's "Total failed" counts them); banned the bans it decided.
	failed, banned uint64
}

// New validates cfg and returns an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = DefaultMaxTracked
	}
	if cfg.Escalation == (Escalation{}) {
		cfg.Escalation = DefaultEscalation
	}
	if cfg.Escalation.Factor < 1 {
		return nil, fmt.Errorf("escalation factor %v is below 1", cfg.Escalation.Factor)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg:           cfg,
		portSets:      event.PortSets{Max: maxNames},
		byName:        map[string]int{},
		byService:     map[string]int{},
		tracked:       newBoundedMap[addrKey](cfg.MaxTracked, hashAddrKey, func(r *ring) stamp { return r.last }),
		offenders:     newBoundedMap[prefixKey](max(cfg.MaxTracked/4, 1024), hashPrefixKey, func(o *offender) stamp { return o.bans.last }),
		users:         newBoundedMap[uint64](max(cfg.MaxTracked/10, 1024), hashU64, func(d *distinct[[16]byte]) stamp { return d.last }),
		prefixes:      newBoundedMap[prefixKey](max(cfg.MaxTracked/4, 1024), hashPrefixKey, func(d *distinct[uint32]) stamp { return d.last }),
		asns:          newBoundedMap[uint32](max(cfg.MaxTracked/100, 1024), hashU32, func(d *distinct[uint32]) stamp { return d.last }),
		good:          newBoundedMap[[16]byte](max(cfg.MaxTracked/10, 1024), hashAddr16, func(g *goodEntry) stamp { return g.last }),
		enum:          newBoundedMap[[16]byte](max(cfg.MaxTracked/10, 1024), hashAddr16, func(r *ring) stamp { return r.last }),
		goodFails:     newBoundedMap[goodFailKey](max(cfg.MaxTracked/10, 1024), hashGoodFail, func(r *ring) stamp { return r.last }),
		prefixUsers:   newBoundedMap[prefixKey](max(cfg.MaxTracked/10, 1024), hashPrefixKey, func(p *prefixUsers) stamp { return p.last }),
		homes:         newBoundedMap[homeKey](max(cfg.MaxTracked/10, 1024), hashHomeKey, func(t *stamp) stamp { return *t }),
		wideBans:      newBoundedMap[prefixKey](max(cfg.MaxTracked/100, 1024), hashPrefixKey, func(d *distinct[uint32]) stamp { return d.last }),
		carvePrefixes: map[prefixKey]uint32{},
		relayPrefixes: map[prefixKey]uint32{},
		active:        newBoundedMap[activeKey](cfg.MaxTracked, hashActiveKey, (*activeBan).end),
		pending:       newPendingBans(cfg.MaxTracked),
		wide:          &bart.Lite{},
		log:           cfg.Logger,
	}
	e.good.onEvict = e.forgetGood
	e.active.onEvict = e.forgetActive
	var err error
	if e.bits.agg4, e.bits.carve4, err = checkLevels("IPv4", cfg.Prefixes.V4, cfg.Prefixes.Widen4, 32); err != nil {
		return nil, err
	}
	if e.bits.agg6, e.bits.carve6, err = checkLevels("IPv6", cfg.Prefixes.V6, cfg.Prefixes.Widen6, 128); err != nil {
		return nil, err
	}
	if len(cfg.Jails) > math.MaxUint16 {
		return nil, errors.New("too many jails")
	}
	for i, j := range cfg.Jails {
		if j.Name == "" {
			return nil, fmt.Errorf("jail %d has no name", i+1)
		}
		if _, dup := e.byName[j.Name]; dup {
			return nil, fmt.Errorf("jail %q defined twice", j.Name)
		}
		if j.MaxRetry <= 0 {
			j.MaxRetry = DefaultMaxRetry
		}
		if j.FindTime <= 0 {
			j.FindTime = DefaultFindTime
		}
		if j.BanTime == 0 {
			j.BanTime = DefaultBanTime
		}
		e.byName[j.Name] = i
		for _, s := range j.Services {
			if _, taken := e.byService[s]; !taken {
				e.byService[s] = i
			}
		}
		j.Ports = event.NormalizePorts(j.Ports)
		e.jails = append(e.jails, jailState{Jail: j, per: (j.MaxRetry + ringSize - 1) / ringSize})
	}
	e.internJailPorts()
	e.setKeep()
	e.expireTables()
	return e, nil
}

// setKeep computes, per jail, how long a failure can still count: its
// findtime, or the slow scenario's longer window.
func (e *Engine) setKeep() {
	e.keep = make([]stamp, len(e.jails))
	for i, j := range e.jails {
		w := j.FindTime
		if e.cfg.Slow.Failures > 0 {
			w = max(w, e.cfg.Slow.Window)
		}
		e.keep[i] = durStamp(w)
	}
}

// expireTables gives every table the time its entries go stale: when the
// longest window that could still use them has passed (see expiry.go). The
// due functions read the configuration when they run, so Reconfigure's new
// windows apply to every entry; the wheels' buckets keep the spans they
// were made with, which only makes them coarser or finer.
func (e *Engine) expireTables() {
	c := &e.cfg
	keep := func(jail uint16, last stamp) stamp {
		if int(jail) >= len(e.keep) {
			return last.after(time.Second)
		}
		return last.add(e.keep[jail])
	}
	longest := stamp(1)
	for _, k := range e.keep {
		longest = max(longest, k)
	}
	e.tracked.expiring(longest, func(k addrKey, r *ring) stamp { return keep(k.jail, r.last) })
	e.goodFails.expiring(longest, func(k goodFailKey, r *ring) stamp { return keep(k.jail, r.last) })
	history := max(c.Escalation.Window, c.Recidive.Window)
	e.offenders.expiring(durStamp(history), func(_ prefixKey, o *offender) stamp {
		return o.bans.last.after(max(c.Escalation.Window, c.Recidive.Window))
	})
	e.users.expiring(durStamp(c.Spray.Window), func(_ uint64, d *distinct[[16]byte]) stamp { return d.last.after(c.Spray.Window) })
	e.prefixes.expiring(durStamp(c.Prefixes.Window), func(_ prefixKey, d *distinct[uint32]) stamp { return d.last.after(c.Prefixes.Window) })
	e.wideBans.expiring(durStamp(c.Prefixes.Window), func(_ prefixKey, d *distinct[uint32]) stamp { return d.last.after(c.Prefixes.Window) })
	e.asns.expiring(durStamp(c.ASNs.Window), func(_ uint32, d *distinct[uint32]) stamp { return d.last.after(c.ASNs.Window) })
	e.enum.expiring(durStamp(c.Enumeration.Window), func(_ [16]byte, r *ring) stamp { return r.last.after(c.Enumeration.Window) })
	e.prefixUsers.expiring(durStamp(c.KnownGood.TTL), func(_ prefixKey, p *prefixUsers) stamp { return p.last.after(c.KnownGood.TTL) })
	e.homes.expiring(durStamp(c.KnownGood.TTL), func(_ homeKey, t *stamp) stamp { return t.after(c.KnownGood.TTL) })
	e.good.expiring(durStamp(max(c.KnownGood.TTL, c.Relays.TTL)), func(_ [16]byte, g *goodEntry) stamp {
		if end := e.goodUntil(g); end != noEnd {
			return end
		}
		return 0
	})
	e.active.expiring(durStamp(max(c.Escalation.Max, c.Recidive.BanTime, 7*24*time.Hour)), func(_ activeKey, b *activeBan) stamp {
		if b.dur <= 0 {
			return 0
		}
		return b.end()
	})
}

func (e *Engine) jailFor(ev event.Event) (int, bool) {
	if ev.Jail != "" {
		i := e.jailIndex(ev.Jail)
		return i, i >= 0
	}
	i, ok := e.byService[ev.Service]
	return i, ok
}

// Tick advances the clock to now: deferred bans that are due take effect
// and are returned (to be enforced and persisted like Observe's), and the
// entries that went stale by now leave their tables: expired bans (kernel
// timeouts remove them from the firewall), counts past every window,
// clients no longer good. The cost is what expires (see expiry.go).
func (e *Engine) Tick(now time.Time) []event.Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.After(e.now) {
		e.now = now
	}
	decided := e.flushPending(nil, now)
	t := toStamp(now)
	e.active.expire(t)
	e.tracked.expire(t)
	e.goodFails.expire(t)
	e.offenders.expire(t)
	e.users.expire(t)
	e.prefixes.expire(t)
	e.wideBans.expire(t)
	e.asns.expire(t)
	e.enum.expire(t)
	e.prefixUsers.expire(t)
	e.homes.expire(t)
	e.good.expire(t)
	return decided
}

// Horizon is how old an event can be and still count: the longest window
// of any jail or scenario (a failure 11 hours old still counts towards the
// slow scenario's 12 hours). Older log lines, read late, are of no use.
func (e *Engine) Horizon() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := &e.cfg
	h := max(c.Spray.Window, c.Prefixes.Window, c.ASNs.Window, c.Enumeration.Window)
	if c.Slow.Failures > 0 {
		h = max(h, c.Slow.Window)
	}
	for _, j := range e.jails {
		h = max(h, j.FindTime)
	}
	return h
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Tracked = e.tracked.len()
	s.TrackedCap = e.tracked.cap
	s.Evicted = e.tracked.evicted
	s.Offenders = e.offenders.len()
	s.ActiveBans = e.active.len()
	s.ActiveEvicted = e.active.evicted
	s.KnownGood = e.good.len()
	s.HotUsers = e.users.len()
	s.Prefixes = e.prefixes.len()
	s.Surge = e.surge.on
	return s
}

// Jails returns the configured jails, with defaults filled in.
func (e *Engine) Jails() []Jail {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Jail, len(e.jails))
	for i, j := range e.jails {
		out[i] = j.Jail
	}
	return out
}
