package insight

import (
	"cmp"
	"slices"

	"github.com/rampart-dev/rampart/internal/store"
)

// The abuse reports' queue (internal/abuse), for the report's "reports
// sent" section.

// Reporter is what one reporter queued in the report's span, counted by
// the state each report is in now.
type Reporter struct {
	Name     string `json:"reporter"`
	Reports  int    `json:"reports"` // all of them
	Sent     int    `json:"sent"`
	Failed   int    `json:"failed"`
	Pending  int    `json:"pending"` // waiting to be sent, or being sent
	Review   int    `json:"review"`  // held for review
	Rejected int    `json:"rejected"`
	DryRun   int    `json:"dry_run"`
	// Targets are the targets reported most, up to the report's top;
	// TargetsTotal counts them all.
	Targets      []ReportTarget `json:"targets"`
	TargetsTotal int            `json:"targets_total"`
}

// ReportTarget is one target of a reporter: an address, a link, a domain,
// a message.
type ReportTarget struct {
	Target  string `json:"target"`
	Kind    string `json:"kind"` // attack, spam, url, domain, recipients, message
	Reports int    `json:"reports"`
	Sent    int    `json:"sent"`
}

// reportSum adds up report tallies from several stores.
type reportSum map[string]*reporterSum

type reporterSum struct {
	r       Reporter
	targets map[[2]string]*ReportTarget // by target and kind
}

func (s reportSum) add(ts []store.ReportTally) {
	for _, t := range ts {
		rs := s[t.Reporter]
		if rs == nil {
			rs = &reporterSum{r: Reporter{Name: t.Reporter}, targets: map[[2]string]*ReportTarget{}}
			s[t.Reporter] = rs
		}
		r := &rs.r
		r.Reports += t.Count
		switch t.State {
		case store.ReportSent:
			r.Sent += t.Count
		case store.ReportFailed:
			r.Failed += t.Count
		case store.ReportPending, store.ReportSending:
			r.Pending += t.Count
		case store.ReportReview:
			r.Review += t.Count
		case store.ReportRejected:
			r.Rejected += t.Count
		case store.ReportDryRun:
			r.DryRun += t.Count
		}
		k := [2]string{t.Target, t.Kind}
		tg := rs.targets[k]
		if tg == nil {
			tg = &ReportTarget{Target: t.Target, Kind: t.Kind}
			rs.targets[k] = tg
		}
		tg.Reports += t.Count
		if t.State == store.ReportSent {
			tg.Sent += t.Count
		}
	}
}

// report returns the reporters by name, each with its top targets (the
// most reports, then the most sent, then by name).
func (s reportSum) report(top int) []Reporter {
	var out []Reporter
	for _, rs := range s {
		r := rs.r
		r.Targets = make([]ReportTarget, 0, len(rs.targets))
		for _, t := range rs.targets {
			r.Targets = append(r.Targets, *t)
		}
		slices.SortFunc(r.Targets, func(a, b ReportTarget) int {
			return cmp.Or(cmp.Compare(b.Reports, a.Reports), cmp.Compare(b.Sent, a.Sent), cmp.Compare(a.Target, b.Target), cmp.Compare(a.Kind, b.Kind))
		})
		r.TargetsTotal = len(r.Targets)
		r.Targets = r.Targets[:min(len(r.Targets), top)]
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Reporter) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
