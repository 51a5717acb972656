package insight

import (
	"github.com/rampart-dev/rampart/internal/evidence"
	"github.com/rampart-dev/rampart/internal/store"
)

// What the trap's messages carried (internal/evidence's indicators), for
// the report's trap sections.

// evidenceKinds are the indicators a report counts: the domains and links
// spam advertised, who it claimed to come from or wanted answers at, what
// it attached, the names its senders gave. Recipients are the victims'
// addresses (never shown), and clients are counted by the trap's own
// sections.
var evidenceKinds = []string{evidence.KindDomain, evidence.KindURL, evidence.KindFrom, evidence.KindReplyTo,
	evidence.KindReturnPath, evidence.KindContact, evidence.KindAttachment, evidence.KindHelo}

// evidenceSum adds up indicator counts from several stores, by kind and
// value: each store counts the messages it kept, so the sums are those of
// one store that kept them all.
type evidenceSum map[store.Indicator]int64

func (e evidenceSum) add(inds []store.IndicatorCount) {
	for _, i := range inds {
		e[i.Indicator] += int64(i.Messages)
	}
}

// report returns the domains, the links and the other indicators (Label:
// the kind), the top of each, counting messages in the failures column;
// all nil when no message was read for evidence.
func (e evidenceSum) report(top int) (domains, urls, others []Row) {
	if len(e) == 0 {
		return nil, nil, nil
	}
	for i, n := range e {
		row := Row{Key: i.Value, Failures: n}
		switch i.Kind {
		case evidence.KindDomain:
			domains = append(domains, row)
		case evidence.KindURL:
			urls = append(urls, row)
		default:
			row.Label = i.Kind
			others = append(others, row)
		}
	}
	return topRows(domains, top), topRows(urls, top), topRows(others, top)
}
