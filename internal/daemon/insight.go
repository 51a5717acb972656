package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/geo"
	"github.com/rampart-dev/rampart/internal/store"
)

// Insight (issue 16): where attackers are, and counts that outlive the
// history. The geo databases ([geo] country_database, [asn] database) are
// one geo.Watched, checked for new files every InsightEvery; the engine's
// ASN scenario and the store's places read the same one. Failures and bans
// are counted in memory (insight.Counter: events from the lines and the
// policy servers, bans as the applier takes them) and written to the
// store's hourly aggregates every InsightEvery and at shutdown; the
// aggregates are compacted hourly.

// geoPaths are the databases cfg names: country, ASN.
func geoPaths(cfg *config.Config) [2]string {
	return [2]string{cfg.Geo.CountryDatabase, cfg.ASN.Database}
}

// openGeo opens the databases cfg names, nil when it names none. A file
// that cannot be opened is logged; its lookups report nothing until a good
// file appears.
func openGeo(cfg *config.Config, log *slog.Logger) *geo.Watched {
	p := geoPaths(cfg)
	if p == [2]string{} {
		return nil
	}
	w := geo.OpenWatched(p[0], p[1])
	for _, err := range w.Errors() {
		log.Error("geo database not in force; its lookups report nothing until the file is fixed", "err", err)
	}
	return w
}

// asnOf returns w as the engine's ASN lookup when cfg names an ASN
// database, else nil (the ASN scenario off).
func asnOf(w *geo.Watched, cfg *config.Config) engine.ASNLookup {
	if w == nil || cfg.ASN.Database == "" {
		return nil
	}
	return w
}

// place locates an address for the store (store.WithLocator).
func (d *Daemon) place(a netip.Addr) store.Place {
	i := d.geo.Load().Lookup(a)
	return store.Place{Country: i.Country, ASN: i.ASN, Org: i.Org}
}

// checkGeo reads again the geo files that changed.
func (d *Daemon) checkGeo() {
	w := d.geo.Load()
	if w == nil {
		return
	}
	reloaded, errs := w.Check()
	for _, p := range reloaded {
		d.log.Info("geo database reloaded", "path", p)
	}
	for _, err := range errs {
		d.log.Error("geo database not reloaded; the one in force stays", "err", err)
	}
}

// geoHealth reports the databases when any is configured.
func (d *Daemon) geoHealth() []Health {
	w := d.geo.Load()
	if w == nil {
		return nil
	}
	h := Health{Component: "geo", State: HealthOK}
	if errs := w.Errors(); len(errs) > 0 {
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		h.State, h.Detail = HealthDegraded, "not in force (countries or networks unknown): "+strings.Join(msgs, "; ")
	}
	return []Health{h}
}

// flushInsight writes what the counter holds to the hourly aggregates. On
// a store failure the counts are lost, not retried: they are statistics,
// and holding them would grow memory while the disk is full.
func (d *Daemon) flushInsight(ctx context.Context) {
	ctx, cancel := detached(ctx)
	defer cancel()
	if err := d.store.AddHourlySeq(ctx, d.insight.FlushSeq(d.geo.Load())); err != nil {
		d.storeErr.note(err)
		d.log.Warn("store: hourly aggregates lost", "err", err)
	}
}

// compactInsight bounds the hourly aggregates ([insight]).
func (d *Daemon) compactInsight(ctx context.Context, now time.Time) {
	c := d.currentConfig().Insight
	res, err := d.store.CompactHourly(ctx, now.Add(-c.Retention.D()), now.Add(-c.Hourly.D()), c.MaxKeys)
	if err != nil && !errors.Is(err, context.Canceled) {
		d.log.Warn("store: compacting hourly aggregates failed", "err", err)
		return
	}
	if res.Deleted+res.Folded > 0 {
		d.log.Debug("hourly aggregates compacted", "deleted", res.Deleted, "folded", res.Folded, "rows", res.Rows)
	}
}
