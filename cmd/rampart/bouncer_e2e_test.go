package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/logtest"
	"github.com/rampart-dev/rampart/internal/netnstest"
)

// TestCrowdSecBouncer runs Debian's crowdsec-firewall-bouncer against
// Rampart's [api] inside a network namespace: the bouncer's stream sync
// puts Rampart's bans in its own nftables sets, takes a lifted ban out,
// and removes its tables when stopped. The blocklists are read too.
func TestCrowdSecBouncer(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireBinary(t, "nft")
	netnstest.RequireBinary(t, "crowdsec-firewall-bouncer")
	bin := rampartBinary(t)
	ns := netnstest.NewNamespace(t, "bnc")
	dir := t.TempDir()
	socket, logPath, keyFile := filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "auth.log"), filepath.Join(dir, "fw.key")
	const key = "bouncer-key-0123456789abcdef"
	os.WriteFile(keyFile, []byte(key+"\n"), 0o600)
	appendLines(t, logPath, "Nov 22 00:00:00 srv sshd[1]: Server listening on 0.0.0.0 port 22.")
	cfg := filepath.Join(dir, "rampart.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q
[firewall]
backend = "log"
[api]
listen = "127.0.0.1:8089"
key_files = { firewall = %q }
[jail.sshd]
filter = "sshd"
files = [%q]
`, filepath.Join(dir, "state"), socket, keyFile, logPath)), 0o644)
	startDaemon(t, ns, bin, cfg, socket)
	c := daemon.NewClient(socket)
	ctx := context.Background()
	for _, ip := range []string{"192.0.2.55", "198.51.100.0/24", "2001:db8::7"} {
		if _, err := c.Ban(ctx, daemon.BanRequest{IP: ip, DurationS: 3600}); err != nil {
			t.Fatal(err)
		}
	}

	bcfg := filepath.Join(dir, "bouncer.yaml")
	os.WriteFile(bcfg, []byte(fmt.Sprintf(`mode: nftables
pid_dir: %s
update_frequency: 200ms
log_mode: stdout
log_level: debug
api_url: http://127.0.0.1:8089/
api_key: %s
disable_ipv6: false
deny_action: DROP
deny_log: false
supported_decisions_types:
  - ban
nftables:
  ipv4:
    enabled: true
    set-only: false
    table: crowdsec
    chain: crowdsec-chain
  ipv6:
    enabled: true
    set-only: false
    table: crowdsec6
    chain: crowdsec6-chain
prometheus:
  enabled: false
`, dir, key)), 0o600)
	b := exec.Command("ip", "netns", "exec", ns.Name, "crowdsec-firewall-bouncer", "-c", bcfg)
	out := &logtest.Buffer{}
	b.Stdout, b.Stderr = out, out
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			b.Process.Kill()
			<-done
		}
	})
	blog := func() string {
		l, _ := os.ReadFile(filepath.Join(dir, "crowdsec-firewall-bouncer.log"))
		return out.String() + string(l)
	}
	ruleset := func() string { s, _ := ns.Exec("nft", "list", "ruleset"); return s }
	wait := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond(ruleset()) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\nruleset:\n%s\nbouncer:\n%s", what, ruleset(), blog())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("the bouncer to install Rampart's bans", func(rs string) bool {
		return strings.Contains(rs, "192.0.2.55") && strings.Contains(rs, "2001:db8::7")
	})
	// The bouncer asks for no scope: like the Local API, Rampart then
	// sends addresses only (this bouncer's sets hold no ranges: a /24 would
	// become its first address).
	if rs := ruleset(); strings.Contains(rs, "198.51.100.0") {
		t.Errorf("a range reached a bouncer that did not ask for ranges:\n%s", rs)
	}
	if _, err := c.Unban(ctx, "192.0.2.55"); err != nil {
		t.Fatal(err)
	}
	wait("the bouncer to remove the lifted ban", func(rs string) bool {
		return !strings.Contains(rs, "192.0.2.55") && strings.Contains(rs, "2001:db8::7")
	})

	// The blocklist, over the same key.
	text, err := ns.Exec("curl", "-sf", "-H", "X-Api-Key: "+key, "http://127.0.0.1:8089/v1/blocklist.txt")
	if err != nil || text != "198.51.100.0/24\n2001:db8::7\n" {
		t.Errorf("blocklist.txt = %q, %v", text, err)
	}
	if _, err := ns.Exec("curl", "-sf", "-H", "X-Api-Key: wrong-key-0123456789", "http://127.0.0.1:8089/v1/blocklist.txt"); err == nil {
		t.Error("the blocklist was served with a wrong key")
	}

	b.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the bouncer did not stop\n%s", blog())
	}
	stopped = true
}
