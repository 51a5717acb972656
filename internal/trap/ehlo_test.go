package trap_test

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/rampart-dev/rampart/internal/trap"
)

// TestSMTPTrapEHLO: the EHLO reply and what its keywords govern follow
// the listener's service (the derivation is postfixaudit's; these are
// the answers Postfix 3.7's smtpd.c gives for each setting).
func TestSMTPTrapEHLO(t *testing.T) {
	tail := "250-ENHANCEDSTATUSCODES\n250-8BITMIME\n250-DSN\n250-SMTPUTF8\n250 CHUNKING"
	type step struct{ send, want string }
	for _, tc := range []struct {
		name  string
		lc    trap.ListenerConfig
		steps []step
	}{
		{"port 25, no TLS offered, no AUTH", trap.ListenerConfig{Port: 25, NoSTARTTLS: true}, []step{
			{"EHLO c", "250-mail.example.test\n250-PIPELINING\n250-SIZE 10240000\n250-VRFY\n250-ETRN\n" + tail},
			{"STARTTLS", "502 5.5.1 Error: command not implemented"},
			{"AUTH PLAIN " + plain("admin", "123456"), "503 5.5.1 Error: authentication not enabled"},
		}},
		{"smtpd_tls_auth_only: no AUTH before TLS", trap.ListenerConfig{Port: 25, Auth: true, AuthTLSOnly: true}, []step{
			{"EHLO c", "250-mail.example.test\n250-PIPELINING\n250-SIZE 10240000\n250-VRFY\n250-ETRN\n250-STARTTLS\n" + tail},
			{"AUTH PLAIN " + plain("admin", "123456"), "503 5.5.1 Error: authentication not enabled"},
			{"STARTTLS", ""},
			{"EHLO c", "250-mail.example.test\n250-PIPELINING\n250-SIZE 10240000\n250-VRFY\n250-ETRN\n250-AUTH PLAIN LOGIN\n" + tail},
		}},
		{"Dovecot's mechanisms, broken clients, no size limit, no VRFY", trap.ListenerConfig{Port: 25, Auth: true, NoSTARTTLS: true,
			Mechanisms: []string{"CRAM-MD5"}, TLSMechanisms: []string{"PLAIN", "CRAM-MD5"}, BrokenAuth: true, SizeLimit: -1, DisableVRFY: true}, []step{
			{"EHLO c", "250-mail.example.test\n250-PIPELINING\n250-SIZE\n250-ETRN\n250-AUTH CRAM-MD5\n250-AUTH=CRAM-MD5\n" + tail},
			{"VRFY root", "502 5.5.1 VRFY command is disabled"},
			{"AUTH PLAIN " + plain("admin", "123456"), "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"},
			{"AUTH CRAM-MD5", "challenge"},
			{base64.StdEncoding.EncodeToString([]byte("admin 0123456789abcdef0123456789abcdef")), "535 5.7.8 Error: authentication failed: (reason unavailable)"},
			{"MAIL FROM:<a@b> SIZE=999999999999", "250 2.1.0 Ok"},
		}},
		{"discarded keywords", trap.ListenerConfig{Port: 25, Auth: true, Discard: []string{"SILENT-DISCARD", "DSN", "CHUNKING", "STARTTLS", "AUTH", "SMTPUTF8", "PIPELINING"}}, []step{
			{"EHLO c", "250-mail.example.test\n250-SIZE 10240000\n250-VRFY\n250-ETRN\n250-ENHANCEDSTATUSCODES\n250 8BITMIME"},
			{"STARTTLS", "502 5.5.1 Error: command not implemented"},
			{"AUTH PLAIN " + plain("admin", "123456"), "503 5.5.1 Error: authentication not enabled"},
			{"VRFY", "501 5.5.4 Syntax: VRFY address [SMTPUTF8]"},
			{"MAIL FROM:<a@b> RET=FULL", "501 5.7.1 DSN support is disabled"},
			{"MAIL FROM:<a@b> SMTPUTF8", "555 5.5.4 Unsupported option: SMTPUTF8"},
			{"MAIL FROM:<a@b>", "250 2.1.0 Ok"},
			{"RCPT TO:<c@d> NOTIFY=NEVER", "501 5.7.1 DSN support is disabled"},
			{"BDAT 3 LAST", "521 5.5.1 Error: command not implemented"},
		}},
		{"smtputf8_enable = no, a smaller size limit", trap.ListenerConfig{Port: 25, NoSTARTTLS: true, NoSMTPUTF8: true, SizeLimit: 1000}, []step{
			{"EHLO c", "250-mail.example.test\n250-PIPELINING\n250-SIZE 1000\n250-VRFY\n250-ETRN\n250-ENHANCEDSTATUSCODES\n250-8BITMIME\n250-DSN\n250 CHUNKING"},
			{"VRFY", "501 5.5.4 Syntax: VRFY address"},
			{"MAIL FROM:<a@b> SIZE=1001", "552 5.3.4 Message size exceeds fixed limit"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, trap.Config{TLS: selfSigned(t)}, tc.lc)
			c, _ := l.dial(t)
			for _, s := range tc.steps {
				if s.send == "STARTTLS" && s.want == "" {
					c.startTLS(t)
					continue
				}
				got := c.cmd("%s", s.send)
				if s.want == "challenge" {
					ch, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(got, "334 "))
					if err != nil || !regexp.MustCompile(`^<\d+\.\d+@mail\.example\.test>$`).Match(ch) {
						t.Fatalf("%q: %q (%q)", s.send, got, ch)
					}
					continue
				}
				if got != s.want {
					t.Fatalf("%q:\n got %q\nwant %q", s.send, got, s.want)
				}
			}
		})
	}
}

// TestSMTPTrapPostmaster: postmaster at the real server's own domains is
// accepted from a client that has not logged in, as Postfix accepts it,
// and what it sends is kept in quarantine like any trapped mail; any
// other recipient is refused as before.
func TestSMTPTrapPostmaster(t *testing.T) {
	relay := "454 4.7.1 <%s>: Relay access denied"
	l := newLab(t, trap.Config{}, trap.ListenerConfig{Port: 25, RelayDenied: relay,
		LocalDomains: []string{"mail.example.test", "localhost"}, PostmasterOK: true})
	c, _ := l.dial(t)
	for _, s := range []struct{ send, want string }{
		{"EHLO c", ""},
		{"VRFY postmaster", "252 2.0.0 postmaster"},
		{"MAIL FROM:<a@spam.example>", "250 2.1.0 Ok"},
		{"RCPT TO:<postmaster@example.test>", "454 4.7.1 <postmaster@example.test>: Relay access denied"},
		{"RCPT TO:<root@mail.example.test>", "454 4.7.1 <root@mail.example.test>: Relay access denied"},
		{"RCPT TO:<postmaster+x@mail.example.test>", "454 4.7.1 <postmaster+x@mail.example.test>: Relay access denied"},
		{"RCPT TO:<postmaster.>", "454 4.7.1 <postmaster.>: Relay access denied"},
		{"RCPT TO:<PostMaster@Mail.Example.Test.>", "250 2.1.5 Ok"},
		{"RCPT TO:<postmaster>", "250 2.1.5 Ok"},
		{"DATA", "354 End data with <CR><LF>.<CR><LF>"},
		{"Subject: hello\r\n\r\nwhy am I blocked?\r\n.", "queued"},
	} {
		got := c.cmd("%s", s.send)
		switch {
		case s.want == "", s.want == "queued" && queuedRE.MatchString(got):
		case got != s.want:
			t.Fatalf("%q:\n got %q\nwant %q", s.send, got, s.want)
		}
	}
	ms, err := l.st.QuarantineList(context.Background(), 0)
	if err != nil || len(ms) != 1 {
		t.Fatalf("quarantine: %v %+v", err, ms)
	}
	m, _ := l.st.QuarantineGet(context.Background(), ms[0].ID)
	if m.Account != "" || strings.Join(m.RcptTo, ",") != "PostMaster@Mail.Example.Test.,postmaster" {
		t.Fatalf("quarantined %+v", m)
	}

	// Refused where the service refuses it (Debian's submission).
	l = newLab(t, trap.Config{}, trap.ListenerConfig{Port: 25, RelayDenied: relay, LocalDomains: []string{"mail.example.test"},
		PostmasterDenied: "554 5.7.1 <%s>: Recipient address rejected: Access denied"})
	c, _ = l.dial(t)
	c.cmd("MAIL FROM:<a@b>")
	if got := c.cmd("RCPT TO:<postmaster@mail.example.test>"); got != "554 5.7.1 <postmaster@mail.example.test>: Recipient address rejected: Access denied" {
		t.Fatalf("refused postmaster: %q", got)
	}
	if got := c.cmd("RCPT TO:<Postmaster>"); got != "250 2.1.5 Ok" { // whatever the restrictions say
		t.Fatalf("bare postmaster: %q", got)
	}
}

// TestSMTPTrapRecipientLimits: the service's smtpd_recipient_limit where
// it is below the trap's own, and the bound on the addresses held.
func TestSMTPTrapRecipientLimits(t *testing.T) {
	l := newLab(t, trap.Config{}, trap.ListenerConfig{Port: 25, Auth: true, RecipientLimit: 3})
	c, _ := l.dial(t)
	c.envelope()
	c.cmd("RCPT TO:<2@x>")
	c.cmd("RCPT TO:<3@x>")
	for range 25 { // smtpd_recipient_overshoot_limit: not errors, no hang-up at 20
		if got := c.cmd("RCPT TO:<4@x>"); got != "452 4.5.3 Error: too many recipients" {
			t.Fatalf("fourth recipient: %q", got)
		}
	}
	l = newLab(t, trap.Config{}, trap.ListenerConfig{Port: 25, Auth: true})
	c, _ = l.dial(t)
	c.envelope()
	long := strings.Repeat("a", 1000)
	n := 1
	for ; n < 100; n++ {
		if got := c.cmd("RCPT TO:<%s%d@x>", long, n); got != "250 2.1.5 Ok" {
			if got != "452 4.5.3 Error: too many recipients" {
				t.Fatalf("recipient %d: %q", n+1, got)
			}
			break
		}
	}
	if n < 60 || n > 66 {
		t.Fatalf("%d recipients of 1 KB held, want 64 KiB of them", n)
	}
	c.cmd("DATA")
	if got := c.cmd("x\r\n."); !queuedRE.MatchString(got) {
		t.Fatalf("message: %q", got)
	}
}
