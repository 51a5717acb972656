package insight

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/rampart-dev/rampart/internal/store"
)

// Options select what a report covers.
type Options struct {
	Since time.Time // zero: from the first aggregate
	Until time.Time // zero: up to the last
	Jail  string    // "": every jail
	Top   int       // rows per table; 0: DefaultTop
}

// DefaultTop is how many rows each table of a report shows.
const DefaultTop = 10

// Report is what `rampart report`, the dashboard and the JSON API show.
// Its JSON keys are part of the interface (docs/report.md).
type Report struct {
	Since  time.Time `json:"since,omitzero"`
	Until  time.Time `json:"until,omitzero"`
	Jail   string    `json:"jail,omitempty"`
	Stores []string  `json:"stores"`

	Failures int64 `json:"failures"`
	Bans     int64 `json:"bans"`

	Countries []Row `json:"countries"`
	ASNs      []Row `json:"asns"`
	Prefixes  []Row `json:"prefixes"`
	Users     []Row `json:"users"`
	Services  []Row `json:"services"`
	Kinds     []Row `json:"kinds"`
	Scenarios []Row `json:"scenarios"`
	Jails     []Row `json:"jails"`

	// Step is the timeline's resolution: "hour", or "day" when the report
	// spans more than three days (older aggregates are kept per day).
	Step     string  `json:"step"`
	Timeline []Point `json:"timeline"`

	// Trap is there when the trap caught something in the report's span.
	Trap *Trap `json:"trap,omitempty"`

	// Reports are the abuse reports queued in the span, per reporter;
	// none when nothing was queued.
	Reports []Reporter `json:"reports,omitempty"`
}

// Row is one line of a table: a key with its counts. Share is the key's
// part of the column the table is ordered by, 0 to 1.
type Row struct {
	Key      string  `json:"key"`
	Label    string  `json:"label,omitempty"`
	Failures int64   `json:"failures"`
	Bans     int64   `json:"bans"`
	Share    float64 `json:"share"`
}

// Point is one step of the timeline.
type Point struct {
	Time     time.Time `json:"time"`
	Failures int64     `json:"failures"`
	Bans     int64     `json:"bans"`
}

// Trap summarises what the trap caught.
type Trap struct {
	Messages   int   `json:"messages"`
	Bytes      int64 `json:"bytes"`
	Recipients int   `json:"recipients"`
	Clients    int   `json:"clients"` // distinct addresses
	Countries  []Row `json:"countries"`
	ASNs       []Row `json:"asns"`
	Accounts   []Row `json:"accounts"` // trap accounts used
	Senders    []Row `json:"senders"`  // envelope senders
	// What the messages carried, when they were read for evidence
	// ([evidence]): the registrable domains they advertised, their links,
	// and other indicators (Label: the kind), each counting the messages
	// that carried it.
	Domains    []Row `json:"domains,omitempty"`
	URLs       []Row `json:"urls,omitempty"`
	Indicators []Row `json:"indicators,omitempty"`
}

// Source is one store a report reads, named for people ("host1.db").
type Source struct {
	Name  string
	Store *store.Store
}

// Build makes the report of the sources' aggregates, summed: a report of
// several stores is the report of their union. loc (nil: none) places the
// trap's clients kept before the store held their places.
func Build(ctx context.Context, sources []Source, opt Options, loc Locator) (*Report, error) {
	top := opt.Top
	if top <= 0 {
		top = DefaultTop
	}
	r := &Report{Since: opt.Since, Until: opt.Until, Jail: opt.Jail}
	type key struct{ dim, key string }
	sums := map[key]*Row{}
	timeline := map[int64]*Point{}
	jails := map[string]*Row{}
	var first, last time.Time
	var trap *trapSum
	reports := reportSum{}
	for _, src := range sources {
		r.Stores = append(r.Stores, src.Name)
		rows, err := src.Store.Hourly(ctx, store.HourlyFilter{Since: opt.Since, Until: opt.Until, Jail: opt.Jail})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.Name, err)
		}
		for _, h := range rows {
			if h.Dim == store.DimTotal {
				r.Failures += h.Failures
				r.Bans += h.Bans
				t := h.Hour.Unix()
				p := timeline[t]
				if p == nil {
					p = &Point{Time: h.Hour}
					timeline[t] = p
				}
				p.Failures += h.Failures
				p.Bans += h.Bans
				j := jails[h.Jail]
				if j == nil {
					j = &Row{Key: h.Jail}
					jails[h.Jail] = j
				}
				j.Failures += h.Failures
				j.Bans += h.Bans
				if first.IsZero() || h.Hour.Before(first) {
					first = h.Hour
				}
				if h.Hour.After(last) {
					last = h.Hour
				}
				continue
			}
			k := key{h.Dim, h.Key}
			s := sums[k]
			if s == nil {
				s = &Row{Key: h.Key}
				sums[k] = s
			}
			if h.Label != "" && s.Label == "" {
				s.Label = h.Label
			}
			s.Failures += h.Failures
			s.Bans += h.Bans
		}
		tables, err := src.Store.Tables(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.Name, err)
		}
		if tables["quarantine"] {
			cs, err := src.Store.Captures(ctx, opt.Since, opt.Until)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src.Name, err)
			}
			if trap == nil {
				trap = newTrapSum()
			}
			trap.add(cs, loc)
		}
		if tables["message_indicators"] {
			inds, err := src.Store.IndicatorsReceived(ctx, opt.Since, opt.Until, evidenceKinds)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src.Name, err)
			}
			if trap == nil {
				trap = newTrapSum()
			}
			trap.evidence.add(inds)
		}
		if tables["reports"] {
			ts, err := src.Store.ReportTallies(ctx, opt.Since, opt.Until)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src.Name, err)
			}
			reports.add(ts)
		}
	}
	table := func(dim string) []Row {
		var rows []Row
		for k, s := range sums {
			if k.dim == dim {
				rows = append(rows, *s)
			}
		}
		return topRows(rows, top)
	}
	r.Countries = table(store.DimCountry)
	r.ASNs = table(store.DimASN)
	r.Prefixes = table(store.DimPrefix)
	r.Users = table(store.DimUser)
	r.Services = table(store.DimService)
	r.Kinds = table(store.DimKind)
	r.Scenarios = table(store.DimScenario)
	var js []Row
	for _, j := range jails {
		js = append(js, *j)
	}
	r.Jails = topRows(js, len(js))
	r.Step, r.Timeline = steps(timeline, first, last, opt)
	if trap != nil && trap.messages > 0 {
		r.Trap = trap.report(top)
	}
	r.Reports = reports.report(top)
	return r, nil
}

// topRows orders rows by failures, then bans, then key, keeps the top n
// and folds the rest, with any folded key already there, into one "*" row
// at the end. Shares are of all the rows' failures (or bans, when no row
// has failures).
func topRows(rows []Row, n int) []Row {
	var totalF, totalB int64
	for _, r := range rows {
		totalF += r.Failures
		totalB += r.Bans
	}
	var other *Row
	kept := rows[:0:0]
	for _, r := range rows {
		if r.Key == store.OtherKey {
			o := r
			other = &o
			continue
		}
		kept = append(kept, r)
	}
	slices.SortFunc(kept, func(a, b Row) int {
		return cmp.Or(cmp.Compare(b.Failures, a.Failures), cmp.Compare(b.Bans, a.Bans), cmp.Compare(a.Key, b.Key), cmp.Compare(a.Label, b.Label))
	})
	if len(kept) > n {
		if other == nil {
			other = &Row{Key: store.OtherKey}
		}
		for _, r := range kept[n:] {
			other.Failures += r.Failures
			other.Bans += r.Bans
		}
		kept = kept[:n]
	}
	if other != nil {
		other.Label = "others"
		kept = append(kept, *other)
	}
	for i := range kept {
		switch {
		case totalF > 0:
			kept[i].Share = float64(kept[i].Failures) / float64(totalF)
		case totalB > 0:
			kept[i].Share = float64(kept[i].Bans) / float64(totalB)
		}
	}
	if kept == nil {
		kept = []Row{}
	}
	return kept
}

// steps lays the totals out in time, every hour (or day) of the report's
// span present, zero where nothing was counted.
func steps(points map[int64]*Point, first, last time.Time, opt Options) (string, []Point) {
	from, to := first, last
	if !opt.Since.IsZero() {
		from = opt.Since
	}
	if !opt.Until.IsZero() {
		to = opt.Until.Add(-time.Nanosecond)
	}
	if from.IsZero() || to.Before(from) {
		return "hour", []Point{}
	}
	step, name := time.Hour, "hour"
	if to.Sub(from) > 72*time.Hour {
		step, name = 24*time.Hour, "day"
	}
	from, to = from.UTC().Truncate(step), to.UTC().Truncate(step)
	byStep := map[int64]*Point{}
	for _, p := range points {
		t := p.Time.UTC().Truncate(step).Unix()
		q := byStep[t]
		if q == nil {
			q = &Point{Time: time.Unix(t, 0).UTC()}
			byStep[t] = q
		}
		q.Failures += p.Failures
		q.Bans += p.Bans
	}
	out := []Point{}
	for t := from; !t.After(to); t = t.Add(step) {
		if p := byStep[t.Unix()]; p != nil {
			out = append(out, *p)
		} else {
			out = append(out, Point{Time: t})
		}
		if len(out) > 24*400 {
			break // a span no chart shows: enough
		}
	}
	return name, out
}

// trapSum adds up captures from several stores.
type trapSum struct {
	messages, recipients int
	bytes                int64
	clients              map[string]bool
	countries, asns      map[string]*Row
	accounts, senders    map[string]*Row
	evidence             evidenceSum
}

func newTrapSum() *trapSum {
	return &trapSum{clients: map[string]bool{}, countries: map[string]*Row{}, asns: map[string]*Row{},
		accounts: map[string]*Row{}, senders: map[string]*Row{}, evidence: evidenceSum{}}
}

func count(m map[string]*Row, key, label string) {
	r := m[key]
	if r == nil {
		r = &Row{Key: key, Label: label}
		m[key] = r
	}
	r.Failures++ // a capture counts in the failures column: what the attacker did
}

// Placed returns a quarantined message's stored place pl, or, for one
// kept before places were stored (pl zero), where loc (nil: none) places
// its client a now.
func Placed(pl store.Place, a netip.Addr, loc Locator) store.Place {
	if pl != (store.Place{}) || loc == nil || !a.IsValid() {
		return pl
	}
	i := loc.Lookup(a)
	return store.Place{Country: i.Country, ASN: i.ASN, Org: i.Org}
}

func (t *trapSum) add(cs []store.Capture, loc Locator) {
	for _, c := range cs {
		t.messages++
		t.recipients += c.Rcpts
		t.bytes += c.Size
		t.clients[c.Client.String()] = true
		pl := Placed(c.Place, c.Client, loc)
		count(t.countries, pl.Country, "")
		count(t.asns, strconv.FormatUint(uint64(pl.ASN), 10), pl.Org)
		count(t.accounts, c.Account, "")
		count(t.senders, clip(c.MailFrom), "")
	}
}

func (t *trapSum) report(top int) *Trap {
	list := func(m map[string]*Row) []Row {
		rows := make([]Row, 0, len(m))
		for _, r := range m {
			rows = append(rows, *r)
		}
		return topRows(rows, top)
	}
	tr := &Trap{Messages: t.messages, Bytes: t.bytes, Recipients: t.recipients, Clients: len(t.clients),
		Countries: list(t.countries), ASNs: list(t.asns), Accounts: list(t.accounts), Senders: list(t.senders)}
	tr.Domains, tr.URLs, tr.Indicators = t.evidence.report(top)
	return tr
}
