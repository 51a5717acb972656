package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/geo"
	"github.com/rampart-dev/rampart/internal/insight"
	"github.com/rampart-dev/rampart/internal/store"
)

const reportHelp = `
Summarise the attacks a store recorded: failures and bans by jail,
country, autonomous system, network, user name tried, service, kind of
failure and scenario, failures and bans over time, what the trap caught
and what its messages advertised (domains, links, other indicators), and
the abuse reports queued per reporter (sent, failed, waiting, held for
review; the most reported targets). Read from the hourly aggregates the
daemon keeps ([insight] in docs/configuration.md) and the trap's and the
reports' tables, so the running daemon is not disturbed. --jail narrows
the attack sections only.

Without DB arguments the report reads the store of the configuration
(--config, else /etc/rampart/rampart.toml when it exists, else the
embedded defaults), or the one in --state-dir. With --merge, it reads the
stores given (rampart.db files copied from several hosts) and reports
them as one: counts are summed, so the report of several stores is the
report of their union.

--since and --until take a time (2026-03-01, 2026-03-01T12:00:00Z) or an
age (7d, 12h: that long before now). Times are UTC.
`

func runReport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report", "[--json|--csv] [--since T] [--until T] [--jail J] [--top N] [--merge DB...]", reportHelp, stderr)
	cfgPath := fs.String("config", "", "configuration `file` naming the state directory and the geo databases (default: "+systemConfig+" if it exists, else the embedded defaults)")
	stateDir := fs.String("state-dir", "", "read the store in this `directory` (overrides daemon.state_dir)")
	asJSON := fs.Bool("json", false, "print the report as JSON (keys in docs/report.md)")
	asCSV := fs.Bool("csv", false, "print the report as CSV: section,key,label,failures,bans,share")
	since := fs.String("since", "", "report from this `time` or age on (default: the first record)")
	until := fs.String("until", "", "report up to this `time` or age (default: the last record)")
	jail := fs.String("jail", "", "only this `jail`")
	top := fs.Int("top", insight.DefaultTop, "`rows` per table")
	merge := fs.Bool("merge", false, "report the stores given as arguments together")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *asJSON && *asCSV {
		return usagef("--json and --csv cannot be combined")
	}
	if *top < 1 {
		return usagef("--top %d: want 1 or more", *top)
	}
	if fs.NArg() > 0 && !*merge {
		if fs.NArg() > 1 {
			return usagef("several stores given: add --merge to report them together")
		}
	}
	if *merge && fs.NArg() == 0 {
		return usagef("--merge needs the stores to merge: rampart report --merge host1.db host2.db")
	}
	if fs.NArg() > 0 && *stateDir != "" {
		return usagef("--state-dir and store arguments cannot be combined")
	}
	now := time.Now().UTC()
	opt := insight.Options{Jail: *jail, Top: *top}
	var err error
	if opt.Since, err = parseWhen(*since, now); err != nil {
		return usagef("--since: %v", err)
	}
	if opt.Until, err = parseWhen(*until, now); err != nil {
		return usagef("--until: %v", err)
	}
	if !opt.Since.IsZero() && !opt.Until.IsZero() && !opt.Until.After(opt.Since) {
		return usagef("--until %s is not after --since %s", opt.Until.Format(time.RFC3339), opt.Since.Format(time.RFC3339))
	}
	cfg, err := loadConfig(orSystemConfig(*cfgPath))
	if err != nil {
		return err
	}
	paths := fs.Args()
	ownStore := len(paths) == 0
	if ownStore {
		dir := cfg.Daemon.StateDir
		if *stateDir != "" {
			dir = *stateDir
		}
		paths = []string{filepath.Join(dir, "rampart.db")}
	}
	ctx := context.Background()
	var sources []insight.Source
	for _, p := range paths {
		// A store that does not exist is not created: a mistyped path is
		// an error, not an empty report.
		if _, err := os.Stat(p); err != nil {
			if ownStore && errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no store at %s: rampart run has not kept its state there (name another with --state-dir DIR or --config FILE, or give store files)", p)
			}
			return fmt.Errorf("store %s: %w", p, err)
		}
		st, err := store.Open(ctx, p, store.WithoutQuickCheck())
		if err != nil {
			if errors.Is(err, store.ErrSchemaTooNew) {
				return fmt.Errorf("%w\nhint: report it with the rampart of the host it comes from", err)
			}
			return err
		}
		defer st.Close()
		sources = append(sources, insight.Source{Name: p, Store: st})
	}
	loc := reportLocator(cfg, stderr)
	if loc != nil {
		defer loc.Close()
	}
	var l insight.Locator
	if loc != nil {
		l = loc
	}
	r, err := insight.Build(ctx, sources, opt, l)
	if err != nil {
		return err
	}
	switch {
	case *asJSON:
		return r.WriteJSON(stdout)
	case *asCSV:
		return r.WriteCSV(stdout)
	}
	return r.WriteText(stdout)
}

// reportLocator opens the configuration's geo databases, for the trap's
// clients (the aggregates are placed when they are counted); nil without
// any. A database that cannot be opened is a warning.
func reportLocator(cfg *config.Config, stderr io.Writer) *geo.DB {
	if cfg.Geo.CountryDatabase == "" && cfg.ASN.Database == "" {
		return nil
	}
	db, err := geo.Open(cfg.Geo.CountryDatabase, cfg.ASN.Database)
	if err != nil {
		fmt.Fprintf(stderr, "warning: %v: the trap's clients are not placed\n", err)
		return nil
	}
	return db
}

// parseWhen reads a time or an age before now; "" is the zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	d, err := config.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%q is neither a time (2026-03-01, 2026-03-01T12:00:00Z) nor an age (7d, 12h)", s)
	}
	return now.Add(-d), nil
}
