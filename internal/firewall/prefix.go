package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// normalizePrefix returns p in the form every backend stores: IPv4-mapped IPv6
// unmapped (::ffff:10.0.0.0/104 becomes 10.0.0.0/8), no zone, host bits
// cleared. A prefix that cannot be enforced is an error.
func normalizePrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid target prefix %q", p.String())
	}
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{}, fmt.Errorf("target %s: IPv4-mapped prefix shorter than /96", p)
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// normalizePrefixes normalizes every prefix and drops duplicates, keeping the
// first occurrence's position. The first invalid prefix is an error.
func normalizePrefixes(ps []netip.Prefix) ([]netip.Prefix, error) {
	return normalizeAll(ps, normalizePrefix)
}

// normalizeAll applies norm to every value and drops duplicates, keeping
// the first occurrence's position. The first error is returned.
func normalizeAll[T comparable](xs []T, norm func(T) (T, error)) ([]T, error) {
	out := make([]T, 0, len(xs))
	seen := make(map[T]struct{}, len(xs))
	for _, x := range xs {
		n, err := norm(x)
		if err != nil {
			return nil, err
		}
		if _, dup := seen[n]; dup {
			continue
		}
		seen[n] = struct{}{}
		out = append(out, n)
	}
	return out, nil
}

// isSingle reports whether p names exactly one address.
func isSingle(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }

// ban is one Ban decision reduced to what a kernel set holds.
type ban struct {
	target  netip.Prefix      // normalized
	ports   []event.PortRange // normalized; nil: the whole host (always for a prefix)
	timeout time.Duration     // remaining time; 0 means no timeout
	d       event.Decision
}

// banKey tells bans apart: a target's whole-host ban and its bans on
// different ports are different bans.
type banKey struct {
	target netip.Prefix
	ports  string // event.FormatPorts of the normalized ports
}

func (b ban) key() banKey { return banKey{b.target, event.FormatPorts(b.ports)} }

// bansFrom turns decisions into bans as of now, with the semantics shared by
// every backend's Apply:
//   - only Action Ban is enforced; other actions are skipped;
//   - the target is normalized (see normalizePrefix); an invalid target, or
//     a /0 (every address), fails the whole call before anything is changed;
//   - Duration 0 (or negative) means no timeout;
//   - a decision with a Start lasts until Start+Duration, so a decision
//     re-applied from the store gets its remaining time; one already past its
//     end is skipped; a zero Start means now;
//   - Ports are normalized (event.NormalizePorts); a prefix target's ports
//     are dropped: prefix bans are whole-host;
//   - when a target appears twice with the same ports, the later decision
//     wins.
//
// skipped counts the decisions that were not bans or had already expired.
func bansFrom(ds []event.Decision, now time.Time) (bans []ban, skipped int, err error) {
	idx := make(map[banKey]int, len(ds))
	bans = make([]ban, 0, len(ds))
	for _, d := range ds {
		if d.Action != event.Ban {
			skipped++
			continue
		}
		t, err := normalizePrefix(d.Target)
		if err != nil {
			return nil, 0, err
		}
		if t.Bits() == 0 {
			return nil, 0, fmt.Errorf("refusing to ban every address (%s)", t)
		}
		var timeout time.Duration
		if d.Duration > 0 {
			timeout = d.Duration
			if !d.Start.IsZero() {
				timeout = d.Start.Add(d.Duration).Sub(now)
				if timeout <= 0 {
					skipped++
					continue
				}
			}
			// Kernels count in milliseconds, ipset in seconds: round up so
			// a short ban never turns into "no timeout".
			timeout = max(timeout, time.Millisecond)
		}
		d.Target = t
		if isSingle(t) {
			d.Ports = event.NormalizePorts(d.Ports)
		} else {
			d.Ports = nil
		}
		b := ban{target: t, ports: d.Ports, timeout: timeout, d: d}
		k := b.key()
		if i, ok := idx[k]; ok {
			bans[i] = b
			continue
		}
		idx[k] = len(bans)
		bans = append(bans, b)
	}
	return bans, skipped, nil
}

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ first, last netip.Addr }

func prefixRange(p netip.Prefix) addrRange {
	p = p.Masked()
	return addrRange{first: p.Addr(), last: lastAddr(p)}
}

// lastAddr returns the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		setHostBits(b[:], p.Bits())
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	setHostBits(b[:], p.Bits())
	return netip.AddrFrom16(b)
}

func setHostBits(b []byte, bits int) {
	for i := range b {
		switch {
		case bits >= 8*(i+1):
		case bits <= 8*i:
			b[i] = 0xff
		default:
			b[i] |= 0xff >> (bits - 8*i)
		}
	}
}

func (r addrRange) contains(o addrRange) bool {
	return r.first.Compare(o.first) <= 0 && o.last.Compare(r.last) <= 0
}

func (r addrRange) overlaps(o addrRange) bool {
	return r.first.Compare(o.last) <= 0 && o.first.Compare(r.last) <= 0
}

// mergeRanges sorts ranges and merges the ones that overlap or touch, so the
// result can go into an nftables interval set, which rejects overlaps.
func mergeRanges(rs []addrRange) []addrRange {
	if len(rs) == 0 {
		return nil
	}
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b addrRange) int { return a.first.Compare(b.first) })
	out := []addrRange{rs[0]}
	for _, r := range rs[1:] {
		cur := &out[len(out)-1]
		next := cur.last.Next()
		if r.first.Compare(cur.last) <= 0 || (next.IsValid() && r.first == next) {
			if r.last.Compare(cur.last) > 0 {
				cur.last = r.last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// rangePrefixes splits an inclusive range into the fewest CIDR prefixes.
func rangePrefixes(r addrRange) []netip.Prefix {
	var out []netip.Prefix
	first := r.first
	for first.IsValid() && first.Compare(r.last) <= 0 {
		// The widest prefix that starts at first and ends at or before last.
		bits := first.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(first, bits-1)
			if p.Masked().Addr() != first || lastAddr(p).Compare(r.last) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(first, bits)
		out = append(out, p)
		first = lastAddr(p).Next()
	}
	return out
}
