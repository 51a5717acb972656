package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
)

// parityJailLocal is a jail.local with the customisations fail2ban users
// commonly make: their own networks ignored, longer bans, nftables actions,
// sshd on a second port with a lower maxretry, postfix in aggressive mode,
// postfix-sasl and dovecot on the mail log. LOGDIR is the test's.
const parityJailLocal = `[DEFAULT]
ignoreip = 127.0.0.1/8 ::1 203.0.113.0/24
bantime  = 1h
findtime = 10m
maxretry = 5
backend  = polling
banaction = nftables-multiport
banaction_allports = nftables-allports

[sshd]
enabled  = true
port     = ssh,2222
maxretry = 3
logpath  = LOGDIR/auth.log

[postfix]
enabled = true
mode    = aggressive
logpath = LOGDIR/mail.log

[postfix-sasl]
enabled = true
logpath = LOGDIR/mail.log

[dovecot]
enabled = true
logpath = LOGDIR/mail.log
`

// crossAddressOff turns off Rampart's scenarios that look across addresses
// (and its own recidive), leaving each jail's per-address counting, as
// fail2ban has it.
const crossAddressOff = `
[spray]
enabled = false
[prefixes]
enabled = false
[surge]
enabled = false
[slow]
enabled = false
[enumeration]
enabled = false
[relays]
enabled = false
[recidive]
bans = 1000
`

// TestImportReplayParity imports Debian's stock /etc/fail2ban plus a
// jail.local with common customisations, checks the configuration, and
// replays the same simulated logs (attacksim: brute force, rotating
// botnets, slow attackers, enumeration, legitimate users) through fail2ban's
// own code (testdata/f2b_jails.py) and through Rampart:
//
//  1. as imported (built-in filters, Rampart's scenarios on): every address
//     fail2ban bans, Rampart bans too, as an address or inside a banned
//     network, except legitimate users who logged in (known-good clients,
//     whose typos Rampart forgives); Rampart's cross-address scenarios ban
//     more;
//  2. with those scenarios off: Rampart bans nothing fail2ban does not, and
//     exactly fail2ban's addresses in sshd and postfix-sasl; in postfix
//     (aggressive) and dovecot it bans fewer, because its filters count one
//     failure per failed attempt where fail2ban's count each log line of
//     it (two or three): every such address is banned in run 3;
//  3. with fail2ban's own filters as well (copies of filter.d/sshd.conf,
//     postfix.conf and dovecot.conf under other names): fail2ban's bans,
//     but where fail2ban's count of recent failures (an estimate from the
//     rate since the first one) and Rampart's (the failures within
//     findtime) disagree on reaching maxretry, checked from the failures
//     fail2ban counted.
func TestImportReplayParity(t *testing.T) {
	if _, err := os.Stat("/etc/fail2ban/jail.conf"); err != nil {
		t.Skip("needs Debian's fail2ban (/etc/fail2ban); scripts/test installs it")
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import fail2ban").Run(); err != nil {
		t.Skip("needs Debian's python3 with fail2ban's modules; scripts/test installs fail2ban")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build attacksim")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "../../bench/cmd/attacksim", "-o", dir, "-seed", "1", "-scale", "0.2", "-duration", "3h", "-warmup", "1h")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("attacksim: %v\n%s", err, out)
	}
	f2b := filepath.Join(dir, "fail2ban")
	if out, err := exec.Command("cp", "-r", "/etc/fail2ban", f2b).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	writeTestFile(t, filepath.Join(f2b, "jail.local"), strings.ReplaceAll(parityJailLocal, "LOGDIR", dir))

	// fail2ban, on the configuration as it is.
	f2bBans, f2bFails := filepath.Join(dir, "fail2ban.jsonl"), filepath.Join(dir, "failures.jsonl")
	if out, err := exec.Command(py, "testdata/f2b_jails.py", "--conf", f2b, "--year", "2025", "-o", f2bBans, "--failures", f2bFails).CombinedOutput(); err != nil {
		t.Fatalf("fail2ban replay: %v\n%s", err, out)
	} else {
		t.Logf("%s", out)
	}
	fb := readBans(t, f2bBans)

	// The import, and check-config on what it wrote.
	conf := filepath.Join(dir, "rampart.toml")
	if code, _, errs := runCLI("import-fail2ban", "-o", conf, "--report", filepath.Join(dir, "report.txt"), f2b); code != 0 {
		t.Fatalf("import-fail2ban: exit %d: %s", code, errs)
	}
	if code, out, errs := runCLI("check-config", "--config", conf); code != 0 {
		t.Fatalf("check-config: exit %d: %s%s", code, out, errs)
	}
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.EnabledJails(), ","); got != "dovecot,postfix,postfix-sasl,sshd" {
		t.Fatalf("imported jails %s", got)
	}
	// The comparisons below walk fail2ban's bans: a replay that banned
	// nothing in a jail would leave them nothing to check there.
	for _, jail := range cfg.EnabledJails() {
		if len(fb[jail]) == 0 {
			t.Fatalf("fail2ban's replay banned nothing in %s", jail)
		}
	}
	imported, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	bin := rampartBinary(t)
	replay := func(name, extra string) replayResult {
		t.Helper()
		path := filepath.Join(dir, name+".toml")
		writeTestFile(t, path, string(imported)+extra)
		cmd := exec.Command(bin, "replay", "--config", path, "--json", "--year", "2025", filepath.Join(dir, "auth.log"), filepath.Join(dir, "mail.log"))
		// Year-less syslog stamps are read as UTC by both tools. A
		// process of its own, not time.Local set in this one, which
		// other goroutines of the test binary read.
		cmd.Env = append(os.Environ(), "TZ=UTC")
		var out, errs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errs
		if err := cmd.Run(); err != nil {
			t.Fatalf("replay %s: %v: %s", name, err, errs.String())
		}
		return parseReplay(t, out.String())
	}

	// 1. As imported.
	r1 := replay("imported", "")
	var forgiven, extra []string
	for _, jail := range fb.jails() {
		for ip := range fb[jail] {
			a := netip.MustParseAddr(ip)
			switch {
			case r1.covers(a):
			case r1.good[a]:
				forgiven = append(forgiven, jail+" "+ip)
			default:
				t.Errorf("as imported: fail2ban's %s bans %s, Rampart does not (nor a network holding it), and it never logged in", jail, ip)
			}
		}
	}
	for _, b := range r1.bans {
		if !fb.any(b.target) {
			extra = append(extra, b.target.String())
		}
	}
	t.Logf("1. as imported: every fail2ban ban covered, but %d legitimate user(s) who logged in %v; Rampart bans %d more targets (%s)",
		len(forgiven), forgiven, len(slices.Compact(slices.Sorted(slices.Values(extra)))), r1.scenarios())

	// 2. Rampart's cross-address scenarios off.
	r2 := replay("per-address", crossAddressOff)
	// 3. ... and fail2ban's own filters.
	for _, f := range []string{"sshd", "postfix", "dovecot"} {
		data, err := os.ReadFile(filepath.Join(f2b, "filter.d", f+".conf"))
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(f2b, "filter.d", "f2b-"+f+".conf"), string(data))
		imported = []byte(strings.ReplaceAll(string(imported), fmt.Sprintf("filter = %q", f), fmt.Sprintf("filter = %q", "f2b-"+f)))
	}
	r3 := replay("fail2ban-filters", crossAddressOff)
	counts := readFailures(t, f2bFails)
	for _, jail := range fb.jails() {
		j := cfg.Jails[jail]
		want, got2, got3 := fb[jail], r2.byJail(jail), r3.byJail(jail)
		for ip := range got2 {
			if !want[ip] {
				t.Errorf("scenarios off: Rampart's %s bans %s, fail2ban does not", jail, ip)
			}
		}
		fewer := 0
		for ip := range want {
			if got2[ip] {
				continue
			}
			if jail == "sshd" || jail == "postfix-sasl" {
				t.Errorf("scenarios off: fail2ban's %s bans %s, Rampart does not", jail, ip)
			}
			if !got3[ip] && !counts.estimateOnly(jail, ip, j.MaxRetry, j.FindTime.D()) {
				t.Errorf("scenarios off: fail2ban's %s bans %s, Rampart does not even with fail2ban's filter", jail, ip)
			}
			fewer++
		}
		// Run 3: the same filters; only the counting may differ.
		var estimate []string
		for ip := range want {
			if !got3[ip] {
				if !counts.estimateOnly(jail, ip, j.MaxRetry, j.FindTime.D()) {
					t.Errorf("fail2ban's filters: fail2ban's %s bans %s after %d failures within %v, Rampart does not", jail, ip, counts.most(jail, ip, j.FindTime.D()), j.FindTime)
				}
				estimate = append(estimate, ip)
			}
		}
		for ip := range got3 {
			if !want[ip] {
				if counts.most(jail, ip, j.FindTime.D()) < j.MaxRetry {
					t.Errorf("fail2ban's filters: Rampart's %s bans %s, whose failures fail2ban counted never reached %d within %v", jail, ip, j.MaxRetry, j.FindTime)
				}
				estimate = append(estimate, ip+" (Rampart only)")
			}
		}
		t.Logf("%-12s fail2ban %3d; scenarios off %3d (%d fewer: one failure per attempt); with fail2ban's filters %3d (%d differ by fail2ban's rate estimate %v)",
			jail, len(want), len(got2), fewer, len(got3), len(estimate), estimate)
	}
}

// banSet is bans by jail and address.
type banSet map[string]map[string]bool

func readBans(t *testing.T, path string) banSet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bs := banSet{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var b struct{ IP, Jail string }
		if err := json.Unmarshal(sc.Bytes(), &b); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if bs[b.Jail] == nil {
			bs[b.Jail] = map[string]bool{}
		}
		bs[b.Jail][b.IP] = true
	}
	return bs
}

func (bs banSet) jails() []string {
	var js []string
	for j := range bs {
		js = append(js, j)
	}
	sort.Strings(js)
	return js
}

// any reports whether some jail banned an address p holds.
func (bs banSet) any(p netip.Prefix) bool {
	for _, ips := range bs {
		for ip := range ips {
			if p.Contains(netip.MustParseAddr(ip)) {
				return true
			}
		}
	}
	return false
}

type replayBan struct {
	target         netip.Prefix
	jail, scenario string
}

// replayResult is what `rampart replay --json` printed: bans, and the
// addresses it found good (logged in).
type replayResult struct {
	bans []replayBan
	good map[netip.Addr]bool
}

func parseReplay(t *testing.T, out string) replayResult {
	t.Helper()
	r := replayResult{good: map[netip.Addr]bool{}}
	for line := range strings.Lines(out) {
		var d struct{ IP, Action, Scenario, Jail string }
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("replay output %q: %v", line, err)
		}
		p, err := netip.ParsePrefix(d.IP)
		if err != nil {
			a := netip.MustParseAddr(d.IP)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		switch d.Action {
		case "ban":
			r.bans = append(r.bans, replayBan{target: p, jail: d.Jail, scenario: d.Scenario})
		case "allow":
			if d.Scenario == "known-good" {
				r.good[p.Addr()] = true
			}
		}
	}
	return r
}

func (r replayResult) covers(a netip.Addr) bool {
	return slices.ContainsFunc(r.bans, func(b replayBan) bool { return b.target.Contains(a) })
}

func (r replayResult) byJail(jail string) map[string]bool {
	m := map[string]bool{}
	for _, b := range r.bans {
		if b.jail == jail && b.target.IsSingleIP() {
			m[b.target.Addr().String()] = true
		}
	}
	return m
}

func (r replayResult) scenarios() string {
	n := map[string]int{}
	for _, b := range r.bans {
		n[b.scenario]++
	}
	var parts []string
	for s, c := range n {
		parts = append(parts, fmt.Sprintf("%s %d", s, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// failureLog is the failures fail2ban counted, by jail and address.
type failureLog map[string][]time.Time

func readFailures(t *testing.T, path string) failureLog {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl := failureLog{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var x struct {
			IP, Jail, Time string
			Count          int
		}
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		at, err := time.Parse(time.RFC3339, x.Time)
		if err != nil {
			t.Fatal(err)
		}
		for range max(x.Count, 1) {
			fl[x.Jail+" "+x.IP] = append(fl[x.Jail+" "+x.IP], at)
		}
	}
	return fl
}

// most returns the most failures of ip in jail within any window of
// length w, as Rampart counts them.
func (fl failureLog) most(jail, ip string, w time.Duration) int {
	ts := fl[jail+" "+ip]
	best := 0
	for i := range ts {
		n := 0
		for j := i; j < len(ts) && ts[j].Sub(ts[i]) <= w; j++ {
			n++
		}
		best = max(best, n)
	}
	return best
}

// estimateOnly reports whether fail2ban's ban of ip could only come from
// its estimate of the recent failures: they never reached maxretry within
// findtime.
func (fl failureLog) estimateOnly(jail, ip string, maxretry int, findtime time.Duration) bool {
	return fl.most(jail, ip, findtime) < maxretry
}
