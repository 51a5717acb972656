package firewall

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Log is the dry-run enforcer: it logs what it would do and remembers it,
// and never touches the system. Each ban is logged at Info with the message
// "ban" and keys addr, ports (a per-port ban's, as "22/tcp,465/tcp"; empty
// for a whole-host ban), scenario, duration_s (0: no timeout), jail and
// reason;
// revocations as "unban" with addr; allowlist replacements as "allowlist"
// with entries; carve-outs as "carve" with addr and until (RFC 3339, empty
// for none), their end as "uncarve" with addr.
//
// Active returns the bans applied and neither revoked nor expired, as a
// kernel's firewall would (NFTables.Active): targets and ports, Start now
// and Duration the time left; Scenario, Reason, Jail and Origin are not
// kept (a flood's bans would hold their reasons' text twice, here and in
// the store). Re-applying a target replaces its end. Log never fails
// except for an invalid target (Apply, Revoke, SetAllow: nothing is
// changed), a cancelled context, or use after Close. It is safe for
// concurrent use.
type Log struct {
	mu     sync.Mutex
	log    *slog.Logger
	now    func() time.Time
	active map[logKey]logBan
	ports  event.PortSets // the port lists of the bans in active
	want   intent         // carve-outs only
	pruned int            // len(active) after the last prune
	closed bool
}

// NewLog returns a dry-run enforcer logging to logger (nil discards).
func NewLog(logger *slog.Logger) *Log {
	return &Log{log: loggerOrDiscard(logger), now: time.Now, active: map[logKey]logBan{}, want: newIntent()}
}

// logKey tells the bans Log keeps apart: a target and its ports, by their
// index in the Log's port sets. 24 bytes and no pointer: a flood's bans are
// kept in a map the garbage collector need not scan.
type logKey struct {
	target targetKey
	ports  uint32 // its id in Log.ports; 0: the whole host
}

// logBan is what Log keeps of a ban besides its key: 24 bytes.
type logBan struct {
	start  int64         // Unix nanoseconds
	dur    time.Duration // 0: no timeout
	action event.Action
}

// decision is the ban k holds, as it was applied.
func (l *Log) decision(b logBan, k logKey) event.Decision {
	return event.Decision{Target: k.target.prefix(), Action: b.action, Ports: l.ports.List(k.ports), Start: time.Unix(0, b.start), Duration: b.dur}
}

// live reports whether b is in force at now (event.Decision.Active).
func (b logBan) live(now time.Time) bool {
	at := now.UnixNano()
	return at >= b.start && (b.dur <= 0 || at < b.start+int64(b.dur))
}

func (l *Log) begin(ctx context.Context) error {
	if l.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// prune forgets the expired bans.
func (l *Log) prune(now time.Time) {
	maps.DeleteFunc(l.active, func(_ logKey, b logBan) bool { return !b.live(now) })
	l.pruned = len(l.active)
}

// pruneSome prunes once the bans have doubled since the last prune (as
// intent does): a flood of bans costs O(1) per ban, not a walk per batch.
func (l *Log) pruneSome(now time.Time) {
	if len(l.active) > 2*l.pruned+1024 {
		l.prune(now)
	}
}

// Apply logs and remembers each Decision with Action Ban (see the package
// doc for Start, zero Duration and other actions).
func (l *Log) Apply(ctx context.Context, ds []event.Decision) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.begin(ctx); err != nil {
		return fmt.Errorf("log apply: %w", err)
	}
	now := l.now()
	bans, _, err := bansFrom(ds, now)
	if err != nil {
		return fmt.Errorf("log apply: %w", err)
	}
	l.pruneSome(now)
	logged := l.log.Enabled(ctx, slog.LevelInfo) // the attributes cost text for every ban
	for _, b := range bans {
		ports, _ := l.ports.ID(b.ports) // no Max: a Log keeps every list
		l.active[logKey{keyOf(b.target), ports}] = logBan{action: b.d.Action, start: now.UnixNano(), dur: b.timeout}
		if !logged {
			continue
		}
		l.log.LogAttrs(ctx, slog.LevelInfo, "ban",
			slog.String("addr", b.target.String()),
			slog.String("ports", event.FormatPorts(b.ports)),
			slog.String("scenario", b.d.Scenario),
			slog.Int64("duration_s", int64((b.timeout+time.Second-1)/time.Second)),
			slog.String("jail", b.d.Jail),
			slog.String("reason", b.d.Reason))
	}
	return nil
}

// Revoke logs and forgets each target (an address's per-port bans with its
// whole-host one); absent ones are logged too and are not an error.
func (l *Log) Revoke(ctx context.Context, targets []netip.Prefix) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.begin(ctx); err != nil {
		return fmt.Errorf("log revoke: %w", err)
	}
	ts, err := normalizePrefixes(targets)
	if err != nil {
		return fmt.Errorf("log revoke: %w", err)
	}
	l.pruneSome(l.now())
	// One walk over the bans for all targets (ts holds each once), not one
	// per target.
	was := make(map[targetKey]bool, len(ts))
	for _, t := range ts {
		was[keyOf(t)] = false
	}
	for k := range l.active {
		if _, ok := was[k.target]; ok {
			was[k.target] = true
			delete(l.active, k)
		}
	}
	for _, t := range ts {
		l.log.LogAttrs(ctx, slog.LevelInfo, "unban", slog.String("addr", t.String()), slog.Bool("was_active", was[keyOf(t)]))
	}
	return nil
}

// Active returns the remembered bans that have not expired.
func (l *Log) Active(ctx context.Context) ([]event.Decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.begin(ctx); err != nil {
		return nil, fmt.Errorf("log active: %w", err)
	}
	now := l.now()
	l.prune(now)
	return activeDecisions(l.active, now, l.decision), nil
}

// SetAllow logs the size of the new allowlist.
func (l *Log) SetAllow(ctx context.Context, allow []netip.Prefix) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.begin(ctx); err != nil {
		return fmt.Errorf("log set allow: %w", err)
	}
	ps, err := normalizePrefixes(allow)
	if err != nil {
		return fmt.Errorf("log set allow: %w", err)
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "allowlist", slog.Int("entries", len(ps)))
	return nil
}

// Carve logs and remembers each carve-out (see CarveOut); it never fails
// but for an invalid address, a cancelled context or use after Close.
func (l *Log) Carve(ctx context.Context, cs []CarveOut) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.begin(ctx); err != nil {
		return fmt.Errorf("log carve: %w", err)
	}
	now := l.now()
	carves, err := carvesFrom(cs, now)
	if err != nil {
		return fmt.Errorf("log carve: %w", err)
	}
	l.want.addCarves(carves, now)
	for _, c := range carves {
		until := ""
		if !c.until.IsZero() {
			until = c.until.UTC().Format(time.RFC3339)
		}
		l.log.LogAttrs(ctx, slog.LevelInfo, "carve", slog.String("addr", c.addr.String()), slog.String("until", until))
	}
	return nil
}

// Uncarve logs and forgets each carve-out.
func (l *Log) Uncarve(ctx context.Context, addrs []netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.begin(ctx); err != nil {
		return fmt.Errorf("log uncarve: %w", err)
	}
	as, err := normalizeAddrs(addrs)
	if err != nil {
		return fmt.Errorf("log uncarve: %w", err)
	}
	for _, a := range as {
		delete(l.want.carves, a)
		l.log.LogAttrs(ctx, slog.LevelInfo, "uncarve", slog.String("addr", a.String()))
	}
	return nil
}

// CarveOuts returns the remembered carve-outs that have not ended.
func (l *Log) CarveOuts(ctx context.Context) ([]CarveOut, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.begin(ctx); err != nil {
		return nil, fmt.Errorf("log carve-outs: %w", err)
	}
	return liveCarves(l.want.carves, l.now()), nil
}

// Stats counts the remembered carve-outs; a dry run repairs nothing.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{CarvedOut: l.want.carvedOut(l.now())}
}

// Close forgets everything; later calls return ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed, l.active, l.ports, l.want = true, nil, event.PortSets{}, newIntent()
	return nil
}
