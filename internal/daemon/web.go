package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/geo"
	"github.com/rampart-dev/rampart/internal/web"
)

// The dashboard ([web] listen) is served by the daemon, from the same
// store, status and ban path as the control socket. Its listen address and
// token are read at start: changing them needs a restart.

// startWeb builds the dashboard and binds its address; nil when [web]
// listen is empty. An address it cannot have, or a token it cannot read,
// stops the start: a dashboard asked for and silently missing, or served
// off loopback without its token, is worse than none.
func (d *Daemon) startWeb(cfg *config.Config) (*web.Listener, error) {
	if cfg.Web.Listen == "" {
		return nil, nil
	}
	token, err := readToken(cfg.Web.TokenFile)
	if err != nil {
		return nil, cfg.Errorf("web.token_file", "%v", err)
	}
	opt := web.Options{Backend: webBackend{d}, Store: d.store, Locator: geoInForce{d}, Token: token, Logger: d.log}
	if d.report != nil {
		opt.Reports = reportQueue{d.report}
	}
	srv, err := web.New(opt)
	if err != nil {
		return nil, err
	}
	ln, err := srv.Listen(cfg.Web.Listen)
	if err != nil {
		return nil, cfg.Errorf("web.listen", "%v", err)
	}
	return ln, nil
}

// readToken reads the dashboard's token; "" path: no token.
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("dashboard token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if len(t) < 16 {
		return "", fmt.Errorf("dashboard token in %s: at least 16 characters, please (e.g. head -c 32 /dev/urandom | base64 > %s)", path, path)
	}
	return t, nil
}

// geoInForce locates with the geo databases in force, across reloads.
type geoInForce struct{ d *Daemon }

func (g geoInForce) Lookup(a netip.Addr) geo.Info { return g.d.geo.Load().Lookup(a) }

// webBackend is the daemon as the dashboard sees it.
type webBackend struct{ d *Daemon }

func (b webBackend) Snapshot() web.Snapshot {
	st, _ := b.d.StatusFor(StatusQuery{Bans: web.ListedBans})
	snap := web.Snapshot{Version: st.Version, Started: st.Started, Firewall: st.Firewall.Backend,
		Events: st.Engine.Events, Decisions: st.Engine.Decisions, ActiveTotal: st.ActiveTotal}
	for _, h := range st.Health {
		snap.Health = append(snap.Health, web.Health{Component: h.Component, State: h.State, Detail: h.Detail, Since: h.Since})
	}
	for _, j := range st.Jails {
		snap.Jails = append(snap.Jails, web.Jail{Name: j.Name, Banned: j.Banned})
	}
	for _, a := range st.Active {
		act := web.Active{Target: a.IP, Jail: a.Jail, Scenario: a.Scenario, Reason: a.Reason, Start: a.Start, End: a.End}
		if p, err := event.ParseTarget(a.IP); err == nil {
			pl := b.d.place(p.Addr())
			act.Country, act.ASN, act.Org = pl.Country, pl.ASN, pl.Org
		}
		snap.Active = append(snap.Active, act)
	}
	return snap
}

func (b webBackend) Ban(ctx context.Context, target string, d time.Duration, reason string) (string, error) {
	p, err := event.ParseTarget(target)
	if err != nil {
		return "", err
	}
	ban, err := b.d.banByHand(ctx, p, BanRequest{IP: target, DurationS: int64(d / time.Second), Reason: reason})
	if err != nil {
		return "", err
	}
	if ban.End.IsZero() {
		return "banned " + ban.IP + " until revoked", nil
	}
	return fmt.Sprintf("banned %s until %s", ban.IP, ban.End.UTC().Format("2006-01-02 15:04:05 UTC")), nil
}

func (b webBackend) Unban(ctx context.Context, target string) (bool, error) {
	p, err := event.ParseTarget(target)
	if err != nil {
		return false, err
	}
	return b.d.unbanByHand(ctx, p)
}

// reportQueue is the abuse reports' queue as the dashboard sees it: the
// same review as `rampart abuse approve|reject`.
type reportQueue struct{ r *reporting }

func (q reportQueue) Review(ctx context.Context, ids []int64, approve bool) ([]int64, error) {
	return q.r.q.Review(ctx, ids, approve)
}

func (q reportQueue) Render(ctx context.Context, id int64) (string, error) {
	_, text, err := q.r.q.Render(ctx, id)
	return text, err
}
