package engine

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Reasons. A decision's reason is plain text for people (status, logs,
// replay). It is written from its parts into one scratch buffer and costs
// one allocation, the string itself: under a flood that bans at every
// event, fmt (which boxes each argument) was a third of the cost. Text is
// only written for a decision actually made, never for a check that might
// lead to one.

// reason builds one reason in the engine's scratch buffer.
type reason struct{ b []byte }

// why starts a reason. The engine's mutex is held, so one buffer serves.
func (e *Engine) why() *reason {
	e.scratch.b = e.scratch.b[:0]
	return &e.scratch
}

func (r *reason) s(x string) *reason { r.b = append(r.b, x...); return r }
func (r *reason) n(x int) *reason    { r.b = strconv.AppendInt(r.b, int64(x), 10); return r }

// q appends a user name or recipient, quoted and cut to 64 bytes.
func (r *reason) q(x string) *reason { r.b = appendQuote(r.b, trimUser(x)); return r }

// appendQuote is strconv.AppendQuote, without its rune-by-rune walk for
// the common name of printable ASCII that needs no escape.
func appendQuote(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// d appends a duration the way people write them: 10m, 1h30m, 7d.
func (r *reason) d(x time.Duration) *reason { r.b = appendDuration(r.b, x); return r }

func (r *reason) addr(a netip.Addr) *reason  { r.b = event.AppendAddr(r.b, a); return r }
func (r *reason) pfx(p netip.Prefix) *reason { r.b = event.AppendPrefix(r.b, p); return r }
func (r *reason) kind(k event.Kind) *reason  { return r.s(k.String()) }
func (r *reason) String() string             { return string(r.b) }
func (r *reason) user(u string) *reason {
	if u != "" {
		r.s(" for ").q(u)
	}
	return r
}

// last appends the event that tipped the count: " (last: KIND for "USER"
// via SERVICE)".
func (r *reason) last(ev event.Event) *reason {
	return r.s(" (last: ").kind(ev.Kind).user(ev.User).s(" via ").s(ev.Service).s(")")
}

// carved appends how many good addresses a prefix ban spares.
func (r *reason) carved(n int) *reason {
	switch n {
	case 0:
	case 1:
		r.s("; 1 address carved out (known-good or delivering relay)")
	default:
		r.s("; ").n(n).s(" addresses carved out (known-good or delivering relays)")
	}
	return r
}

// appendDuration appends d as people write it: 10m, 1h30m, 7d.
func appendDuration(b []byte, d time.Duration) []byte {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return append(strconv.AppendInt(b, int64(d/day), 10), 'd')
	}
	if d <= 0 || d%time.Second != 0 {
		return append(b, d.String()...)
	}
	h, m, s := int64(d/time.Hour), int64(d%time.Hour/time.Minute), int64(d%time.Minute/time.Second)
	if h > 0 {
		b = append(strconv.AppendInt(b, h, 10), 'h')
	}
	if m > 0 {
		b = append(strconv.AppendInt(b, m, 10), 'm')
	}
	if s > 0 {
		b = append(strconv.AppendInt(b, s, 10), 's')
	}
	return b
}

// fmtDuration is appendDuration for a string.
func fmtDuration(d time.Duration) string { return string(appendDuration(nil, d)) }

// suspicion says why an address's threshold is lowered: its prefix or its
// AS is full of bad addresses. Its text is written only for a ban.
type suspicion struct {
	limit    int    // the lowered threshold; 0: not suspect
	scenario string // "prefix-suspect" or "asn"
	prefix   netip.Prefix
	asn      uint32
	org      string
	n        int
	window   time.Duration
	origin   string // the peer that flagged prefix ("peer-suspect")
	slow     bool   // flagged on a peer's failure evidence: banned for the slow ban time
}

func (r *reason) suspicion(s suspicion) *reason {
	if s.scenario == "peer-suspect" {
		if s.slow {
			return r.pfx(s.prefix).s(" failed on ").s(s.origin)
		}
		return r.pfx(s.prefix).s(" flagged by ").s(s.origin)
	}
	if s.scenario == "asn" {
		return r.s("AS").n(int(s.asn)).s(" ").s(s.org).s(" has ").n(s.n).s(" bad addresses within ").d(s.window)
	}
	return r.pfx(s.prefix).s(" holds ").n(s.n).s(" bad addresses but also an allowlisted one")
}
