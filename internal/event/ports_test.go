package event

import (
	"net/netip"
	"slices"
	"testing"
)

func TestPorts(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		all      bool
	}{
		{"", "", false},
		{"22", "22/tcp", false},
		{"587/tcp, 25/tcp,465", "25/tcp,465/tcp,587/tcp", false},
		{"53/udp,53/tcp,54/udp", "53/tcp,53-54/udp", false},
		{"1000-2000/tcp,1500-2500/tcp,2501", "1000-2501/tcp", false},
		{"0-65535", "0-65535/tcp", true},
		{"1-65535/tcp,0-65535/udp", "1-65535/tcp,0-65535/udp", true},
		{"1-65535/tcp,53/udp", "1-65535/tcp,53/udp", false},
		{"9-7/sctp", "7-9/sctp", false},
	} {
		ps, err := ParsePorts(tc.in)
		if err != nil {
			t.Errorf("ParsePorts(%q): %v", tc.in, err)
			continue
		}
		if got := FormatPorts(ps); got != tc.want {
			t.Errorf("ParsePorts(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if AllPorts(ps) != tc.all {
			t.Errorf("AllPorts(%q) = %v, want %v", tc.in, !tc.all, tc.all)
		}
		again, _ := ParsePorts(FormatPorts(ps))
		if FormatPorts(again) != tc.want {
			t.Errorf("%q does not read back", tc.want)
		}
	}
	for _, bad := range []string{"x", "70000", "22/icmp", "1-", ","} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("ParsePorts(%q) succeeded", bad)
		}
	}
	d := Decision{Target: AddrPrefix(netip.MustParseAddr("192.0.2.1")), Ports: []PortRange{{Proto: TCP, First: 22, Last: 22}}}
	if d.WholeHost() {
		t.Error("a per-port ban of an address is whole-host")
	}
	d.Target, _ = d.Target.Addr().Prefix(24)
	if !d.WholeHost() {
		t.Error("a prefix ban with ports is not whole-host")
	}
}

// PortSets gives one id per list text, keeps its own copy, and gives no id
// to a new list once its ids would reach Max.
func TestPortSets(t *testing.T) {
	ssh := []PortRange{{Proto: TCP, First: 22, Last: 22}}
	mail := []PortRange{{Proto: TCP, First: 25, Last: 25}, {Proto: TCP, First: 587, Last: 587}}
	p := PortSets{Max: 3}
	if id, ok := p.ID(nil); id != 0 || !ok || p.Len() != 1 {
		t.Fatalf("ID(nil) = %d %v, Len %d; want 0 true, 1", id, ok, p.Len())
	}
	a, _ := p.ID(ssh)
	b, _ := p.ID(mail)
	if again, _ := p.ID(slices.Clone(ssh)); a == 0 || b == a || again != a {
		t.Fatalf("ids %d %d, ssh again %d", a, b, again)
	}
	ssh[0].First = 2222 // the caller's list changes; the interned one does not
	if got := p.List(a); FormatPorts(got) != "22/tcp" {
		t.Fatalf("List(%d) = %s, want 22/tcp", a, FormatPorts(got))
	}
	if id, ok := p.ID([]PortRange{{Proto: UDP, First: 53, Last: 53}}); ok || id != 0 {
		t.Fatalf("a third list with Max 3 got id %d %v", id, ok)
	}
	if again, ok := p.ID(mail); !ok || again != b {
		t.Fatalf("a list already there, past Max: %d %v, want %d", again, ok, b)
	}
	if p.Len() != 3 || p.List(0) != nil || p.List(7) != nil {
		t.Fatalf("Len %d, List(0) %v, List(7) %v", p.Len(), p.List(0), p.List(7))
	}
}
