package postfixaudit

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// main37 is what postconf -x prints for these keys on Postfix 3.7 with
// compatibility_level = 3.6 and nothing else set.
var main37 = map[string]string{
	"smtpd_client_restrictions": "", "smtpd_helo_restrictions": "", "smtpd_sender_restrictions": "",
	"smtpd_relay_restrictions":                  "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
	"smtpd_recipient_restrictions":              "",
	"smtpd_relay_before_recipient_restrictions": "yes", "smtpd_delay_reject": "yes", "smtpd_restriction_classes": "",
	"reject_code": "554", "defer_code": "450", "relay_domains_reject_code": "554", "soft_bounce": "no",
	"smtpd_reject_footer": "", "smtpd_reject_footer_maps": "", "smtpd_service_name": "smtpd",
}

func TestRelayDenied(t *testing.T) {
	const (
		relay454 = "454 4.7.1 <%s>: Relay access denied"
		relay554 = "554 5.7.1 <%s>: Relay access denied"
		rcpt554  = "554 5.7.1 <%s>: Recipient address rejected: Access denied"
	)
	for _, tc := range []struct {
		name string
		set  map[string]string
		want string
	}{
		{"Debian's main.cf", nil, relay454},
		{"Postfix's defaults before compatibility level 1", map[string]string{"smtpd_relay_restrictions": "", "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination", "smtpd_relay_before_recipient_restrictions": "no"}, relay554},
		{"Debian's submission", map[string]string{"smtpd_relay_restrictions": "", "smtpd_recipient_restrictions": "permit_sasl_authenticated,reject"}, rcpt554},
		{"relay list ending in reject", map[string]string{"smtpd_relay_restrictions": "permit_sasl_authenticated,reject"}, rcpt554},
		{"relay list first", map[string]string{"smtpd_recipient_restrictions": "reject"}, relay454},
		{"recipient list first", map[string]string{"smtpd_recipient_restrictions": "reject", "smtpd_relay_before_recipient_restrictions": "no"}, rcpt554},
		{"no parameter: Postfix before 3.6", map[string]string{"smtpd_recipient_restrictions": "reject", "smtpd_relay_before_recipient_restrictions": ""}, rcpt554},
		{"permit ends the first list only", map[string]string{"smtpd_relay_restrictions": "permit", "smtpd_recipient_restrictions": "permit_mynetworks reject_unauth_destination"}, relay554},
		{"the permits a trapped client fails", map[string]string{"smtpd_relay_restrictions": "permit_mynetworks permit_sasl_authenticated permit_tls_clientcerts permit_tls_all_clientcerts permit_inet_interfaces permit_auth_destination reject_unlisted_recipient reject_non_fqdn_recipient reject_unauth_destination"}, relay554},
		{"names in capitals", map[string]string{"smtpd_relay_restrictions": "PERMIT_MYNETWORKS, Reject_Unauth_Destination"}, relay554},
		{"sleep", map[string]string{"smtpd_relay_restrictions": "sleep 1, reject"}, rcpt554},
		{"defer", map[string]string{"smtpd_relay_restrictions": "defer"}, "450 4.3.2 <%s>: Recipient address rejected: Try again later"},
		{"soft_bounce", map[string]string{"smtpd_relay_restrictions": "reject", "soft_bounce": "yes"}, "454 4.7.1 <%s>: Recipient address rejected: Access denied"},
		{"soft_bounce, relay", map[string]string{"smtpd_relay_restrictions": "reject_unauth_destination", "soft_bounce": "yes"}, relay454},
		{"reject_code 450: the DSN follows", map[string]string{"smtpd_relay_restrictions": "reject", "reject_code": "450"}, "450 4.7.1 <%s>: Recipient address rejected: Access denied"},
		{"relay_domains_reject_code 550", map[string]string{"smtpd_relay_restrictions": "reject_unauth_destination", "relay_domains_reject_code": "550"}, "550 5.7.1 <%s>: Relay access denied"},
		{"relay_domains_reject_code 550, deferred", map[string]string{"relay_domains_reject_code": "550"}, "450 4.7.1 <%s>: Relay access denied"},
		{"a code out of range", map[string]string{"relay_domains_reject_code": "450"}, ""},
		{"a code that hangs up", map[string]string{"smtpd_relay_restrictions": "defer", "defer_code": "421"}, ""},
		{"a malformed code", map[string]string{"smtpd_relay_restrictions": "reject", "reject_code": "x"}, ""},
		{"warn_if_reject", map[string]string{"smtpd_relay_restrictions": "warn_if_reject reject reject_unauth_destination"}, relay554},
		{"warn_if_reject, one restriction only", map[string]string{"smtpd_relay_restrictions": "warn_if_reject reject_unauth_destination reject"}, rcpt554},
		{"a footer", map[string]string{"smtpd_reject_footer": "Call us"}, ""},
		{"footer maps", map[string]string{"smtpd_reject_footer_maps": "hash:/etc/postfix/footers"}, ""},
		{"an access map first", map[string]string{"smtpd_relay_restrictions": "permit_mynetworks, check_client_access hash:/etc/postfix/access, reject_unauth_destination"}, ""},
		{"an access map in short", map[string]string{"smtpd_relay_restrictions": "hash:/etc/postfix/access, reject_unauth_destination"}, ""},
		{"an access map after the decision", map[string]string{"smtpd_relay_restrictions": "reject_unauth_destination, check_recipient_access hash:/x"}, relay554},
		{"another policy service first", map[string]string{"smtpd_relay_before_recipient_restrictions": "no", "smtpd_recipient_restrictions": "check_policy_service inet:127.0.0.1:10030, reject_unauth_destination"}, ""},
		{"Rampart's hook first", map[string]string{"smtpd_relay_before_recipient_restrictions": "no", "smtpd_recipient_restrictions": "permit_mynetworks, check_policy_service { unix:rampart/policy, default_action=DUNNO }, reject_unauth_destination"}, relay554},
		{"Rampart's hook over TCP, at CONNECT (integrations.md's submission)", map[string]string{"smtpd_delay_reject": "no", "smtpd_client_restrictions": "check_policy_service inet:127.0.0.1:10023", "smtpd_relay_restrictions": "", "smtpd_recipient_restrictions": "permit_sasl_authenticated,reject"}, rcpt554},
		{"an open relay", map[string]string{"smtpd_relay_restrictions": "permit_mynetworks, permit", "smtpd_recipient_restrictions": "reject_unauth_destination"}, relay554},
		{"no refusal anywhere: smtpd does not start", map[string]string{"smtpd_relay_restrictions": "permit_mynetworks", "smtpd_recipient_restrictions": "permit"}, ""},
		{"relayed", map[string]string{"smtpd_relay_restrictions": "permit", "smtpd_recipient_restrictions": "warn_if_reject reject"}, ""},
		{"client restrictions reject, naming the client", map[string]string{"smtpd_client_restrictions": "permit_sasl_authenticated, reject"}, ""},
		{"HELO restrictions", map[string]string{"smtpd_helo_restrictions": "reject_invalid_helo_hostname"}, ""},
		{"sender restrictions", map[string]string{"smtpd_sender_restrictions": "reject_non_fqdn_sender"}, ""},
		{"client restrictions that permit go on", map[string]string{"smtpd_client_restrictions": "permit_mynetworks, permit", "smtpd_sender_restrictions": "permit_sasl_authenticated"}, relay454},
		{"client restrictions, warn only", map[string]string{"smtpd_client_restrictions": "warn_if_reject reject"}, relay454},
		{"reject_unauth_destination among the client restrictions", map[string]string{"smtpd_client_restrictions": "permit_sasl_authenticated, reject_unauth_destination"}, relay554},
		{"the same, rejected at CONNECT: no recipient yet", map[string]string{"smtpd_client_restrictions": "permit_sasl_authenticated, reject_unauth_destination", "smtpd_delay_reject": "no"}, relay454},
		{"a restriction class", map[string]string{"smtpd_restriction_classes": "mua_only", "mua_only": "permit_sasl_authenticated, reject", "smtpd_relay_restrictions": "mua_only"}, rcpt554},
		{"a class that permits", map[string]string{"smtpd_restriction_classes": "ok", "ok": "permit", "smtpd_relay_restrictions": "ok, reject", "smtpd_recipient_restrictions": "reject_unauth_destination"}, relay554},
		{"warn_if_reject before a class", map[string]string{"smtpd_restriction_classes": "two", "two": "reject, reject", "smtpd_relay_restrictions": "warn_if_reject two, defer_unauth_destination"}, relay454},
		{"a class not given", map[string]string{"smtpd_restriction_classes": "mua_only", "smtpd_relay_restrictions": "mua_only, reject"}, ""},
		{"a class that loops", map[string]string{"smtpd_restriction_classes": "a", "a": "a", "smtpd_relay_restrictions": "a, reject"}, ""},
		{"an unknown word", map[string]string{"smtpd_relay_restrictions": "no_such_restriction reject"}, ""},
	} {
		set := maps.Clone(main37)
		maps.Copy(set, tc.set)
		if got := relayDenied(func(k string) string { return set[k] }); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The settings as the real postconf gives them: Debian 12's main.cf and
// master.cf, then its submission service uncommented, as its comments
// suggest, through $mua_* parameters of main.cf.
func TestRelayDeniedDebian(t *testing.T) {
	if _, err := exec.LookPath("postconf"); err != nil {
		t.Skip("skipping: needs postconf (scripts/test installs postfix)")
	}
	dir := t.TempDir()
	main, err := os.ReadFile("testdata/debian/main.cf")
	if err != nil {
		t.Fatal(err)
	}
	master, err := os.ReadFile("testdata/debian/master.cf")
	if err != nil {
		t.Fatal(err)
	}
	read := func() *Config {
		t.Helper()
		for name, text := range map[string][]byte{"main.cf": main, "master.cf": master} {
			if err := os.WriteFile(filepath.Join(dir, name), text, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c, err := Read(context.Background(), dir, Postconf)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := read()
	if s := c.SMTPService(25); s == nil || s.Name != "smtp" {
		t.Fatalf("port 25: %+v", s)
	}
	if got := c.RelayDenied(c.SMTPService(25)); got != "454 4.7.1 <%s>: Relay access denied" {
		t.Errorf("port 25: %q", got)
	}
	if s := c.SMTPService(587); s != nil {
		t.Fatalf("port 587 before uncommenting: %+v", s)
	}

	// Uncomment the submission block, its -o lines included.
	var b strings.Builder
	in := false
	for line := range strings.Lines(string(master)) {
		switch {
		case strings.HasPrefix(line, "#submission "):
			in = true
			line = line[1:]
		case in && strings.HasPrefix(line, "#  -o"):
			line = line[1:]
		case in && !strings.HasPrefix(line, "#  "):
			in = false
		}
		b.WriteString(line)
	}
	master = []byte(b.String())
	c = read()
	sub := c.SMTPService(587)
	if sub == nil || sub.Name != "submission" {
		t.Fatalf("port 587: %+v", sub)
	}
	if got := c.RelayDenied(sub); got != "554 5.7.1 <%s>: Recipient address rejected: Access denied" {
		t.Errorf("submission: %q", got)
	}

	// The restrictions through main.cf's $mua_* parameters, one of them
	// not defined (empty, as smtpd takes it).
	master = []byte(strings.NewReplacer("-o smtpd_client_restrictions=", "-o smtpd_client_restrictions=$mua_client_restrictions",
		"-o smtpd_recipient_restrictions=permit_sasl_authenticated,reject", "-o smtpd_recipient_restrictions=${mua_recipient_restrictions}").Replace(string(master)))
	main = append(main, "mua_recipient_restrictions = permit_sasl_authenticated, $mua_last\nmua_last = defer\n"...)
	c = read()
	if got := c.RelayDenied(c.SMTPService(587)); got != "450 4.3.2 <%s>: Recipient address rejected: Try again later" {
		t.Errorf("submission through $mua_recipient_restrictions: %q", got)
	}
	if got := c.RelayDenied(c.SMTPService(25)); got != "454 4.7.1 <%s>: Relay access denied" {
		t.Errorf("port 25 after: %q", got)
	}
}

func TestSMTPService(t *testing.T) {
	c, err := Parse("smtpd_service_name = smtpd\nsmtpd_relay_before_recipient_restrictions = yes\n",
		"127.0.0.1:submission inet n - y - - smtpd -o smtpd_relay_restrictions=reject\n"+
			"192.0.2.1:587 inet n - y - - smtpd -o smtpd_relay_restrictions=permit_mynetworks,reject_unauth_destination\n"+
			"[::1]:465 inet n - y - - smtpd\n"+
			"smtp inet n - y - 1 postscreen\n"+
			"smtpd pass - - y - - smtpd -o {smtpd_relay_restrictions=permit_mynetworks, defer} -o {smtpd_recipient_restrictions=check_policy_service { unix:rampart/policy, default_action=DUNNO }} -o x\n"+
			"2525 inet n - y - - smtpd\n"+
			"10025 unix n - y - - smtpd\n", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		port int
		want string
	}{{587, "192.0.2.1:587"}, {25, "smtpd"}, {465, ""}, {2525, "2525"}, {10025, ""}, {26, ""}} {
		got := ""
		if s := c.SMTPService(tc.port); s != nil {
			got = s.Name
		}
		if got != tc.want {
			t.Errorf("port %d: %q, want %q", tc.port, got, tc.want)
		}
	}
	pass := c.SMTPService(25)
	if got := pass.Overrides["smtpd_recipient_restrictions"]; got != "check_policy_service { unix:rampart/policy, default_action=DUNNO }" {
		t.Errorf("braced -o: %q", got)
	}
	if got := c.RelayDenied(pass); got != "450 4.3.2 <%s>: Recipient address rejected: Try again later" {
		t.Errorf("through postscreen: %q", got)
	}
	if got := c.RelayDenied(c.SMTPService(587)); got != "554 5.7.1 <%s>: Relay access denied" {
		t.Errorf("587: %q", got)
	}
}
