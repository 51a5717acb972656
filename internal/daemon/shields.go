package daemon

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/nflog"
)

// The shields (firewall.Shields) limit connections in the kernel; what they
// drop, and the host's answers to probes of closed ports, come back through
// an NFLOG group and become events in two jails of their own: flood
// (protocol-abuse, service "shield") and portscan (probe, service
// "portscan"). The shields exist only with the nftables enforcer; they are
// installed when the daemon starts, follow reloads (an empty configuration
// removes them), and are reconciled with the enforcer (keepFirewall).

// The shield jails' names and their events' services.
const (
	floodJail       = "flood"
	portscanJail    = "portscan"
	floodService    = "shield"
	portscanService = "portscan"
)

// shieldJails returns the engine jails the shields' events count in, when
// the shields and each jail are enabled.
func shieldJails(cfg *config.Config) []engine.Jail {
	if !cfg.Shields.Enabled {
		return nil
	}
	var js []engine.Jail
	for _, j := range []struct {
		name, service string
		c             config.ShieldJail
	}{{floodJail, floodService, cfg.Shields.Flood}, {portscanJail, portscanService, cfg.Shields.Portscan}} {
		if j.c.Enabled {
			js = append(js, engine.Jail{Name: j.name, Services: []string{j.service},
				MaxRetry: j.c.MaxRetry, FindTime: j.c.FindTime.D(), BanTime: j.c.BanTime.D()})
		}
	}
	return js
}

// shieldsConfig maps [shields] onto the firewall's shields; disabled, it
// is the empty configuration, which removes them.
func shieldsConfig(cfg *config.Config) firewall.ShieldsConfig {
	s := cfg.Shields
	if !s.Enabled {
		return firewall.ShieldsConfig{}
	}
	out := firewall.ShieldsConfig{
		MaxSources: s.MaxSources,
		LogGroup:   uint16(s.LogGroup),
		LogDrops:   s.Flood.Enabled,
		Portscan:   s.Portscan.Enabled,
	}
	for _, g := range s.ShieldGroups() {
		if !g.Enabled {
			continue
		}
		sg := firewall.ShieldGroup{Name: g.Name, Rate: g.Rate, Burst: g.Burst, Conns: g.Conns,
			NetConns: g.NetConns, SYNRate: g.SYNRate, SYNBurst: g.SYNBurst}
		for _, p := range g.Ports {
			sg.Ports = append(sg.Ports, uint16(p))
		}
		out.Groups = append(out.Groups, sg)
	}
	return out
}

// shieldEvents turns the shields' NFLOG messages into events.
type shieldEvents struct {
	reader *nflog.Reader // nil until bound
	read   atomic.Bool   // readShieldLog took the reader (and closes it)
	probes probeMemory   // closed ports each prober was counted for
	floods probeMemory   // the last second each flooder was counted in

	events, duplicates, foreign atomic.Uint64
}

// setupShields installs the shields when the enforcer is nftables, and
// binds their NFLOG group when they send events. A failure is logged: the
// daemon runs on without them.
func (d *Daemon) setupShields(ctx context.Context) {
	cfg := d.cfg
	nft, ok := d.enf.(*firewall.NFTables)
	if !ok {
		if cfg.Shields.Enabled {
			d.log.Warn("shields off: they need the nftables firewall backend", "backend", d.opt.EnforcerName)
		}
		return
	}
	scfg := shieldsConfig(cfg)
	scfg.Logger = d.log
	sh, err := firewall.NewShieldsFor(ctx, nft, scfg)
	if err != nil {
		d.log.Error("shields off: installing them failed", "err", err)
		d.enfErr.note(wrapErr("installing the shields", err))
		return
	}
	d.shields = sh
	if !cfg.Shields.Enabled || !cfg.Shields.Flood.Enabled && !cfg.Shields.Portscan.Enabled {
		return
	}
	r, err := nflog.Open(nflog.Config{Group: uint16(cfg.Shields.LogGroup), NetNSFd: sh.NetNSFd()})
	if err != nil {
		d.log.Error("shields: their events are off: cannot read the NFLOG group (another program may hold it; see shields.log_group)",
			"log_group", cfg.Shields.LogGroup, "err", err)
		return
	}
	d.shieldEv.reader = r
	d.log.Info("shields installed", "groups", len(scfg.Groups), "log_group", cfg.Shields.LogGroup)
}

// readShieldLog reads the shields' NFLOG group until ctx ends.
func (d *Daemon) readShieldLog(ctx context.Context) {
	r := d.shieldEv.reader
	if r == nil {
		return
	}
	d.shieldEv.read.Store(true)
	defer r.Close()
	err := r.Run(ctx, func(p nflog.Packet) { d.shieldPacket(p, time.Now()) })
	if err != nil {
		d.log.Error("shields: reading their NFLOG group stopped; their events are off until a restart", "err", err)
	}
}

// shieldPacket turns one logged packet into an event for the engine: a
// drop blames the packet's source, a closed-port answer its destination
// (the prober), once per port within the portscan jail's findtime.
func (d *Daemon) shieldPacket(p nflog.Packet, now time.Time) {
	_, kind, ok := firewall.ParseShieldPrefix(p.Prefix)
	h, hok := nflog.ParseHeaders(p.Payload)
	if !ok || !hok {
		d.shieldEv.foreign.Add(1)
		return
	}
	sh := d.currentConfig().Shields
	var ev event.Event
	switch {
	case kind == firewall.ShieldScan && sh.Portscan.Enabled:
		var port probePort
		switch {
		case h.Proto == unix.IPPROTO_TCP:
			port = probePort{proto: unix.IPPROTO_TCP, port: h.SrcPort}
		case h.PortUnreachable:
			port = probePort{proto: h.InnerProto, port: h.InnerDstPort}
		default:
			d.shieldEv.foreign.Add(1)
			return
		}
		if !d.shieldEv.probes.first(h.Dst, port, now, sh.Portscan.FindTime.D()) {
			d.shieldEv.duplicates.Add(1)
			return
		}
		ev = event.Event{Time: now, Service: portscanService, Kind: event.Probe, Addr: h.Dst.Unmap(), Origin: "nflog", Jail: portscanJail}
	case kind != firewall.ShieldScan && sh.Flood.Enabled:
		// One event per second of dropping: a client counts for how
		// long it floods, not for how fast the kernel samples it.
		if !d.shieldEv.floods.first(h.Src, probePort{}, now, time.Second) {
			d.shieldEv.duplicates.Add(1)
			return
		}
		ev = event.Event{Time: now, Service: floodService, Kind: event.ProtocolAbuse, Addr: h.Src.Unmap(), Origin: "nflog", Jail: floodJail}
	default:
		return
	}
	d.shieldEv.events.Add(1)
	d.apply.submit(d.currentPipe().Engine.Observe(ev))
}

// reloadShields applies a reloaded [shields] to the kernel.
func (d *Daemon) reloadShields(ctx context.Context, cfg *config.Config) {
	if d.shields == nil {
		if cfg.Shields.Enabled {
			d.log.Warn("reload: [shields] takes effect at the next restart (they were not installed at start)")
		}
		return
	}
	scfg := shieldsConfig(cfg)
	err := d.shields.Reconfigure(ctx, scfg)
	d.enfErr.note(wrapErr("reconfiguring the shields", err))
	if err != nil {
		d.log.Error("reload: the shields keep their former limits", "err", err)
	}
	if cfg.Shields.LogGroup != d.currentConfig().Shields.LogGroup || d.shieldEv.reader == nil && cfg.Shields.Enabled {
		d.log.Warn("reload: the shields' events follow a new log_group, or start, at the next restart")
	}
}

// ShieldsStatus is what the shields stopped and saw.
type ShieldsStatus struct {
	// Counters has one entry per shield: group, kind (rate, conn, net,
	// syn; scan for closed-port answers, group "") and packets dropped
	// (scan: answers seen).
	Counters []firewall.ShieldCounter `json:"counters"`
	// Events counts the NFLOG messages that became events; Duplicates
	// those left out: closed-port answers for a port the prober had
	// already been counted for, drops of a client already counted that
	// second; Foreign the messages of other prefixes or unreadable packets;
	// Lost the times the kernel dropped messages because the daemon read
	// them too slowly.
	Events     uint64 `json:"events"`
	Duplicates uint64 `json:"duplicates"`
	Foreign    uint64 `json:"foreign"`
	Lost       uint64 `json:"lost"`
	Error      string `json:"error,omitempty"` // reading the counters failed
}

func (d *Daemon) shieldsStatus(ctx context.Context) *ShieldsStatus {
	if d.shields == nil || !d.currentConfig().Shields.Enabled {
		return nil
	}
	st := &ShieldsStatus{Events: d.shieldEv.events.Load(), Duplicates: d.shieldEv.duplicates.Load(), Foreign: d.shieldEv.foreign.Load()}
	if r := d.shieldEv.reader; r != nil {
		st.Lost = r.Lost()
	}
	cs, err := d.shields.Counters(ctx)
	if err != nil {
		st.Error = err.Error()
	}
	st.Counters = cs
	return st
}

// probePort is a closed port: a protocol and a port number.
type probePort struct {
	proto uint8
	port  uint16
}

// probeMemory remembers which closed ports each prober was counted for,
// so a client retrying one closed port counts once per window. It holds at
// most probeMemoryCap entries: when full, the entries older than the
// window go, and if that is not enough, everything (a flood of spoofed
// probes then counts some ports twice, never grows memory).
type probeMemory struct {
	mu   sync.Mutex
	seen map[probeKey]time.Time
}

type probeKey struct {
	addr netip.Addr
	port probePort
}

const probeMemoryCap = 65536

// first reports whether addr was not counted for port within window
// before now, and remembers it.
func (m *probeMemory) first(addr netip.Addr, port probePort, now time.Time, window time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[probeKey]time.Time{}
	}
	k := probeKey{addr.Unmap(), port}
	if t, ok := m.seen[k]; ok && now.Sub(t) < window {
		return false
	}
	if len(m.seen) >= probeMemoryCap {
		for k, t := range m.seen {
			if now.Sub(t) >= window {
				delete(m.seen, k)
			}
		}
		if len(m.seen) >= probeMemoryCap {
			clear(m.seen)
		}
	}
	m.seen[k] = now
	return true
}
