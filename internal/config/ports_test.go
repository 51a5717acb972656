package config

import (
	"strings"
	"testing"

	"github.com/rampart-dev/rampart/internal/event"
)

func TestJailPorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // event.FormatPorts of PortRanges, or an error's text
	}{
		{`ports = ["ssh"]`, "22/tcp"},
		{`ports = ["http,https", 8080]`, "80/tcp,443/tcp,8080/tcp"},
		{`ports = ["smtp", "465", "submission"]`, "25/tcp,465/tcp,587/tcp"},
		{`ports = ["ftp,ftp-data,ftps,ftps-data"]`, "20-21/tcp,989-990/tcp"},
		{"ports = [\"6000-6010\", \"7000:7002\"]\nprotocol = \"udp\"", "6000-6010/udp,7000-7002/udp"},
		{`ports = ["domain/udp", "domain", "953"]`, "53/tcp,953/tcp,53/udp"},
		{`ports = ["0:65535"]`, ""}, // every port: a whole-host ban
		{`ports = []`, ""},
		{`ports = ["no-such-service"]`, `r.toml:3: jail "s": key "ports": unknown tcp service "no-such-service"`},
		{`ports = ["70000"]`, `r.toml:3: jail "s": key "ports": port "70000" is not a number`},
		{`ports = ["2000-1000"]`, `r.toml:3: jail "s": key "ports": port range "2000-1000" runs backwards`},
		{`ports = ["1000-2000"]`, `r.toml:3: jail "s": key "ports": 1001 ports; a jail bans at most 256 by port`},
		{"ports = [\"ssh\"]\nprotocol = \"icmp\"", `r.toml:4: jail "s": key "protocol": unknown protocol "icmp"`},
		{`ports = ["22/icmp"]`, `r.toml:3: jail "s": key "ports": port "22/icmp": unknown protocol "icmp"`},
		{`ports = [true]`, `r.toml:3`},
	} {
		c, err := Parse("r.toml", []byte("[jail.s]\nfiles = [\"/a\"]\n"+tc.in+"\n"))
		if err != nil {
			if !strings.HasPrefix(err.Error(), tc.want) || tc.want == "" {
				t.Errorf("%s: %v, want %q", tc.in, err, tc.want)
			}
			continue
		}
		if got := event.FormatPorts(c.Jails["s"].PortRanges()); got != tc.want {
			t.Errorf("%s: ports %q, want %q", tc.in, got, tc.want)
		}
	}
}
