package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c := Default()
	j := c.Jails["sshd"]
	if j == nil || j.Filter != "sshd" || j.MaxRetry != 5 || j.BanTime.D() != 10*time.Minute {
		t.Fatalf("default sshd jail = %+v", j)
	}
	// An unknown SSH user counts double; an unknown mail login (often
	// "name" typed for "name@domain") counts like a wrong password.
	if w := j.Weights["unknown-user"]; w != 2 {
		t.Errorf("sshd unknown-user weight %d, want 2", w)
	}
	for _, name := range []string{"postfix", "dovecot"} {
		if w, ok := c.Jails[name].Weights["unknown-user"]; ok || len(c.Defaults.Weights) != 0 {
			t.Errorf("jail %s: unknown-user weight %d set (defaults %v), want the default 1", name, w, c.Defaults.Weights)
		}
	}
}

func TestAllowLoopback(t *testing.T) {
	if !Default().Allow.Loopback {
		t.Fatal("loopback not allowed by default")
	}
	c, err := Parse("r.toml", []byte("[allow]\nloopback = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Allow.Loopback {
		t.Fatal("loopback = false ignored")
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"unknown key with hint", "[jail.sshd]\nfiles = [\"/var/log/auth.log\"]\nmaxretries = 3\n", `rampart.toml:3: jail "sshd": unknown key "maxretries" (did you mean "maxretry"?)`},
		{"unknown table key", "[daemon]\nstatedir = \"/x\"\n", `rampart.toml:2: unknown key "statedir" (did you mean "state_dir"?)`},
		{"bad duration", "[defaults]\nbantime = \"ten minutes\"\n", `rampart.toml:2: key "defaults.bantime": bad duration "ten minutes": expected a number at "ten minutes" (want e.g. "90s", "10m", "1d12h", or a number of seconds)`},
		{"wrong type", "[defaults]\nmaxretry = \"five\"\n", `rampart.toml:2: key "defaults.maxretry":`},
		{"bad backend", "[firewall]\nbackend = \"pf\"\n", `rampart.toml:2: key "backend": "pf" is not one of auto, nftables, ipset, command, log`},
		{"jail without source", "[jail.web]\nfilter = \"nginx-http-auth\"\n", `rampart.toml:1: jail "web": no log source: set files, journal or syslog = true`},
		{"relative file", "[jail.web]\nfilter = \"nginx-http-auth\"\nfiles = [\"access.log\"]\n", `rampart.toml:3: jail "web": key "files": "access.log" is not an absolute path`},
		{"journal match like an option", "[jail.web]\nfilter = \"sshd\"\njournal = { matches = [\"--file=/x\"] }\n", `rampart.toml:3: jail "web": key "journal": matches: "--file=/x" is not FIELD=VALUE`},
		{"journal match, field in lower case", "[jail.web]\nfilter = \"sshd\"\njournal = { matches = [\"_comm=sshd\"] }\n", `rampart.toml:3: jail "web": key "journal": matches: "_comm=sshd" is not FIELD=VALUE`},
		{"journal match, + first", "[jail.web]\nfilter = \"sshd\"\njournal = { matches = [\"+\", \"_COMM=sshd\"] }\n", `rampart.toml:3: jail "web": key "journal": matches: "+" must stand between two terms`},
		{"relative journal directory", "[jail.web]\nfilter = \"sshd\"\njournal = { directory = \"journal\" }\n", `rampart.toml:3: jail "web": key "journal": directory "journal" is not an absolute path`},
		{"bad allow entry", "[allow]\nentries = [\"10.0.0.0/33\"]\n", `rampart.toml:2: entry 1: "10.0.0.0/33" is not a valid CIDR prefix`},
		{"syslog jail without listener", "[jail.x]\nsyslog = true\n", `rampart.toml:2: jail "x": syslog = true but no [syslog] listener`},
		{"syntax error", "[jail.sshd\n", `rampart.toml:1:`},
		{"maxretry below one", "[jail.s]\nfiles=[\"/a\"]\nmaxretry = -1\n", `rampart.toml:3: jail "s": key "maxretry": -1 is out of range (1 to 1000)`},
		{"dashboard off loopback without a token", "[web]\nlisten = \"0.0.0.0:9843\"\n", `rampart.toml:2: key "listen": "0.0.0.0:9843" is not a loopback address: set token_file too`},
		{"dashboard on a name", "[web]\nlisten = \"example.org:9843\"\n", `rampart.toml:2: key "listen": "example.org:9843" is not an address:port (an IP address or localhost)`},
		{"dashboard token path relative", "[web]\nlisten = \"127.0.0.1:9843\"\ntoken_file = \"token\"\n", `rampart.toml:3: key "token_file": "token" is not an absolute path`},
		{"metrics listen bad", "[metrics]\nlisten = \"9842\"\n", `rampart.toml:2: key "listen": "9842" is not an address:port`},
		{"geo path relative", "[geo]\ncountry_database = \"GeoLite2-Country.mmdb\"\n", `rampart.toml:2: key "country_database": "GeoLite2-Country.mmdb" is not an absolute path`},
		{"history shorter than escalation", "[daemon]\nhistory_retention = \"7d\"\n", `rampart.toml:2: key "history_retention": 7d is shorter than escalation.window (30d): the bans it counts would be forgotten`},
		{"history shorter than recidive", "[daemon]\nhistory_retention = \"40d\"\n[recidive]\nwindow = \"60d\"\n", `rampart.toml:2: key "history_retention": 40d is shorter than recidive.window (60d): the bans it counts would be forgotten`},
		{"insight hourly past retention", "[insight]\nretention = \"7d\"\nhourly = \"14d\"\n", `rampart.toml:3: key "hourly": 14d is longer than the retention (7d)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("rampart.toml", []byte(tt.input))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error\n got  %q\n want %q...", err, tt.want)
			}
		})
	}
}

func TestCheckFilters(t *testing.T) {
	c, err := Parse("r.toml", []byte("[jail.mail]\nfilter = \"postfx\"\nfiles = [\"/var/log/mail.log\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckFilters(func(name, mode string) error { return fmt.Errorf("unknown filter %q", name) })
	if err == nil || err.Error() != `r.toml:2: jail "mail": unknown filter "postfx"` {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90": 90 * time.Second, "10m": 10 * time.Minute, "7d": 7 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1h30m": 90 * time.Minute, "1.5d": 36 * time.Hour} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-5", "x", "-1d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}

func TestPolicyConfig(t *testing.T) {
	c, err := Parse("r.toml", []byte("[postfix_policy]\nlisten = \"127.0.0.1:10023\"\ntarpit = \"2s\"\n[dovecot_policy]\nlisten = \"[::1]:10024\"\n[jail.postfix]\nfiles=[\"/x\"]\n[jail.dovecot]\nfiles=[\"/x\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Postfix.Base.D() != 2*time.Second || c.Postfix.Max.D() != 20*time.Second || c.Postfix.Jail != "postfix" {
		t.Fatalf("postfix policy = %+v", c.Postfix)
	}
	for in, want := range map[string]string{
		"[postfix_policy]\nlisten = \"0.0.0.0:10023\"\n":                    `r.toml:2: key "listen": "0.0.0.0:10023" must be a loopback address`,
		"[postfix_policy]\nlisten = \"unix:relative.sock\"\n":               `r.toml:2: key "listen": "unix:relative.sock": the socket path must be absolute`,
		"[postfix_policy]\nlisten = \"127.0.0.1:1\"\njail = \"nope\"\n":     `r.toml:3: jail "nope", where its events count, is not an enabled jail`,
		"[postfix_policy]\nlisten = \"127.0.0.1:1\"\ntarpit_max = \"2m\"\n": `r.toml:3: key "tarpit_max": 2m is too close`,
		"[dovecot_policy]\nlisten = \"192.0.2.1:10024\"\n":                  `r.toml:2: key "listen": "192.0.2.1:10024" is not loopback: set auth_file`,
	} {
		_, err := Parse("r.toml", []byte(in+"[jail.postfix]\nfiles=[\"/x\"]\n[jail.dovecot]\nfiles=[\"/x\"]\n"))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

func TestTrapConfigErrors(t *testing.T) {
	for in, want := range map[string]string{
		"[trap]\nscenarios = [\"prefix\"]\n":                                               `r.toml:2: key "scenarios": "prefix" is not a scenario that bans an address`,
		"[trap]\nlisteners = [{ port = 0, listen = \":1\", protocol = \"smtp\" }]\n":       `r.toml:2: listener 1: port 0 is not 1 to 65535`,
		"[trap]\nlisteners = [{ port = 25, listen = \":1\", protocol = \"pop3\" }]\n":      `r.toml:2: listener 1: protocol "pop3" is not one of`,
		"[trap]\nlisteners = [{ port = 25, listen = \"host:25\", protocol = \"smtp\" }]\n": `r.toml:2: listener 1: listen "host:25": "host" is not an address`,
		"[trap]\nenabled = true\nlisteners = []\n":                                         `r.toml:2: the trap is enabled but has no listeners`,
		"[trap]\ncert_file = \"/etc/cert.pem\"\n":                                          `r.toml:2: cert_file and key_file go together`,
		"[trap]\npasswords_file = \"words.txt\"\n":                                         `r.toml:2: key "passwords_file": "words.txt" is not an absolute path`,
		"[trap]\naccount_addresses = 9\n":                                                  `r.toml:2: key "trap.account_addresses": 9 is out of range (1 to 8)`,
	} {
		_, err := Parse("r.toml", []byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q:\n got  %v\n want %s", in, err, want)
		}
	}
}

// TestPostfixJournalIdentifiers: the postfix jail's journal selection
// reads every smtpd service of Debian's master.cf, each under the
// identifier it logs with (syslog_name/smtpd), enabled or not.
func TestPostfixJournalIdentifiers(t *testing.T) {
	b, err := os.ReadFile("../postfixaudit/testdata/debian/master.cf")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"postfix/smtpd": true, "postfix/postscreen": true}
	smtpd := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "#"))
		switch {
		case len(f) >= 8 && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "#  "):
			smtpd = f[7] == "smtpd"
		case smtpd && len(f) == 2 && f[0] == "-o" && strings.HasPrefix(f[1], "syslog_name="):
			want[strings.TrimPrefix(f[1], "syslog_name=")+"/smtpd"] = true
		}
	}
	if !want["postfix/submissions/smtpd"] {
		t.Fatalf("master.cf read wrong: %v", want)
	}
	have := map[string]bool{}
	for _, id := range Default().Jails["postfix"].Journal.Identifiers {
		have[id] = true
	}
	for id := range want {
		if !have[id] {
			t.Errorf("the postfix jail does not read journal identifier %q", id)
		}
	}
}
