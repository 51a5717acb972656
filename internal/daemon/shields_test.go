package daemon

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/netnstest"
)

// TestShieldsFollowReload: with the nftables enforcer the daemon installs
// the configured shields and their jails, a reload changes a limit and
// turns a group off in the kernel, and status shows the groups in force.
func TestShieldsFollowReload(t *testing.T) {
	p := netnstest.New(t)
	netnstest.RequireBinary(t, "nft")
	dir := t.TempDir()
	srv := p.Listen(netip.AddrPortFrom(p.Server4, 0))
	group := func(conns int, web bool) string {
		return "[shields.ssh]\nports = [" + strconv.Itoa(int(srv.Port())) + "]\nconns = " + strconv.Itoa(conns) +
			"\n[shields.web]\nenabled = " + strconv.FormatBool(web) + "\n"
	}
	h := startHarnessWith(t, dir, 3, func(o *Options) {
		enf, err := firewall.NewNFTables(context.Background(), firewall.NFTablesConfig{NetNSFd: p.Server.Fd(), Logger: o.Logger})
		if err != nil {
			t.Fatal(err)
		}
		o.Enforcer, o.EnforcerName = enf, "nftables"
	}, group(1, true))
	d := h.d
	list := func(chain string) string {
		out, _ := p.Server.Exec("nft", "list", "chain", "inet", "rampart", chain)
		return out
	}
	if !strings.Contains(list("shield_ssh"), "ct count over 1 ") || !strings.Contains(list("shield_web"), "limit rate over 50/second") {
		t.Fatalf("shields as configured are not in the kernel:\n%s\n%s", list("shield_ssh"), list("shield_web"))
	}
	jails := map[string]bool{}
	for _, j := range d.Status().Jails {
		jails[j.Name] = true
	}
	if !jails[floodJail] || !jails[portscanJail] {
		t.Errorf("jails %v: want flood and portscan beside sshd", jails)
	}

	writeConfig(t, dir, h.logPath, 3, group(7, false))
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list("shield_ssh"), "ct count over 7 ") || strings.Contains(list("shield_web"), "chain shield_web {") {
		t.Fatalf("after the reload:\n%s\n%s", list("shield_ssh"), list("shield_web"))
	}
	st := d.Status()
	if st.Shields == nil || len(st.Shields.Counters) == 0 || st.Shields.Counters[0].Group != "ssh" {
		t.Fatalf("status shields %+v", st.Shields)
	}
	for _, c := range st.Shields.Counters {
		if c.Group == "web" {
			t.Errorf("a group turned off is still counted: %+v", c)
		}
	}
}
