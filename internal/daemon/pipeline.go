// Package daemon wires configuration, sources, filters, the engine, the
// store and the enforcers together and owns their lifecycle. It is the only
// package that knows all the others.
package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/filter/fail2ban"
	"github.com/rampart-dev/rampart/internal/geo"
	"github.com/rampart-dev/rampart/internal/logline"
)

// Pipeline is the decision path shared by `rampart run` and `rampart
// replay`: a line goes through the filters of the jails that read its
// program, the resulting events go to the one engine.
//
// Order of the pipeline (the one place it is written down):
//  1. logline parses the envelope (time, host, program, pid);
//  2. the Router offers the line to the matchers of the jails reading that
//     program; the first matching rule of the first jail wins;
//  3. the Event is tagged with its jail and observed by the engine, in the
//     order of checks written down once, at engine.Engine.Observe (in the
//     daemon, a failed login a live policy server already reported is left
//     out here: see liveFailures);
//  4. decisions go to the enforcer and the store (daemon), or are printed
//     (replay); both take this path through LineRouter.observe.
type Pipeline struct {
	Engine  *engine.Engine
	jails   []jailFilter
	shields bool // the shields' jails are in the engine (their events reach it)
	log     *slog.Logger
}

// jailFilter is one enabled jail's compiled filter.
type jailFilter struct {
	name   string
	filter *filter.Filter
	mode   string
	cfg    *config.Jail
}

// NewPipeline compiles the enabled jails of cfg and builds the engine. asn
// may be nil (no ASN database).
func NewPipeline(cfg *config.Config, reg *filter.Registry, allow engine.Allowlist, asn engine.ASNLookup, log *slog.Logger) (*Pipeline, error) {
	p, ecfg, err := compile(cfg, reg, allow, asn, false, log)
	if err != nil {
		return nil, err
	}
	e, err := engine.New(ecfg)
	if err != nil {
		return nil, err
	}
	p.Engine = e
	return p, nil
}

// reconfigured returns a pipeline for cfg that shares p's engine, and the
// engine configuration to give that engine (Engine.Reconfigure) when the
// daemon switches to it.
func (p *Pipeline) reconfigured(cfg *config.Config, reg *filter.Registry, allow engine.Allowlist, asn engine.ASNLookup, log *slog.Logger) (*Pipeline, engine.Config, error) {
	np, ecfg, err := compile(cfg, reg, allow, asn, p.shields, log)
	if err != nil {
		return nil, ecfg, err
	}
	np.Engine = p.Engine
	return np, ecfg, nil
}

// compile builds the filters of cfg's enabled jails and the engine's
// configuration (with the shields' jails when shields), leaving
// Pipeline.Engine nil.
func compile(cfg *config.Config, reg *filter.Registry, allow engine.Allowlist, asn engine.ASNLookup, shields bool, log *slog.Logger) (*Pipeline, engine.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.CheckFilters(FilterCheck(reg)); err != nil {
		return nil, engine.Config{}, err
	}
	p := &Pipeline{log: log, shields: shields}
	ecfg := EngineConfig(cfg)
	ecfg.Allow, ecfg.Logger = allow, log
	ecfg.BanLoopback = !cfg.Allow.Loopback
	if asn != nil && cfg.ASN.Database != "" {
		ecfg.ASNs.Lookup = asn
	}
	for _, name := range cfg.JailNames() {
		j := cfg.Jails[name]
		if !j.Enabled {
			continue
		}
		f, aliasMode, _ := reg.Lookup(j.Filter)
		mode := j.Mode
		if mode == "" {
			mode = aliasMode
		}
		weights := map[event.Kind]int{}
		for _, ws := range []map[string]int{cfg.Defaults.Weights, j.Weights} {
			for k, w := range ws {
				kind, err := event.ParseKind(k)
				if err != nil {
					return nil, engine.Config{}, fmt.Errorf("jail %q: weights: %w", name, err)
				}
				weights[kind] = w
			}
		}
		p.jails = append(p.jails, jailFilter{name: name, filter: f, mode: mode, cfg: j})
		ecfg.Jails = append(ecfg.Jails, engine.Jail{
			Name:     name,
			Services: []string{f.Service},
			MaxRetry: j.MaxRetry,
			FindTime: j.FindTime.D(),
			BanTime:  j.BanTime.D(),
			Weights:  weights,
			Ports:    j.PortRanges(),
		})
	}
	if shields {
		ecfg.Jails = append(ecfg.Jails, shieldJails(cfg)...)
	}
	return p, ecfg, nil
}

// maxFindTime is the longest window of any scenario (see
// engine.Engine.Horizon): older lines cannot count.
func (p *Pipeline) maxFindTime() time.Duration { return p.Engine.Horizon() }

// OpenASN opens the ASN database the configuration names, or returns nil
// when none is configured. A database that cannot be opened is logged and
// the scenario left off: detection must not stop for want of enrichment.
func OpenASN(cfg *config.Config, log *slog.Logger) engine.ASNLookup {
	if cfg.ASN.Database == "" {
		return nil
	}
	db, err := geo.Open("", cfg.ASN.Database)
	if err != nil {
		if log != nil {
			log.Error("ASN aggregation off", "err", err)
		}
		return nil
	}
	return db
}

// EngineConfig translates the configuration's scenario settings.
func EngineConfig(cfg *config.Config) engine.Config {
	ec := engine.Config{
		MaxTracked: cfg.Daemon.MaxTracked,
		Escalation: engine.Escalation{Factor: cfg.Escalation.Factor, Max: cfg.Escalation.Max.D(), Window: cfg.Escalation.Window.D()},
		Recidive:   engine.Recidive{Bans: cfg.Recidive.Bans, Window: cfg.Recidive.Window.D(), BanTime: cfg.Recidive.BanTime.D()},
		KnownGood:  engine.KnownGood{TTL: cfg.KnownGood.TTL.D(), Grace: cfg.KnownGood.Grace.D(), Factor: cfg.KnownGood.Factor},
		ASNs:       engine.ASNs{Addresses: cfg.ASN.Addresses, Window: cfg.ASN.Window.D(), MaxRetry: cfg.ASN.MaxRetry},
		Peers:      engine.Peers{MaxRetry: cfg.Fleet.SuspectMaxRetry},
	}
	if cfg.Enumerate.Enabled {
		ec.Enumeration = engine.Enumeration{Recipients: cfg.Enumerate.Recipients, Window: cfg.Enumerate.Window.D()}
	}
	if cfg.Spray.Enabled {
		ec.Spray = engine.Spray{Addresses: cfg.Spray.Addresses, Window: cfg.Spray.Window.D(), BanTime: cfg.Spray.BanTime.D()}
	}
	if cfg.Prefixes.Enabled {
		levels := func(ls []config.Level) []engine.Level {
			var out []engine.Level
			for _, l := range ls {
				out = append(out, engine.Level{Bits: l.Bits, Addresses: l.Addresses})
			}
			return out
		}
		widen := func(w config.Widen) engine.Widen {
			return engine.Widen{Bits: w.Bits, Prefixes: w.Prefixes, BanTime: w.BanTime.D()}
		}
		ec.Prefixes = engine.Prefixes{V4: levels(cfg.Prefixes.IPv4), V6: levels(cfg.Prefixes.IPv6), Window: cfg.Prefixes.Window.D(),
			BanTime: cfg.Prefixes.BanTime.D(), Suspect: cfg.Prefixes.SuspectMaxRetry,
			Widen4: widen(cfg.Prefixes.WidenIPv4), Widen6: widen(cfg.Prefixes.WidenIPv6)}
	}
	if cfg.Relays.Enabled {
		ec.Relays = engine.Relays{TTL: cfg.Relays.TTL.D(), Factor: cfg.Relays.Factor}
	}
	if cfg.Surge.Enabled {
		ec.Surge = engine.Surge{Factor: cfg.Surge.Factor, MinRate: cfg.Surge.MinRate, Hold: cfg.Surge.Hold.D(), MaxRetry: cfg.Surge.MaxRetry}
	}
	if cfg.Slow.Enabled {
		ec.Slow = engine.Slow{Failures: cfg.Slow.Failures, Window: cfg.Slow.Window.D(), BanTime: cfg.Slow.BanTime.D()}
	}
	return ec
}

// FilterCheck adapts a filter registry to config.CheckFilters.
func FilterCheck(reg *filter.Registry) config.FilterCheck {
	return func(name, mode string) error {
		f, _, ok := reg.Lookup(name)
		if !ok {
			return fmt.Errorf("unknown filter %q (see 'rampart filters')", name)
		}
		if mode != "" && len(f.Modes) > 0 {
			if _, err := f.NewMatcher(mode); err != nil {
				return err
			}
		}
		return nil
	}
}

// Matchers returns fresh matchers for the jails selected by keep (all when
// keep is nil). Each reading goroutine needs its own: matchers keep session
// context.
func (p *Pipeline) Matchers(keep func(j *config.Jail) bool) (*LineRouter, error) {
	lr := &LineRouter{p: p}
	var ms []*filter.Matcher
	for _, j := range p.jails {
		if keep != nil && !keep(j.cfg) {
			continue
		}
		m, err := j.filter.NewMatcher(j.mode)
		if err != nil {
			return nil, fmt.Errorf("jail %q: %w", j.name, err)
		}
		ms = append(ms, m)
		lr.jails = append(lr.jails, j.name)
	}
	lr.router = filter.NewRouter(ms...)
	return lr, nil
}

// JailNames lists the enabled jails.
func (p *Pipeline) JailNames() []string {
	var names []string
	for _, j := range p.jails {
		names = append(names, j.name)
	}
	return names
}

// LineRouter turns lines into events for one reading goroutine.
type LineRouter struct {
	p      *Pipeline
	router *filter.Router
	jails  []string // the jail of each of router's matchers
}

// Observe runs a line through the filters and the engine and returns the
// event it stood for (ok false if none) and the decisions it caused. An
// event standing for several (a line completing earlier lines of its
// session) is observed that many times.
func (lr *LineRouter) Observe(l *logline.Line) (ev event.Event, ok bool, ds []event.Decision) {
	ev, n, ds := lr.observe(l, nil)
	return ev, n > 0, ds
}

// observe is Observe, the path every live line takes (replay takes its two
// halves, match and apply, apart). Every jail whose filter matches the
// line counts it, as in fail2ban (see filter.Router.MatchAll). It returns
// the first jail's event and how many events the line stood for there (0:
// none), and leaves out of the engine one occurrence of that event when
// counted reports it was already counted elsewhere (by a live policy
// server).
func (lr *LineRouter) observe(l *logline.Line, counted func(event.Event) bool) (ev event.Event, n int, ds []event.Decision) {
	var buf [2]jailEvent // most lines match one jail at most
	found := lr.match(l, buf[:0])
	if len(found) == 0 {
		return event.Event{}, 0, nil
	}
	return found[0].ev, found[0].n, lr.apply(nil, found, counted)
}

// match appends to found the events of l: one for each jail whose filter
// matches it.
func (lr *LineRouter) match(l *logline.Line, found []jailEvent) []jailEvent {
	lr.router.MatchAll(l, func(mt filter.Match, m int) {
		found = append(found, jailEvent{n: mt.Count})
		f := &found[len(found)-1]
		mt.EventInto(&f.ev, l)
		f.ev.Jail = lr.jails[m]
	})
	return found
}

// apply runs the events match found for one line through the engine, as
// observe describes, and appends to ds the decisions they caused.
func (lr *LineRouter) apply(ds []event.Decision, found []jailEvent, counted func(event.Event) bool) []event.Decision {
	for i := range found {
		f := &found[i]
		c := f.n
		if i == 0 && counted != nil && counted(f.ev) {
			c--
		}
		for range c {
			ds = lr.p.Engine.ObserveAppend(ds, f.ev)
		}
	}
	return ds
}

// jailEvent is one jail's event for a line, and how many it stands for.
type jailEvent struct {
	ev event.Event
	n  int
}

// Describe renders a decision for people: "ban 192.0.2.1 for 10m
// (ip-failures, jail sshd: …)", "… until revoked" for a permanent ban.
func Describe(d event.Decision) string { return string(AppendDescription(nil, d)) }

// AppendDescription appends Describe's text for d to b (replay writes one
// for every decision).
func AppendDescription(b []byte, d event.Decision) []byte {
	b = append(b, d.Action.String()...)
	b = appendTarget(append(b, ' '), d.Target)
	switch {
	case d.Duration > 0:
		b = append(b, " for "...)
		b = config.AppendDuration(b, d.Duration)
	case d.Action == event.Ban:
		b = append(b, " until revoked"...)
	}
	b = append(b, " ("...)
	b = append(b, d.Scenario...)
	if d.Jail != "" {
		b = append(b, ", jail "...)
		b = append(b, d.Jail...)
	}
	b = append(b, ": "...)
	b = append(b, d.Reason...)
	return append(b, ')')
}

// Target prints a single-address prefix as the bare address.
func Target(p netip.Prefix) string { return string(appendTarget(nil, p)) }

func appendTarget(b []byte, p netip.Prefix) []byte {
	if p.IsSingleIP() {
		return event.AppendAddr(b, p.Addr())
	}
	return event.AppendPrefix(b, p)
}

// Filters returns the filters cfg can name: the built-in ones, the
// server's own ([filters] dir) and fail2ban's by name ([filters]
// fail2ban_dir).
func Filters(cfg *config.Config) (*filter.Registry, error) {
	reg, err := filter.Builtin()
	if err != nil {
		return nil, err
	}
	if err := fail2ban.Extend(reg, cfg.Filters.Dir, cfg.Filters.Fail2banDir); err != nil {
		return nil, err
	}
	return reg, nil
}
