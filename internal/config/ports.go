package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/rampart-dev/rampart/internal/event"
)

// PortList is a jail's ports key: service names, numbers and ranges, as
// strings or bare numbers (ports = ["ssh", 2222, "6000-6010", "53/udp"]).
type PortList []string

// UnmarshalTOML reads an array of strings and whole numbers.
func (p *PortList) UnmarshalTOML(raw []byte) error {
	var v struct{ V []any }
	if err := toml.Unmarshal(append([]byte("V = "), raw...), &v); err != nil {
		return &unstable.ParserError{Highlight: raw, Message: fmt.Sprintf("bad ports %s: want an array such as [\"ssh\", 2222, \"6000-6010\", \"53/udp\"]", raw)}
	}
	out := make(PortList, 0, len(v.V))
	for _, x := range v.V {
		switch x := x.(type) {
		case string:
			out = append(out, x)
		case int64:
			out = append(out, strconv.FormatInt(x, 10))
		default:
			return &unstable.ParserError{Highlight: raw, Message: fmt.Sprintf("bad port %v: want a name, a number or a range", x)}
		}
	}
	*p = out
	return nil
}

// ResolvePorts turns a jail's ports and default protocol into port ranges.
// Each entry is a service name (from /etc/services, as fail2ban's actions
// resolve them: "ssh", "submission"), a number, or a range "FIRST-LAST"
// (or fail2ban's "FIRST:LAST"), optionally followed by "/tcp", "/udp" or
// "/sctp"; entries without one take proto ("" is tcp). Several entries may
// share one string separated by commas, as in fail2ban ("http,https").
func ResolvePorts(ports []string, proto string) ([]event.PortRange, error) {
	def := event.TCP
	if proto != "" {
		p, err := event.ParseProto(proto)
		if err != nil {
			return nil, err
		}
		def = p
	}
	var out []event.PortRange
	for _, entry := range ports {
		for e := range strings.SplitSeq(entry, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			spec, ps, hasProto := strings.Cut(e, "/")
			p := def
			if hasProto {
				var err error
				if p, err = event.ParseProto(ps); err != nil {
					return nil, fmt.Errorf("port %q: %w", e, err)
				}
			}
			lo, hi, isRange := strings.Cut(spec, ":")
			if !isRange {
				// "6000-6010", but "ftp-data" is a name.
				if a, b, ok := strings.Cut(spec, "-"); ok && numeric(a) && numeric(b) {
					lo, hi, isRange = a, b, true
				}
			}
			first, err := lookupPort(p, lo)
			if err != nil {
				return nil, err
			}
			last := first
			if isRange {
				if last, err = lookupPort(p, hi); err != nil {
					return nil, err
				}
				if last < first {
					return nil, fmt.Errorf("port range %q runs backwards", e)
				}
			}
			out = append(out, event.PortRange{Proto: p, First: first, Last: last})
		}
	}
	return event.NormalizePorts(out), nil
}

func numeric(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// lookupPort reads a port number or resolves a service name.
func lookupPort(p event.Proto, s string) (uint16, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return uint16(n), nil
	}
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r >= '0' && r <= '9' }) == 0 {
		return 0, fmt.Errorf("port %q is not a number from 0 to 65535 or a service name", s)
	}
	n, err := net.LookupPort(p.String(), s)
	if err != nil {
		return 0, fmt.Errorf("unknown %s service %q (not in /etc/services; give its number)", p, s)
	}
	return uint16(n), nil
}

// maxJailPorts is how many ports a jail's per-port bans may name: each is
// a kernel set element per banned address (firewall.MaxBanPorts).
const maxJailPorts = 256

// checkPorts validates a jail's ports and protocol.
func (c *Config) checkPorts(key string, j *Jail) error {
	if j.Protocol != "" {
		if _, err := event.ParseProto(j.Protocol); err != nil {
			return c.errorf(key+".protocol", "key \"protocol\": %v", err)
		}
	}
	ps, err := ResolvePorts(j.Ports, j.Protocol)
	if err != nil {
		return c.errorf(key+".ports", "key \"ports\": %v", err)
	}
	n := 0
	for _, r := range ps {
		n += r.Size()
	}
	if n > maxJailPorts && !event.AllPorts(ps) {
		return c.errorf(key+".ports", "key \"ports\": %d ports; a jail bans at most %d by port (leave ports out to ban the whole host)", n, maxJailPorts)
	}
	return nil
}

// PortRanges returns the ports the jail's bans are limited to: nil for
// whole-host bans (no ports, or every port, as fail2ban's "0:65535"). The
// configuration has been validated.
func (j *Jail) PortRanges() []event.PortRange {
	ps, err := ResolvePorts(j.Ports, j.Protocol)
	if err != nil || event.AllPorts(ps) {
		return nil
	}
	return ps
}
