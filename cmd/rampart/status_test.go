package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/daemon"
)

// TestStatusExitCodes runs `rampart status` against an in-process daemon
// whose only log is missing: degraded (exit 3), then ok once it appears.
func TestStatusExitCodes(t *testing.T) {
	dir := t.TempDir()
	cfgPath, logPath, sock := dryRunConfig(t, dir)
	runDaemonInProcess(t, cfgPath)

	await := func(what string, cond func(code int, out, errs string) bool, args ...string) (int, string, string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, out, errs := runCLI(append([]string{"status", "--socket", sock}, args...)...)
			if cond(code, out, errs) {
				return code, out, errs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: exit %d\n%s%s", what, code, out, errs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Until its sources have started, the daemon says nothing is watched:
	// wait for the missing log's own line.
	_, out, _ := await("degraded", func(code int, out, _ string) bool {
		return code == 3 && strings.Contains(out, "log file missing")
	}, "sshd")
	for _, want := range []string{"health: DEGRADED", "source " + logPath + ": log file missing", "nothing is being watched", "Status for the jail: sshd\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ := runCLI("status", "--socket", sock, "--json")
	var st daemon.Status
	if err := json.Unmarshal([]byte(out), &st); code != 3 || err != nil || len(daemon.Degraded(st.Health)) != 2 {
		t.Fatalf("status --json: exit %d, %v, health %+v", code, err, st.Health)
	}
	if code, _, errs := runCLI("status", "--socket", sock, "nope"); code != 2 || !strings.Contains(errs, `unknown jail "nope"`) {
		t.Fatalf("unknown jail: exit %d, %s", code, errs)
	}
	if code, _, errs := runCLI("status", "--socket", sock, "--bans", "some"); code != 2 || !strings.Contains(errs, `--bans "some"`) {
		t.Fatalf("--bans some: exit %d, %s", code, errs)
	}
	os.WriteFile(logPath, nil, 0o644)
	_, out, _ = await("ok once the log exists", func(code int, _, _ string) bool { return code == 0 })
	if !strings.Contains(out, "health: ok") {
		t.Fatalf("status:\n%s", out)
	}
}

// dryRunConfig writes a configuration for a daemon in dir with the log-only
// firewall, following dir/auth.log (not created) with maxretry 3.
func dryRunConfig(t *testing.T, dir string) (cfgPath, logPath, sock string) {
	t.Helper()
	logPath = filepath.Join(dir, "auth.log")
	sock = filepath.Join(dir, "ctl.sock")
	cfgPath = filepath.Join(dir, "rampart.toml")
	err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[daemon]
state_dir = %q
socket = %q
[firewall]
backend = "log"
[jail.sshd]
filter = "sshd"
files = [%q]
maxretry = 3
`, filepath.Join(dir, "state"), sock, logPath)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return cfgPath, logPath, sock
}

var updateGolden = flag.Bool("update", false, "rewrite golden files")

// TestPrintStatusGolden keeps the people's status layout from drifting.
func TestPrintStatusGolden(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	st := daemon.Status{
		Version: "v1.2.3", Started: t0,
		Health: []daemon.Health{
			{Component: "store", State: daemon.HealthOK, Since: t0},
			{Component: "source /var/log/auth.log", State: daemon.HealthDegraded, Detail: "log file missing: read from its start when it appears", Since: t0.Add(time.Minute)},
		},
		Reload:   daemon.ReloadStatus{Loaded: t0, Reloads: 2, Failures: 1},
		Firewall: daemon.FirewallStatus{Backend: "nftables", Applied: 10, Failed: 1, CarvedOut: 2, Repairs: 1, Restored: 12},
		Engine:   daemon.EngineStatus{Events: 7, Decisions: 3, Tracked: 1, TrackedCap: 1000000},
		Insight:  daemon.InsightStatus{Dropped: 5},
		Jails:    []daemon.JailStatus{{Name: "sshd", MaxRetry: 5, FindTime: "10m0s", BanTime: "1h0m0s", Banned: 1}},
		Sources:  []daemon.SourceState{{Source: "/var/log/auth.log", Jails: []string{"sshd"}, Lines: 100, Skipped: 2, Stale: 3}},
		Active:   []daemon.Ban{{IP: "192.0.2.1", Action: "ban", Jail: "sshd", Scenario: "ip-failures", Reason: "5 failures", Start: t0, End: t0.Add(2 * time.Hour), Origin: "local"}},
		// --bans 1 of 3: the older two are counted, not listed
		ActiveTotal: 3,
	}
	// Times are printed in the location of now, here UTC.
	var b strings.Builder
	printStatus(&b, st, t0.Add(time.Hour))
	golden := filepath.Join("testdata", "status.golden.txt")
	if *updateGolden {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, []byte(b.String()), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("status output differs from %s (-update to accept):\n%s", golden, b.String())
	}
}

// TestPrintJailStatusGolden keeps `rampart status JAIL`, fail2ban-client's
// layout and what Rampart adds, from drifting.
func TestPrintJailStatusGolden(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	st := daemon.Status{
		Version: "v1.2.3", Started: t0,
		Health: []daemon.Health{{Component: "store", State: daemon.HealthOK, Since: t0}},
		Jails: []daemon.JailStatus{{Name: "sshd", MaxRetry: 5, FindTime: "10m0s", BanTime: "1h0m0s", Banned: 3, Ports: "22/tcp",
			Failing: 4, FailedTotal: 57, BannedTotal: 9}},
		Sources: []daemon.SourceState{
			{Source: "/var/log/auth.log", Jails: []string{"sshd"}, Lines: 100},
			{Source: "journald identifiers=sshd", Jails: []string{"sshd"}, Lines: 20},
		},
		Active: []daemon.Ban{
			{IP: "192.0.2.1", Action: "ban", Ports: "22/tcp", Jail: "sshd", Scenario: "ip-failures", Reason: "5 failures within 10m", Start: t0, End: t0.Add(2 * time.Hour), Origin: "local"},
			{IP: "192.0.2.1", Action: "ban", Jail: "sshd", Scenario: "recidive", Reason: "banned 5 times within 1d", Start: t0, End: t0.Add(7 * 24 * time.Hour), Origin: "local"},
			{IP: "2001:db8::7", Action: "ban", Ports: "22/tcp", Jail: "sshd", Scenario: "slow", Reason: "8 failures within 1d, spread out", Start: t0, Origin: "local"},
		},
		ActiveTotal: 3,
	}
	var b strings.Builder
	printJailStatus(&b, st, t0.Add(time.Hour))
	golden := filepath.Join("testdata", "status_jail.golden.txt")
	if *updateGolden {
		os.WriteFile(golden, []byte(b.String()), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("jail status output differs from %s (-update to accept):\n%s", golden, b.String())
	}
}
