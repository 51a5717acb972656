package postfixaudit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func ids(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

// TestDebianDefault: Debian 12's Postfix as its installer leaves it
// ("Internet Site": main.cf.debian, main.cf.tls and the installer's lines;
// master.cf.dist), read by the real postconf.
func TestDebianDefault(t *testing.T) {
	if _, err := exec.LookPath("postconf"); err != nil {
		t.Skip("skipping: needs postconf (scripts/test installs postfix)")
	}
	c, err := Read(context.Background(), "testdata/debian", Postconf)
	if err != nil {
		t.Fatal(err)
	}
	got := ids(Check(c))
	want := []string{"helo-not-required", "no-connection-rate-limit", "error-limits", "vrfy-enabled", "no-postscreen", "rampart-hook-absent"}
	if !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
}

// TestDebianAbsoluteHook: Debian's Postfix with Rampart's hook written as
// the socket's absolute path, which its chrooted smtpd (master.cf's "y")
// looks up inside /var/spool/postfix and never reaches.
func TestDebianAbsoluteHook(t *testing.T) {
	if _, err := exec.LookPath("postconf"); err != nil {
		t.Skip("skipping: needs postconf (scripts/test installs postfix)")
	}
	dir := t.TempDir()
	for _, f := range []string{"main.cf", "master.cf"} {
		b, err := os.ReadFile(filepath.Join("testdata/debian", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "main.cf" {
			b = append(b, "rampart_policy = check_policy_service { unix:/var/spool/postfix/rampart/policy, default_action=DUNNO }\nsmtpd_recipient_restrictions = permit_mynetworks, $rampart_policy\n"...)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Read(context.Background(), dir, Postconf)
	if err != nil {
		t.Fatal(err)
	}
	var found *Finding
	for _, f := range Check(c) {
		if f.ID == "rampart-hook-chroot" {
			found = &f
		}
	}
	if found == nil || found.Service != "smtp" || !strings.Contains(found.Fix, "unix:rampart/policy") {
		t.Errorf("rampart-hook-chroot: %+v", found)
	}
}

// config builds a Config the way postconf's output would give it.
func config(main map[string]string, services ...Service) *Config {
	base := map[string]string{
		"smtpd_relay_restrictions":            "permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
		"smtpd_recipient_restrictions":        "permit_mynetworks, check_policy_service { unix:rampart/policy, default_action=DUNNO }",
		"mynetworks":                          "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
		"smtpd_helo_required":                 "yes",
		"smtpd_client_connection_rate_limit":  "30",
		"smtpd_client_auth_rate_limit":        "10",
		"smtpd_soft_error_limit":              "3",
		"smtpd_hard_error_limit":              "10",
		"disable_vrfy_command":                "yes",
		"smtpd_reject_unlisted_recipient":     "yes",
		"smtpd_policy_service_default_action": "451 4.3.5 Server configuration problem",
		"smtpd_policy_service_timeout":        "100s",
		"smtpd_delay_reject":                  "yes",
	}
	for k, v := range main {
		base[k] = v
	}
	c := &Config{Main: base}
	c.Services = append([]Service{
		{Name: "smtp", Type: "inet", Command: "postscreen", Overrides: map[string]string{}},
		{Name: "smtpd", Type: "pass", Command: "smtpd", Overrides: map[string]string{}},
		{Name: "anvil", Type: "unix", Command: "anvil", Overrides: map[string]string{}},
	}, services...)
	return c
}

// chrooted marks c's services chrooted, as Debian's master.cf has them.
func chrooted(c *Config) *Config {
	for i := range c.Services {
		c.Services[i].Chroot = "y"
	}
	return c
}

var submission = Service{Name: "submission", Type: "inet", Command: "smtpd", Overrides: map[string]string{
	"smtpd_sasl_auth_enable": "yes", "smtpd_tls_security_level": "encrypt", "smtpd_delay_reject": "no",
	"smtpd_client_restrictions": "check_policy_service { unix:rampart/policy, default_action=DUNNO }"}}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    *Config
		want []string
	}{
		{"clean", config(nil, submission), nil},
		{"open relay", config(map[string]string{"smtpd_relay_restrictions": "permit_mynetworks, permit", "smtpd_recipient_restrictions": "permit_mynetworks"}), []string{"open-relay", "rampart-hook-absent"}},
		{"permit before reject_unauth_destination", config(map[string]string{"smtpd_relay_restrictions": "permit reject_unauth_destination", "smtpd_recipient_restrictions": "permit_mynetworks, check_policy_service inet:127.0.0.1:10023"}), []string{"open-relay", "policy-fails-closed"}},
		{"mynetworks 0/0", config(map[string]string{"mynetworks": "0.0.0.0/0 [::1]/128"}), []string{"mynetworks-wide"}},
		{"mynetworks public /16", config(map[string]string{"mynetworks": "127.0.0.0/8 198.51.0.0/16 10.0.0.0/8 [2001:db8::]/32"}), []string{"mynetworks-wide"}},
		{"sasl on 25, plain text", config(map[string]string{"smtpd_sasl_auth_enable": "yes"}), []string{"sasl-on-port-25", "plaintext-auth"}},
		{"no auth rate limit", config(map[string]string{"smtpd_client_auth_rate_limit": "0"}, submission), []string{"no-auth-rate-limit"}},
		{"no auth, no auth limit needed", config(map[string]string{"smtpd_client_auth_rate_limit": "0"}), nil},
		{"defaults", config(map[string]string{"smtpd_helo_required": "no", "smtpd_client_connection_rate_limit": "0", "smtpd_soft_error_limit": "10", "smtpd_hard_error_limit": "20", "disable_vrfy_command": "no", "smtpd_reject_unlisted_recipient": "no"}),
			[]string{"helo-not-required", "no-connection-rate-limit", "error-limits", "vrfy-enabled", "unlisted-recipients"}},
		{"hook after the recipient map", config(map[string]string{"smtpd_recipient_restrictions": "permit_mynetworks, check_recipient_access hash:/etc/postfix/rcpt, check_policy_service { unix:rampart/policy, default_action=DUNNO }"}), []string{"rampart-hook-order"}},
		{"hook fails closed, short timeout", config(map[string]string{"smtpd_recipient_restrictions": "permit_mynetworks, check_policy_service unix:rampart/policy", "smtpd_policy_service_timeout": "10s"}), []string{"policy-fails-closed", "policy-timeout-short"}},
		{"submission without the hook", config(nil, Service{Name: "submission", Type: "inet", Command: "smtpd", Overrides: map[string]string{"smtpd_sasl_auth_enable": "yes", "smtpd_tls_auth_only": "yes"}}), []string{"rampart-hook-submission"}},
		{"absolute socket path on chrooted services", chrooted(config(map[string]string{"queue_directory": "/var/spool/postfix", "smtpd_recipient_restrictions": "permit_mynetworks, check_policy_service { unix:/var/spool/postfix/rampart/policy, default_action=DUNNO }"}, submission)), []string{"rampart-hook-chroot", "rampart-hook-chroot"}},
		{"absolute socket path outside the queue directory", chrooted(config(map[string]string{"queue_directory": "/var/spool/postfix"}, Service{Name: "submission", Type: "inet", Command: "smtpd", Overrides: map[string]string{
			"smtpd_sasl_auth_enable": "yes", "smtpd_tls_security_level": "encrypt", "smtpd_delay_reject": "no",
			"smtpd_client_restrictions": "check_policy_service { unix:/run/rampart/policy, default_action=DUNNO }"}})), []string{"rampart-hook-chroot"}},
		{"absolute socket path without chroot", config(map[string]string{"smtpd_recipient_restrictions": "permit_mynetworks, check_policy_service { unix:/var/spool/postfix/rampart/policy, default_action=DUNNO }"}, submission), nil},
		{"relative socket path on chrooted services", chrooted(config(map[string]string{"queue_directory": "/var/spool/postfix"}, submission)), nil},
	} {
		got := ids(Check(tc.c))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: findings %v, want %v", tc.name, got, tc.want)
		}
	}
	c := config(nil)
	c.Services = c.Services[:2] // no anvil, and smtpd on 25 directly
	c.Services[0].Command = "smtpd"
	if got := ids(Check(c)); !slices.Equal(got, []string{"no-anvil", "no-postscreen"}) {
		t.Errorf("no anvil, no postscreen: %v", got)
	}
}

func TestTokens(t *testing.T) {
	got := tokens("permit_mynetworks,  check_policy_service { unix:rampart/policy, default_action=DUNNO },reject_unauth_destination\n\tpermit")
	want := []string{"permit_mynetworks", "check_policy_service", "{ unix:rampart/policy, default_action=DUNNO }", "reject_unauth_destination", "permit"}
	if !slices.Equal(got, want) {
		t.Errorf("tokens %q", got)
	}
}

func TestParse(t *testing.T) {
	c, err := Parse("a = 1\nempty =\nsmtpd_recipient_restrictions = permit_mynetworks, reject\n",
		"smtp       inet  n       -       y       -       -       smtpd\nsubmission inet  n       -       y       -       -       smtpd -o syslog_name=postfix/submission -o {smtpd_client_restrictions=check_policy_service { unix:rampart/policy, default_action=DUNNO }}\nbroken line\n",
		"submission/inet/smtpd_client_restrictions = check_policy_service { unix:rampart/policy, default_action=DUNNO }\nnowhere/inet/x = 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Main["a"] != "1" || c.Main["empty"] != "" || len(c.Services) != 2 {
		t.Fatalf("%+v", c)
	}
	sub := c.service("submission", "inet")
	if v := c.Param(sub, "smtpd_client_restrictions"); !strings.Contains(v, "rampart/policy") {
		t.Errorf("override %q", v)
	}
	if v := c.Param(sub, "a"); v != "1" {
		t.Errorf("main value through a service: %q", v)
	}
}
