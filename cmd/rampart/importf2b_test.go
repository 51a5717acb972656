package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/event"
)

// TestImportFail2ban: Debian's stock /etc/fail2ban plus a jail.local with
// the usual customisations becomes a configuration check-config accepts,
// with the jails, thresholds and allowlist carried over and a report.
func TestImportFail2ban(t *testing.T) {
	if _, err := os.Stat("/etc/fail2ban/jail.conf"); err != nil {
		t.Skip("needs Debian's fail2ban (/etc/fail2ban); scripts/test installs it")
	}
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-r", "/etc/fail2ban", dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	f2b := filepath.Join(dir, "fail2ban")
	writeTestFile(t, filepath.Join(f2b, "jail.local"), "[DEFAULT]\nignoreip = 127.0.0.1/8 192.0.2.0/24\nbantime = 1h\nbantime.increment = true\n\n"+
		"[sshd]\nenabled = true\nmaxretry = 3\nbackend = systemd\n\n[postfix]\nenabled = true\nmode = aggressive\nlogpath = /var/log/mail.log\n\n[recidive]\nenabled = true\n\n[murmur]\nenabled = true\nbackend = systemd\n\n[dovecot]\nenabled = true\nlogpath = /srv/mail/dovecot.log\n")
	conf, rep := filepath.Join(dir, "rampart.toml"), filepath.Join(dir, "report.txt")
	if code, _, errs := runCLI("import-fail2ban", "-o", conf, "--report", rep, f2b); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := daemon.Filters(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range daemon.Check(cfg, reg) {
		if !p.Warning {
			t.Errorf("check-config: %v", p.Err)
		}
	}
	if got := strings.Join(cfg.EnabledJails(), ","); got != "dovecot,murmur,postfix,recidive,sshd" {
		t.Errorf("jails %s", got)
	}
	if j := cfg.Jails["sshd"]; j.MaxRetry != 3 || j.BanTime.D().String() != "1h0m0s" {
		t.Errorf("sshd: maxretry %d bantime %v", j.MaxRetry, j.BanTime.D())
	}
	// backend = systemd: a built-in filter's jail selects the journal as
	// Rampart's default jail does (fail2ban's journalmatch names the unit
	// sshd.service, which Debian calls ssh.service); fail2ban's own filter
	// by its journalmatch, "+" meaning "or" there as in fail2ban.
	if j := cfg.Jails["sshd"]; j.Journal == nil || len(j.Files) != 0 || len(j.Journal.Units)+len(j.Journal.Matches) != 0 ||
		!slices.Equal(j.Journal.Identifiers, config.Default().Jails["sshd"].Journal.Identifiers) {
		t.Errorf("sshd: files %v journal %+v", j.Files, j.Journal)
	}
	if j := cfg.Jails["murmur"]; j.Journal == nil || len(j.Files) != 0 ||
		strings.Join(j.Journal.Matches, " ") != "_SYSTEMD_UNIT=murmurd.service + _COMM=murmurd" || len(j.Journal.Units)+len(j.Journal.Identifiers) != 0 {
		t.Errorf("murmur: files %v journal %+v", j.Files, j.Journal)
	}
	// logpath: the default jail's files also read journald when it runs,
	// as that jail does.
	if j := cfg.Jails["postfix"]; j.Journal == nil || !slices.Equal(j.Files, []string{"/var/log/mail.log"}) ||
		!slices.Equal(j.Journal.Identifiers, config.Default().Jails["postfix"].Journal.Identifiers) {
		t.Errorf("postfix: files %v journal %+v", j.Files, j.Journal)
	}
	if j := cfg.Jails["dovecot"]; j.Journal != nil || !slices.Equal(j.Files, []string{"/srv/mail/dovecot.log"}) {
		t.Errorf("dovecot, a file of its own: files %v journal %+v", j.Files, j.Journal)
	}
	if j := cfg.Jails["postfix"]; j.Mode != "aggressive" {
		t.Errorf("postfix mode %q", j.Mode)
	}
	if f, _, ok := reg.Lookup(cfg.Jails["recidive"].Filter); !ok || f.Origin == "" {
		t.Errorf("recidive: want fail2ban's own filter, got %v", f)
	}
	if !strings.Contains(strings.Join(cfg.Allow.Entries, " "), "192.0.2.0/24") {
		t.Errorf("allow %v", cfg.Allow.Entries)
	}
	report, _ := os.ReadFile(rep)
	if got := event.FormatPorts(cfg.Jails["sshd"].PortRanges()); got != "22/tcp" {
		t.Errorf("sshd ports %q, want 22/tcp", got)
	}
	if got := event.FormatPorts(cfg.Jails["postfix"].PortRanges()); got != "25/tcp,465/tcp,587/tcp" {
		t.Errorf("postfix ports %q", got)
	}
	if got := cfg.Jails["recidive"].PortRanges(); got != nil {
		t.Errorf("recidive ports %v, want a whole-host ban (its banaction bans every port)", got)
	}
	for _, want := range []string{"mapped        sshd: port = ssh", "ports 22/tcp: only they are banned", "recidive: port = 0:65535", "mapped        sshd: maxretry", "Disabled, not migrated:"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}
