package event

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Proto is a transport protocol a ban can be limited to, by its IP
// protocol number.
type Proto uint8

// The protocols a per-port ban knows.
const (
	TCP  Proto = 6
	UDP  Proto = 17
	SCTP Proto = 132
)

// String returns the protocol's name ("tcp", "udp", "sctp").
func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	}
	return "proto(" + strconv.Itoa(int(p)) + ")"
}

// ParseProto returns the protocol named s.
func ParseProto(s string) (Proto, error) {
	switch s {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	case "sctp":
		return SCTP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want tcp, udp or sctp)", s)
}

// PortRange is a range of destination ports of one protocol: a ban with
// ports drops only the traffic to them (fail2ban's per-port actions).
type PortRange struct {
	Proto       Proto
	First, Last uint16 // inclusive; First == Last for one port
}

// String writes the range as "22/tcp" or "6000-6010/udp".
func (r PortRange) String() string {
	s := strconv.Itoa(int(r.First))
	if r.Last != r.First {
		s += "-" + strconv.Itoa(int(r.Last))
	}
	return s + "/" + r.Proto.String()
}

// Size is how many ports the range holds.
func (r PortRange) Size() int { return int(r.Last) - int(r.First) + 1 }

// Contains reports whether the range holds port of protocol p.
func (r PortRange) Contains(p Proto, port uint16) bool {
	return r.Proto == p && r.First <= port && port <= r.Last
}

// NormalizePorts returns ps sorted by protocol and port, with overlapping
// and adjacent ranges of a protocol merged: the canonical form every
// Decision's Ports should have (two equal sets of ports then compare and
// format equal). A range with First > Last is swapped. ps is not changed.
func NormalizePorts(ps []PortRange) []PortRange {
	if len(ps) == 0 {
		return nil
	}
	out := slices.Clone(ps)
	for i, r := range out {
		if r.First > r.Last {
			out[i].First, out[i].Last = r.Last, r.First
		}
	}
	slices.SortFunc(out, func(a, b PortRange) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.First, b.First), cmp.Compare(a.Last, b.Last))
	})
	n := 0
	for _, r := range out[1:] {
		last := &out[n]
		if r.Proto == last.Proto && int(r.First) <= int(last.Last)+1 {
			last.Last = max(last.Last, r.Last)
			continue
		}
		n++
		out[n] = r
	}
	return out[:n+1]
}

// FormatPorts writes ports as a comma-separated list of PortRange.String
// ("22/tcp,465/tcp,587/tcp"); "" for none (a whole-host ban). Normalized
// ports give one text per set of ports: it is how the store keeps them.
func FormatPorts(ps []PortRange) string {
	var b strings.Builder
	for i, r := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// ParsePorts reads what FormatPorts writes: "" is none; a port without a
// protocol is TCP. The result is normalized.
func ParsePorts(s string) ([]PortRange, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []PortRange
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		num, proto, hasProto := strings.Cut(f, "/")
		r := PortRange{Proto: TCP}
		if hasProto {
			p, err := ParseProto(proto)
			if err != nil {
				return nil, fmt.Errorf("ports %q: %w", s, err)
			}
			r.Proto = p
		}
		lo, hi, isRange := strings.Cut(num, "-")
		first, err := parsePort(lo)
		if err != nil {
			return nil, fmt.Errorf("ports %q: %w", s, err)
		}
		r.First, r.Last = first, first
		if isRange {
			if r.Last, err = parsePort(hi); err != nil {
				return nil, fmt.Errorf("ports %q: %w", s, err)
			}
		}
		out = append(out, r)
	}
	return NormalizePorts(out), nil
}

// ErrPort is wrapped by the errors of a port number that is out of range.
var ErrPort = errors.New("port out of range 0-65535")

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, ErrPort)
	}
	return uint16(n), nil
}

// AllPorts reports whether ps covers every port (1-65535) of each
// protocol it names: fail2ban's default "0:65535", which a whole-host ban
// enforces more simply.
func AllPorts(ps []PortRange) bool {
	if len(ps) == 0 {
		return false
	}
	full := map[Proto]bool{}
	seen := map[Proto]bool{}
	for _, r := range NormalizePorts(ps) {
		seen[r.Proto] = true
		if r.First <= 1 && r.Last == 65535 {
			full[r.Proto] = true
		}
	}
	return len(full) == len(seen)
}

// PortSets interns port lists by their text (FormatPorts), so that whatever
// keeps many bans keeps a small id for the ports of each: one list per
// jail's configuration is shared by all of its bans. Id 0 is no list, a
// whole-host ban. Ids stay below Max (0: no limit): a new list past them
// gets none. The zero PortSets is ready to use; it is not safe for
// concurrent use.
type PortSets struct {
	Max   int
	ids   map[string]uint32
	lists [][]PortRange // by id; lists[0] is nil once any is interned
}

// ID returns the id of ps, interning a copy of it; ok is false when a new
// list would need an id of Max.
func (p *PortSets) ID(ps []PortRange) (id uint32, ok bool) {
	if len(ps) == 0 {
		return 0, true
	}
	text := FormatPorts(ps)
	if id, ok := p.ids[text]; ok {
		return id, true
	}
	if p.ids == nil {
		p.ids, p.lists = map[string]uint32{}, [][]PortRange{nil}
	}
	if p.Max > 0 && len(p.lists) >= p.Max {
		return 0, false
	}
	id = uint32(len(p.lists))
	p.ids[text] = id
	p.lists = append(p.lists, slices.Clone(ps))
	return id, true
}

// List returns the list of id; nil for 0 or an id never given.
func (p *PortSets) List(id uint32) []PortRange {
	if int64(id) < int64(len(p.lists)) {
		return p.lists[id]
	}
	return nil
}

// Len returns one more than the largest id given (1 when none was).
func (p *PortSets) Len() int { return max(len(p.lists), 1) }
