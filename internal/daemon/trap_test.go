package daemon

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/postfixaudit"
	"github.com/rampart-dev/rampart/internal/trap"
)

// TestTrapConvert: only address bans of the trap's jails and scenarios
// become traps; with the trap off, a restored trap is a ban again.
func TestTrapConvert(t *testing.T) {
	tr := &trapper{jails: map[string]bool{"postfix": true}, scenarios: map[string]bool{"ip-failures": true}}
	addr := event.AddrPrefix(netip.MustParseAddr("203.0.113.7"))
	for _, c := range []struct {
		tr   *trapper
		d    event.Decision
		want event.Action
	}{
		{tr, event.Decision{Target: addr, Action: event.Ban, Jail: "postfix", Scenario: "ip-failures"}, event.Trap},
		{tr, event.Decision{Target: addr, Action: event.Ban, Jail: "sshd", Scenario: "ip-failures"}, event.Ban},
		{tr, event.Decision{Target: addr, Action: event.Ban, Jail: "postfix", Scenario: "manual"}, event.Ban},
		{tr, event.Decision{Target: netip.MustParsePrefix("203.0.113.0/24"), Action: event.Ban, Jail: "postfix", Scenario: "ip-failures"}, event.Ban},
		{tr, event.Decision{Target: addr, Action: event.Allow, Jail: "postfix", Scenario: "ip-failures"}, event.Allow},
		{nil, event.Decision{Target: addr, Action: event.Trap, Jail: "postfix", Scenario: "ip-failures"}, event.Ban},
		{nil, event.Decision{Target: addr, Action: event.Ban, Jail: "postfix", Scenario: "ip-failures"}, event.Ban},
	} {
		if got := c.tr.convert(c.d).Action; got != c.want {
			t.Errorf("%+v (trap on: %v): %s, want %s", c.d, c.tr != nil, got, c.want)
		}
	}
	bans := asBans([]event.Decision{{Action: event.Trap, Start: time.Now()}, {Action: event.Ban}})
	if bans[0].Action != event.Ban || bans[1].Action != event.Ban {
		t.Errorf("asBans: %+v", bans)
	}
}

func TestTrapRedirect(t *testing.T) {
	cfg, err := config.Parse("r.toml", []byte("[trap]\nenabled = true\nlisteners = [{ port = 587, listen = \":10587\", protocol = \"submission\" }, { port = 993, listen = \"[::]:10993\", protocol = \"imaps\" }]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := trapRedirect(cfg)
	if r == nil || len(r.Ports) != 2 || r.Ports[587] != 10587 || r.Ports[993] != 10993 {
		t.Fatalf("redirect %+v", r)
	}
	if trapRedirect(config.Default()) != nil {
		t.Fatal("the trap is on by default")
	}
}

// TestTrapRelayDenied: each SMTP listener refuses relaying as the real
// Postfix's service on its port does, read with postconf (Debian 12's
// configuration, its submission service enabled with Debian's own
// restrictions and one on port 465 that names its port by number).
func TestTrapRelayDenied(t *testing.T) {
	if _, err := exec.LookPath("postconf"); err != nil {
		t.Skip("skipping: needs postconf (scripts/test installs postfix)")
	}
	dir := t.TempDir()
	main, err := os.ReadFile("../postfixaudit/testdata/debian/main.cf")
	if err != nil {
		t.Fatal(err)
	}
	master, err := os.ReadFile("../postfixaudit/testdata/debian/master.cf")
	if err != nil {
		t.Fatal(err)
	}
	master = append(master, "submission inet n - y - - smtpd\n  -o smtpd_sasl_auth_enable=yes\n  -o smtpd_relay_restrictions=\n"+
		"  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject\n"+
		"0.0.0.0:465 inet n - y - - smtpd\n  -o smtpd_tls_wrappermode=yes\n  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject_unauth_destination\n"...)
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), main, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "master.cf"), master, 0o644); err != nil {
		t.Fatal(err)
	}
	pc := postconf(context.Background(), dir)
	relayDenied := func(pc *postfixaudit.Config, port int) string {
		var s *postfixaudit.Service
		if len(pc.Services) > 0 {
			s = pc.SMTPService(port)
		}
		return SMTPTrapListener(pc, "smtp", port, s, nil).RelayDenied
	}
	for port, want := range map[int]string{
		25:  "454 4.7.1 <%s>: Relay access denied", // main.cf's defer_unauth_destination
		587: "554 5.7.1 <%s>: Recipient address rejected: Access denied",
		465: "554 5.7.1 <%s>: Relay access denied",
	} {
		if got := relayDenied(pc, port); got != want {
			t.Errorf("port %d: %q, want %q", port, got, want)
		}
	}
	if got := relayDenied(postconf(context.Background(), filepath.Join(dir, "none")), 25); got != "" {
		t.Errorf("without Postfix's configuration: %q", got)
	}
}

// TestSMTPTrapListener: an SMTP listener takes its protocol's defaults,
// and from the Postfix service on its port what that announces and
// refuses; a listener with no service (or no Postfix) keeps the defaults.
func TestSMTPTrapListener(t *testing.T) {
	main := "mail_version = 3.7.11\nsmtpd_tls_security_level = may\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n" +
		"queue_directory = /var/spool/postfix\nmessage_size_limit = 0\nsmtpd_recipient_limit = 200\nsmtputf8_enable = yes\n" +
		"smtpd_sasl_security_options = noanonymous\nsmtpd_sasl_tls_security_options = noanonymous\nsmtpd_sasl_mechanism_filter = !external, static:rest\n" +
		"smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination\nsmtpd_relay_before_recipient_restrictions = yes\n" +
		"smtpd_delay_reject = yes\nrelay_domains_reject_code = 554\nreject_code = 554\nmydestination = mail.example.org, localhost\n" +
		"smtpd_client_connection_count_limit = 50\ndisable_vrfy_command = yes\n"
	pc, err := postfixaudit.Parse(main, "smtp inet n - y - - smtpd\n"+
		"submission inet n - y - - smtpd -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes -o smtpd_tls_auth_only=yes "+
		"-o smtpd_relay_restrictions= -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject -o {smtpd_discard_ehlo_keywords=dsn, chunking} -o disable_vrfy_command=no\n", "")
	if err != nil {
		t.Fatal(err)
	}
	mechs := map[string][]postfixaudit.DovecotMech{"/var/spool/postfix/private/auth": postfixaudit.DovecotMechs([]string{"plain", "login", "cram-md5"})}
	sub := SMTPTrapListener(pc, "submission", 587, pc.SMTPService(587), mechs)
	want := trap.ListenerConfig{Port: 587, Auth: true, RequireTLS: true, AuthTLSOnly: true,
		RelayDenied: "554 5.7.1 <%s>: Recipient address rejected: Access denied",
		Mechanisms:  []string{"PLAIN", "LOGIN", "CRAM-MD5"}, TLSMechanisms: []string{"PLAIN", "LOGIN", "CRAM-MD5"},
		Discard: []string{"DSN", "CHUNKING"}, SizeLimit: -1, RecipientLimit: 200, MaxPerAddr: 50,
		LocalDomains: []string{"mail.example.org", "localhost"}, PostmasterDenied: "554 5.7.1 <%s>: Recipient address rejected: Access denied"}
	if !reflect.DeepEqual(sub, want) {
		t.Errorf("submission:\n got %+v\nwant %+v", sub, want)
	}
	smtp := SMTPTrapListener(pc, "smtp", 25, pc.SMTPService(25), mechs)
	if smtp.Auth || smtp.RequireTLS || smtp.NoSTARTTLS || !smtp.DisableVRFY || !smtp.PostmasterOK || smtp.RelayDenied != "454 4.7.1 <%s>: Relay access denied" {
		t.Errorf("smtp: %+v", smtp)
	}
	// No service on 465: the protocol's defaults, main.cf's refusal.
	if got := SMTPTrapListener(pc, "submissions", 465, pc.SMTPService(465), mechs); !got.Auth || !got.ImplicitTLS || got.Mechanisms != nil || !got.DisableVRFY ||
		got.RelayDenied != "454 4.7.1 <%s>: Relay access denied" {
		t.Errorf("465: %+v", got)
	}
	// No Postfix at all.
	none := &postfixaudit.Config{Main: map[string]string{}}
	if got := SMTPTrapListener(none, "submission", 587, nil, nil); !reflect.DeepEqual(got, trap.ListenerConfig{Port: 587, Auth: true, RequireTLS: true}) {
		t.Errorf("without Postfix: %+v", got)
	}
}
