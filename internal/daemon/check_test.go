package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/geo/geotest"
)

// TestCheck: what `rampart check-config` finds beyond parsing, each a
// configuration that parses and that run would fail on or quietly run
// weaker with.
func TestCheck(t *testing.T) {
	if os.Getenv("RAMPART_DOVECOT_AUTH") != "" {
		t.Skip("RAMPART_DOVECOT_AUTH is set: it replaces auth_file")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "auth.log")
	secret := filepath.Join(dir, "dovecot.auth")
	empty := filepath.Join(dir, "empty.auth")
	for p, data := range map[string]string{log: "", secret: "Basic cmFtcGFydDpzZWNyZXQ=\n", empty: ""} {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	asn := geotest.WriteASN(t, geotest.AS{Number: 64500, Org: "Example", Networks: []string{"192.0.2.0/24"}})
	jail := "[jail.sshd]\nfiles = [\"" + log + "\"]\n"
	dovecot := "[jail.dovecot]\nfiles = [\"" + log + "\"]\n[dovecot_policy]\n"
	tests := []struct {
		name, toml string
		errors     []string // each a problem's text, in order
		warnings   []string
	}{
		{name: "fine", toml: jail},
		{name: "fine with a policy server and an ASN database",
			toml: jail + dovecot + "listen = \"127.0.0.1:10024\"\nauth_file = \"" + secret + "\"\n[asn]\ndatabase = \"" + asn + "\"\n"},
		{name: "no jail", toml: "[daemon]\nlog_level = \"info\"\n",
			errors: []string{"r.toml: no enabled jail: nothing would be watched"}},
		{name: "only disabled jails", toml: jail + "enabled = false\n",
			errors: []string{"r.toml: no enabled jail"}},
		{name: "unknown filter", toml: jail + "filter = \"sshdd\"\n",
			errors: []string{`r.toml:3: jail "sshd": unknown filter "sshdd"`}},
		{name: "auth_file missing", toml: jail + dovecot + "listen = \"127.0.0.1:10024\"\nauth_file = \"" + filepath.Join(dir, "nope") + "\"\n",
			errors: []string{"r.toml:7: dovecot policy server: auth_file: open " + filepath.Join(dir, "nope") + ": no such file or directory"}},
		{name: "auth_file unreadable", toml: jail + dovecot + "listen = \"127.0.0.1:10024\"\nauth_file = \"" + dir + "\"\n",
			errors: []string{"r.toml:7: dovecot policy server: auth_file: read " + dir + ": is a directory"}},
		{name: "auth_file empty", toml: jail + dovecot + "listen = \"127.0.0.1:10024\"\nauth_file = \"" + empty + "\"\n",
			errors: []string{"r.toml:7: " + empty + " is empty: Dovecot's requests would not be authenticated"}},
		{name: "ASN database missing", toml: jail + "[asn]\ndatabase = \"" + filepath.Join(dir, "GeoLite2-ASN.mmdb") + "\"\n",
			errors: []string{"r.toml:4: geo: ASN database " + filepath.Join(dir, "GeoLite2-ASN.mmdb")}},
		{name: "ASN database not a database", toml: jail + "[asn]\ndatabase = \"" + log + "\"\n",
			errors: []string{"r.toml:4: geo: ASN database " + log}},
		{name: "listen address not on this host", toml: jail + "[syslog]\nudp = \"127.0.0.1:5514\"\ntcp = \"192.0.2.77:5514\"\n",
			errors:   []string{"r.toml:5: 192.0.2.77 is not an address of this host: run cannot listen on it"},
			warnings: []string{`r.toml:5: "192.0.2.77:5514" listens beyond this host, and syslog has no authentication`}},
		{name: "syslog on every address", toml: jail + "[syslog]\nudp = \"0.0.0.0:5514\"\n",
			warnings: []string{`r.toml:4: "0.0.0.0:5514" listens beyond this host, and syslog has no authentication`}},
		{name: "metrics on loopback", toml: jail + "[metrics]\nlisten = \"127.0.0.1:9842\"\n"},
		{name: "metrics on every address", toml: jail + "[metrics]\nlisten = \"0.0.0.0:9842\"\n",
			warnings: []string{`r.toml:4: "0.0.0.0:9842" serves the metrics beyond this host`}},
		{name: "missing log file", toml: "[jail.sshd]\nfiles = [\"" + filepath.Join(dir, "missing.log") + "\", \"" + log + "\"]\n",
			warnings: []string{`r.toml:2: jail "sshd": ` + filepath.Join(dir, "missing.log") + " does not exist (yet): run waits for it"}},
	}
	reg, err := filter.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parseConfig(t, tt.toml)
			var errs, warns []string
			for _, p := range Check(cfg, reg) {
				if p.Warning {
					warns = append(warns, p.Err.Error())
				} else {
					errs = append(errs, p.Err.Error())
				}
			}
			match(t, "errors", errs, tt.errors)
			match(t, "warnings", warns, tt.warnings)
		})
	}
}

func match(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("%s[%d]:\n got  %s\n want %s...", what, i, got[i], want[i])
		}
	}
}

// TestCheckJournal: a jail reading only journald, on a host without it,
// reads nothing: a warning.
func TestCheckJournal(t *testing.T) {
	cfg := parseConfig(t, "[jail.sshd]\njournal = { identifiers = [\"sshd\"] }\n")
	var got []string
	checkSources(cfg, cfg.EnabledJails(), false, func(key, format string, args ...any) {
		got = append(got, cfg.Errorf(key, format, args...).Error())
	})
	match(t, "warnings", got, []string{`r.toml:2: jail "sshd": journald is not running here: jail sshd reads nothing`})
	got = nil
	checkSources(cfg, cfg.EnabledJails(), true, func(key, format string, args ...any) { got = append(got, key) })
	match(t, "warnings with journald", got, nil)
}

// TestCheckJournalDirectory: a jail reading a journal directory needs no
// journald, only the directory; a missing one is a warning.
func TestCheckJournalDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		dir  string
		want []string
	}{
		{dir, nil},
		{filepath.Join(dir, "missing"), []string{`r.toml:2: jail "sshd": journal directory ` + filepath.Join(dir, "missing") + `: stat`}},
	} {
		cfg := parseConfig(t, fmt.Sprintf("[jail.sshd]\njournal = { directory = %q, identifiers = [\"sshd\"] }\nfiles = [\"/var/log/auth.log\"]\n", tc.dir))
		if plans := planSources(cfg, cfg.EnabledJails(), false); len(plans) != 1 || plans[0].jrnl == nil {
			t.Fatalf("%s: plans %+v, want the journal without journald", tc.dir, plans)
		}
		var got []string
		checkSources(cfg, cfg.EnabledJails(), false, func(key, format string, args ...any) {
			got = append(got, cfg.Errorf(key, format, args...).Error())
		})
		match(t, "warnings for "+tc.dir, got, tc.want)
	}
}
