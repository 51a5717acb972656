package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/store"
)

// Every component of a running daemon says whether it works: the store, the
// firewall, the configuration (a failed reload), each source, each policy
// server, and whether anything is watched at all. Status lists them, the
// metrics carry one gauge each, and the log tells each change once, when a
// component turns bad and when it recovers, never at every check.

// Health states.
const (
	HealthOK       = "ok"
	HealthDegraded = "degraded" // working, but less than configured: a log missing, a write failing
	HealthFailed   = "failed"   // not working at all: a source stopped, nothing watched
)

// Health is one component's state.
type Health struct {
	Component string    `json:"component"` // "store", "firewall", "config", "source /var/log/auth.log", …
	State     string    `json:"state"`     // ok, degraded or failed
	Detail    string    `json:"detail,omitempty"`
	Since     time.Time `json:"since"` // when it entered this state (as the daemon noticed)
}

// healthBook remembers each component's last state, to date it and to log
// changes once.
type healthBook struct {
	mu   sync.Mutex
	last map[string]Health
	log  *slog.Logger
}

// note takes the components' states as found now, logs each change and
// returns them dated, in the order given. Components no longer reported
// (a source a reload removed) are forgotten.
func (h *healthBook) note(now time.Time, cur []Health) []Health {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		h.last = map[string]Health{}
	}
	seen := make(map[string]bool, len(cur))
	for i, c := range cur {
		seen[c.Component] = true
		prev, known := h.last[c.Component]
		if known && prev.State == c.State && prev.Detail == c.Detail {
			cur[i].Since = prev.Since
			continue
		}
		cur[i].Since = now
		h.last[c.Component] = cur[i]
		switch {
		case c.State != HealthOK:
			h.log.Error("health: "+c.Component+" "+c.State, "component", c.Component, "state", c.State, "detail", c.Detail)
		case known:
			h.log.Info("health: "+c.Component+" ok again", "component", c.Component, "state", c.State, "was", prev.Detail)
		}
	}
	for k := range h.last {
		if !seen[k] {
			delete(h.last, k)
		}
	}
	return cur
}

// Degraded returns the components that are not ok.
func Degraded(hs []Health) []Health {
	var out []Health
	for _, h := range hs {
		if h.State != HealthOK {
			out = append(out, h)
		}
	}
	return out
}

// lastError keeps the outcome of the latest attempt of something done
// again and again (a store write, a firewall change): nil once one works.
type lastError struct{ p atomic.Pointer[error] }

func (l *lastError) note(err error) {
	if l == nil {
		return
	}
	if err == nil {
		if l.p.Load() != nil {
			l.p.Store(nil)
		}
		return
	}
	l.p.Store(&err)
}

func (l *lastError) get() error {
	if l == nil {
		return nil
	}
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nil
}

// storeFile is the database file as opened, to notice it deleted or
// replaced under the running daemon (writes then go to a file no restart
// will find).
type storeFile struct {
	path     string
	dev, ino uint64
	memory   bool // fell back to memory: the state directory or database was unusable
}

func statStore(path string) storeFile {
	sf := storeFile{path: path, memory: path == store.Memory}
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			sf.dev, sf.ino = uint64(st.Dev), uint64(st.Ino)
		}
	}
	return sf
}

// check reports what is wrong with the file: deleted, replaced, or
// nothing.
func (sf storeFile) check() string {
	if sf.path == "" || sf.path == store.Memory {
		return ""
	}
	fi, err := os.Stat(sf.path)
	if errors.Is(err, os.ErrNotExist) {
		return "database file " + sf.path + " deleted while running: new bans are recorded where no restart will find them; restart rampart to start a new database (bans in the kernel stay)"
	}
	if err != nil {
		return "database file " + sf.path + ": " + err.Error()
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (uint64(st.Dev) != sf.dev || uint64(st.Ino) != sf.ino) {
		return "database file " + sf.path + " replaced while running: new bans are recorded in the old file; restart rampart to use the new one"
	}
	return ""
}

// storeHealth says how the store is.
func (d *Daemon) storeHealth() Health {
	h := Health{Component: "store", State: HealthOK}
	switch err := d.storeErr.get(); {
	case d.storeFile.memory:
		h.State, h.Detail = HealthDegraded, "state kept in memory only (the state directory or database was unusable at start): bans will not survive a restart"
	case errors.Is(err, store.ErrFull):
		h.State, h.Detail = HealthDegraded, "disk full: decisions and positions are not being recorded (bans are in force, held back in memory, and recorded when there is room): "+err.Error()
	case errors.Is(err, store.ErrCorrupt):
		h.State, h.Detail = HealthDegraded, "database corrupt: decisions are not being recorded; restart rampart (it moves the file aside and starts a new one): "+err.Error()
	case err != nil:
		h.State, h.Detail = HealthDegraded, "writes failing: "+err.Error()
	}
	if p := d.storeFile.check(); p != "" {
		h.State, h.Detail = HealthDegraded, p
	}
	return h
}

// health returns every component's state now, logging changes once.
func (d *Daemon) health(now time.Time) []Health {
	d.mu.Lock()
	sources, cfg := d.sources, d.cfg
	d.mu.Unlock()
	hs := []Health{d.storeHealth()}
	fw := Health{Component: "firewall", State: HealthOK}
	if err := d.enfErr.get(); err != nil {
		fw.State, fw.Detail = HealthDegraded, err.Error()
	}
	hs = append(hs, fw)
	cf := Health{Component: "config", State: HealthOK}
	if r := d.reloads.status(); r.LastError != "" {
		cf.State = HealthDegraded
		cf.Detail = fmt.Sprintf("the last reload failed and the configuration loaded at %s is still in force: %s", r.Loaded.Format(time.RFC3339), r.LastError)
	}
	hs = append(hs, cf)
	reading, bad := 0, []string{}
	for _, rs := range sources {
		h := Health{Component: "source " + rs.plan.describe(), State: HealthOK}
		switch {
		case rs.stopped.Load() != nil:
			h.State, h.Detail = HealthFailed, "stopped: "+*rs.stopped.Load()
		case rs.problem != nil && rs.problem() != "":
			h.State, h.Detail = HealthDegraded, rs.problem()
			if h.Detail == "missing" {
				h.Detail = "log file missing: read from its start when it appears"
			}
		default:
			reading++
		}
		if h.State != HealthOK {
			bad = append(bad, rs.plan.describe()+": "+h.Detail)
		}
		hs = append(hs, h)
	}
	if reading == 0 {
		h := Health{Component: "watching", State: HealthFailed, Detail: "nothing is being watched: no jail has a source"}
		if len(sources) > 0 {
			h.Detail = "nothing is being watched: no configured log can be read (" + strings.Join(bad, "; ") + "); reading starts when one appears"
		}
		hs = append(hs, h)
	}
	hs = append(hs, d.policyHealth(cfg)...)
	hs = append(hs, d.geoHealth()...)
	return d.book.note(now, hs)
}

// policyHealth reports the configured policy servers.
func (d *Daemon) policyHealth(cfg *config.Config) []Health {
	var hs []Health
	for _, name := range []string{"postfix policy server", "dovecot policy server"} {
		if (name == "postfix policy server" && cfg.Postfix.Listen == "") || (name == "dovecot policy server" && cfg.Dovecot.Listen == "") {
			continue
		}
		h := Health{Component: name, State: HealthOK}
		if err, ok := d.servers.Load(name); ok {
			h.State, h.Detail = HealthFailed, "stopped: "+err.(error).Error()
		}
		hs = append(hs, h)
	}
	slices.SortStableFunc(hs, func(a, b Health) int { return strings.Compare(a.Component, b.Component) })
	return hs
}
