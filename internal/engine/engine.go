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
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Jail holds the per-address thresholds of one jail, as fail2ban users know them.
type Jail struct {
	Name     string
	Services []string           // services whose events count here when Event.Jail is empty
	MaxRetry int                // failures within FindTime that ban an address
	FindTime time.Duration      // the sliding window
	BanTime  time.Duration      // the first ban's duration; escalation lengthens later ones
	Weights  map[event.Kind]int // failures one event of a kind counts for; default 1, 0 ignores the kind
}

// Escalation lengthens the bans of repeat offenders: the n-th ban within
// Window lasts BanTime × Factor^(n-1), at most Max.
type Escalation struct {
	Factor float64
	Max    time.Duration
	Window time.Duration
}

// Recidive bans for BanTime an address banned Bans times within Window, like
// fail2ban's recidive jail but without re-reading its own log.
type Recidive struct {
	Bans    int // 0 disables
	Window  time.Duration
	BanTime time.Duration
}

// Allowlist says which addresses must never be banned.
type Allowlist interface {
	Contains(netip.Addr) bool
	Overlaps(netip.Prefix) bool // the prefix contains an allowed address
}

// Config configures an Engine. Zero values take the defaults of DefaultConfig.
type Config struct {
	Jails      []Jail
	MaxTracked int // cap on tracked (address, jail) keys; also bounds the other tables
	Escalation Escalation
	Recidive   Recidive
	Allow      Allowlist    // nil allows nothing
	Logger     *slog.Logger // nil discards
}

// Defaults for fields left zero.
const (
	DefaultMaxTracked = 1_000_000
	DefaultMaxRetry   = 5
	DefaultFindTime   = 10 * time.Minute
	DefaultBanTime    = 10 * time.Minute
)

// DefaultEscalation doubles each repeat ban up to a week, remembering bans for 30 days.
var DefaultEscalation = Escalation{Factor: 2, Max: 7 * 24 * time.Hour, Window: 30 * 24 * time.Hour}

// DefaultRecidive bans for a week an address banned 5 times in a day.
var DefaultRecidive = Recidive{Bans: 5, Window: 24 * time.Hour, BanTime: 7 * 24 * time.Hour}

// Stats are the engine's counters.
type Stats struct {
	Tracked     int    // (address, jail) keys with recent failures
	TrackedCap  int    // the cap on Tracked
	Evicted     uint64 // keys forgotten because the table was full
	Offenders   int    // addresses with a ban history
	ActiveBans  int
	Events      uint64 // events observed
	Ignored     uint64 // events that could not count: no address, unknown jail, weight 0
	Allowlisted uint64 // events from allowlisted addresses
	WhileBanned uint64 // events from addresses already banned (log lag, other ports)
	Decisions   uint64
}

// Engine holds detection state. It is safe for concurrent use.
type Engine struct {
	mu        sync.Mutex
	cfg       Config
	jails     []jailState
	byName    map[string]int
	byService map[string]int
	tracked   *boundedMap[addrKey, ring]
	offenders *boundedMap[[16]byte, offender]
	active    map[netip.Prefix]event.Decision
	now       time.Time // the latest time seen
	lastPrune time.Time
	log       *slog.Logger
	stats     Stats
}

type jailState struct {
	Jail
	per int // failures one ring slot stands for
}

// offender is an address's recent ban history.
type offender struct {
	bans ring
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
		cfg:       cfg,
		byName:    map[string]int{},
		byService: map[string]int{},
		tracked:   newBoundedMap[addrKey](cfg.MaxTracked, func(r *ring) stamp { return r.last }),
		offenders: newBoundedMap[[16]byte](max(cfg.MaxTracked/4, 1024), func(o *offender) stamp { return o.bans.last }),
		active:    map[netip.Prefix]event.Decision{},
		log:       cfg.Logger,
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
		if j.BanTime <= 0 {
			j.BanTime = DefaultBanTime
		}
		e.byName[j.Name] = i
		for _, s := range j.Services {
			if _, taken := e.byService[s]; !taken {
				e.byService[s] = i
			}
		}
		e.jails = append(e.jails, jailState{Jail: j, per: (j.MaxRetry + ringSize - 1) / ringSize})
	}
	return e, nil
}

// Observe takes one event and returns the decisions it triggers: usually
// none, a ban of the event's address when a threshold is crossed. Events
// without a time are dated at the latest time seen. Decisions returned are
// already recorded as active; the caller enforces and persists them.
func (e *Engine) Observe(ev event.Event) []event.Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.Events++
	if ev.Time.IsZero() {
		ev.Time = e.now
	} else if ev.Time.After(e.now) {
		e.now = ev.Time
	}
	ji, ok := e.jailFor(ev)
	if !ok || !ev.Addr.IsValid() {
		e.stats.Ignored++
		return nil
	}
	addr := ev.Addr.Unmap()
	if e.cfg.Allow != nil && e.cfg.Allow.Contains(addr) {
		e.stats.Allowlisted++
		return nil
	}
	if !ev.Kind.Failure() {
		return nil
	}
	if _, banned := e.bannedAt(addr, ev.Time); banned {
		e.stats.WhileBanned++
		return nil
	}
	j := &e.jails[ji]
	weight := 1
	if w, set := j.Weights[ev.Kind]; set {
		weight = w
	}
	if weight <= 0 {
		e.stats.Ignored++
		return nil
	}
	k := keyOf(addr, ji)
	r := e.tracked.slot(k)
	t := toStamp(ev.Time)
	r.add(t, weight, j.per)
	since := toStamp(ev.Time.Add(-j.FindTime))
	if r.count(since, j.per) < j.MaxRetry {
		e.tracked.m[k] = r
		return nil
	}
	delete(e.tracked.m, k)
	d := e.banLocked(event.AddrPrefix(addr), ev.Time, j.BanTime, "ip-failures",
		fmt.Sprintf("%d failures within %s (last: %s%s via %s)", j.MaxRetry, fmtDuration(j.FindTime), ev.Kind, userNote(ev.User), ev.Service), j.Name)
	return []event.Decision{d}
}

func userNote(u string) string {
	if u == "" {
		return ""
	}
	if len(u) > 64 {
		u = u[:64]
	}
	return fmt.Sprintf(" for %q", u)
}

func (e *Engine) jailFor(ev event.Event) (int, bool) {
	if ev.Jail != "" {
		i, ok := e.byName[ev.Jail]
		return i, ok
	}
	i, ok := e.byService[ev.Service]
	return i, ok
}

// banLocked records a ban of target at t, lengthened for repeat offenders,
// and returns the decision.
func (e *Engine) banLocked(target netip.Prefix, t time.Time, base time.Duration, scenario, reason, jail string) event.Decision {
	dur, scenario, reason := e.escalate(target, t, base, scenario, reason)
	d := event.Decision{
		Target:   target,
		Action:   event.Ban,
		Start:    t,
		Duration: dur,
		Scenario: scenario,
		Reason:   reason,
		Jail:     jail,
		Origin:   "local",
	}
	e.active[target] = d
	e.stats.Decisions++
	e.log.Debug("ban", "addr", target.String(), "scenario", scenario, "duration_s", int64(dur.Seconds()), "jail", jail)
	return d
}

// escalate applies ban-time escalation and recidive to a new ban and
// records it in the target's history.
func (e *Engine) escalate(target netip.Prefix, t time.Time, base time.Duration, scenario, reason string) (time.Duration, string, string) {
	key := target.Addr().As16()
	o := e.offenders.slot(key)
	now := toStamp(t)
	prior := 0
	if w := e.cfg.Escalation.Window; w > 0 {
		prior = o.bans.within(toStamp(t.Add(-w)))
	}
	recent := 0
	if rc := e.cfg.Recidive; rc.Bans > 0 {
		recent = o.bans.within(toStamp(t.Add(-rc.Window)))
	}
	o.bans.add(now, 1, 1)
	e.offenders.m[key] = o

	dur := base
	if prior > 0 {
		f := math.Pow(e.cfg.Escalation.Factor, float64(prior))
		if scaled := float64(base) * f; scaled < float64(e.cfg.Escalation.Max) {
			dur = time.Duration(scaled)
		} else {
			dur = max(e.cfg.Escalation.Max, base)
		}
		reason += fmt.Sprintf("; ban %d within %s", prior+1, fmtDuration(e.cfg.Escalation.Window))
	}
	if rc := e.cfg.Recidive; rc.Bans > 0 && recent+1 >= rc.Bans && rc.BanTime > dur {
		return rc.BanTime, "recidive", fmt.Sprintf("banned %d times within %s; %s", recent+1, fmtDuration(rc.Window), reason)
	}
	return dur, scenario, reason
}

// Ban records a ban decided outside the engine (the CLI, a peer) and returns
// it as recorded. It refuses allowlisted targets.
func (e *Engine) Ban(d event.Decision) (event.Decision, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d.Target = d.Target.Masked()
	if err := e.checkAllowed(d.Target); err != nil {
		return d, err
	}
	if d.Action == 0 {
		d.Action = event.Ban
	}
	if d.Start.IsZero() {
		d.Start = e.now
	}
	e.active[d.Target] = d
	e.stats.Decisions++
	return d, nil
}

// ErrAllowlisted is returned when asked to ban an allowlisted target.
var ErrAllowlisted = errors.New("target is allowlisted")

func (e *Engine) checkAllowed(p netip.Prefix) error {
	if e.cfg.Allow != nil && e.cfg.Allow.Overlaps(p) {
		return fmt.Errorf("%s: %w", p, ErrAllowlisted)
	}
	return nil
}

// Unban removes an active decision and forgets the target's recent
// failures. It reports whether the target was banned.
func (e *Engine) Unban(p netip.Prefix) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p = p.Masked()
	_, ok := e.active[p]
	delete(e.active, p)
	if p.IsSingleIP() {
		for ji := range e.jails {
			delete(e.tracked.m, keyOf(p.Addr(), ji))
		}
	}
	return ok
}

// Restore loads decisions that were active before a restart (from the store)
// and the ban history used for escalation. Decisions for allowlisted
// targets are dropped and returned so the caller can revoke them.
func (e *Engine) Restore(active []event.Decision, history []event.Decision) (dropped []event.Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range history {
		if d.Action != event.Ban {
			continue
		}
		key := d.Target.Addr().As16()
		o := e.offenders.slot(key)
		o.bans.add(toStamp(d.Start), 1, 1)
		e.offenders.m[key] = o
	}
	for _, d := range active {
		d.Target = d.Target.Masked()
		if e.checkAllowed(d.Target) != nil {
			dropped = append(dropped, d)
			continue
		}
		e.active[d.Target] = d
		if d.Start.After(e.now) {
			e.now = d.Start
		}
	}
	return dropped
}

// Tick advances housekeeping to now: expired bans are forgotten and stale
// failure counters pruned. It returns the decisions that expired, for the
// caller's records (kernel timeouts remove them from the firewall).
func (e *Engine) Tick(now time.Time) []event.Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.After(e.now) {
		e.now = now
	}
	var expired []event.Decision
	for p, d := range e.active {
		if !d.Active(now) && !now.Before(d.Start) {
			expired = append(expired, d)
			delete(e.active, p)
		}
	}
	slices.SortFunc(expired, func(a, b event.Decision) int { return a.End().Compare(b.End()) })
	if now.Sub(e.lastPrune) >= time.Minute {
		e.lastPrune = now
		cut := make([]stamp, len(e.jails))
		for i, j := range e.jails {
			cut[i] = toStamp(now.Add(-j.FindTime))
		}
		for k, r := range e.tracked.m {
			if int(k.jail) < len(cut) && r.last < cut[k.jail] {
				delete(e.tracked.m, k)
			}
		}
		if w := max(e.cfg.Escalation.Window, e.cfg.Recidive.Window); w > 0 {
			cutoff := toStamp(now.Add(-w))
			e.offenders.prune(func(o *offender) bool { return o.bans.last < cutoff })
		}
	}
	return expired
}

// Banned reports whether addr is covered by an active decision at t, and which.
func (e *Engine) Banned(addr netip.Addr, t time.Time) (event.Decision, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bannedAt(addr.Unmap(), t)
}

func (e *Engine) bannedAt(addr netip.Addr, t time.Time) (event.Decision, bool) {
	if d, ok := e.active[event.AddrPrefix(addr)]; ok && d.Active(t) {
		return d, true
	}
	return event.Decision{}, false
}

// Active returns the decisions in force at t, sorted by start.
func (e *Engine) Active(t time.Time) []event.Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ds []event.Decision
	for _, d := range e.active {
		if d.Active(t) {
			ds = append(ds, d)
		}
	}
	slices.SortFunc(ds, func(a, b event.Decision) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Target.String(), b.Target.String())
	})
	return ds
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Tracked = len(e.tracked.m)
	s.TrackedCap = e.tracked.cap
	s.Evicted = e.tracked.evicted
	s.Offenders = len(e.offenders.m)
	s.ActiveBans = len(e.active)
	return s
}

// Jails returns the configured jails, with defaults filled in.
func (e *Engine) Jails() []Jail {
	out := make([]Jail, len(e.jails))
	for i, j := range e.jails {
		out[i] = j.Jail
	}
	return out
}

// fmtDuration prints durations the way people write them: 10m, 1h30m, 7d.
func fmtDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
