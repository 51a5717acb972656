package trap_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"github.com/rampart-dev/rampart/internal/trap"
)

// What a prober sends to tell the trap from the real Postfix gets the
// real Postfix's answer, byte for byte. The wanted replies are Postfix
// 3.7.11's (Debian 12) to the same lines, on a submission service with
// smtpd_tls_security_level = encrypt, smtpd_sasl_auth_enable = yes,
// smtpd_tls_auth_only = yes and smtpd_relay_restrictions =
// permit_sasl_authenticated,reject, Dovecot SASL; the comments name the
// source (postfix/src/smtpd/smtpd.c at v3.7.11 unless said).
func TestSMTPTrapPostfixParity(t *testing.T) {
	rej := "554 5.7.1 <%s>: Recipient address rejected: Access denied"
	cfg := trap.Config{TLS: selfSigned(t)}
	sub := newLab(t, cfg, trap.ListenerConfig{Port: 587, Auth: true, RequireTLS: true, RelayDenied: rej})
	type step struct{ send, want string } // send "STARTTLS": the handshake too
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"unknown commands", []step{
			{"XYZZY", "500 5.5.2 Error: command not recognized"}, // smtpd_proto: 500, never 502
			{"HELP", "500 5.5.2 Error: command not recognized"},  // no HELP before 3.9
			{"EXPN root", "500 5.5.2 Error: command not recognized"},
			{" ", "500 5.5.2 Error: bad syntax"}, // smtpd_token found no word
			{"FOO", "500 5.5.2 Error: command not recognized"},
			{"NOOP", "250 2.0.0 Ok"}, // 5 errors: no hang-up before smtpd_hard_error_limit (20)
		}},
		{"before TLS", []step{
			{"EHLO", "501 Syntax: EHLO hostname"},                     // ehlo_cmd
			{"RSET", "530 5.7.0 Must issue a STARTTLS command first"}, // no SMTPD_CMD_FLAG_PRE_TLS
			{"VRFY root", "530 5.7.0 Must issue a STARTTLS command first"},
			{"ETRN example.com", "530 5.7.0 Must issue a STARTTLS command first"},
			{"NOOP", "250 2.0.0 Ok"},
			{"XCLIENT ADDR=192.0.2.1", "550 5.7.0 Error: insufficient authorization"}, // xclient_cmd
		}},
		{"TLS without EHLO", []step{
			{"STARTTLS", ""},
			{"MAIL FROM:<a@b.example>", "250 2.1.0 Ok"}, // smtpd_helo_required = no
			{"RCPT TO:<x@y.example>", "554 5.7.1 <x@y.example>: Recipient address rejected: Access denied"},
			{"DATA", "554 5.5.1 Error: no valid recipients"},                                       // data_cmd
			{"AUTH PLAIN " + plain("admin", "x"), "503 5.5.1 Error: MAIL transaction in progress"}, // smtpd_sasl_proto.c
			{"RSET", "250 2.0.0 Ok"},
			{"RSET x", "501 5.5.4 Syntax: RSET"},
			{"starttls", "554 5.5.1 Error: TLS already active"},
		}},
		{"ETRN VRFY", []step{
			{"STARTTLS", ""},
			{"EHLO c", ""},
			{"ETRN example.com", "459 <example.com>: service unavailable"}, // etrn_cmd, flush_send_site
			{"ETRN", "500 Syntax: ETRN domain"},
			{"VRFY", "501 5.5.4 Syntax: VRFY address [SMTPUTF8]"}, // vrfy_cmd
			{"VRFY root", "554 5.7.1 <root>: Recipient address rejected: Access denied"},
		}},
		{"AUTH", []step{
			{"STARTTLS", ""},
			{"EHLO c", ""},
			{"AUTH PLAIN a b", "501 5.5.4 Syntax: AUTH mechanism"},
			{"AUTH FOO !!!", "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"}, // xsasl_dovecot_server.c
			{"AUTH PLAIN !!!", "535 5.7.8 Error: authentication failed: Invalid base64 data in initial response"},
			{"AUTH PLAIN =", "535 5.7.8 Error: authentication failed: (reason unavailable)"}, // not go-sasl's "454 4.7.0 sasl: invalid response"
			{"AUTH LOGIN =", "334 VXNlcm5hbWU6"},
			{"=", "535 5.7.8 Error: authentication failed: Invalid base64 data in continued response"},
			{"AUTH PLAIN " + plain("admin", "123456"), "235 2.7.0 Authentication successful"},
			{"VRFY <root@example.org>", "252 2.0.0 <root@example.org>"},
		}},
		{"long lines", []step{
			{"NOOP " + strings.Repeat("A", 3000), "250 2.0.0 Ok"}, // the first line_length_limit bytes are the command
			{strings.Repeat("X", 5000), "500 5.5.2 Error: command not recognized"},
		}},
		{"forbidden", []step{
			{"GET / HTTP/1.1", "221 2.7.0 Error: I can break rules, too. Goodbye."}, // smtpd_forbidden_commands
			{"", "EOF"},
		}},
		{"message", []step{
			{"STARTTLS", ""},
			{"EHLO c", ""},
			{"AUTH PLAIN " + plain("admin", "123456"), "235 2.7.0 Authentication successful"},
			{"MAIL FROM:<a@b> FOO=bar", "555 5.5.4 Unsupported option: FOO=bar"},
			{"MAIL FROM:<a@b> BODY=BINARYMIME", "555 5.5.4 Unsupported option: BODY=BINARYMIME"},
			{"MAIL FROM:<a@b> SIZE=x", "501 5.5.4 Bad message size syntax"},
			{"MAIL FROM:<a b>", "501 5.1.7 Bad sender address syntax"},
			{"MAIL FROM:<a@b>", "250 2.1.0 Ok"},
			{"RCPT TO:<>", "501 5.1.3 Bad recipient address syntax"},
			{"RCPT TO:<c@d> FOO=1", "555 5.5.4 Unsupported option: FOO=1"},
			{"RCPT TO:<c@d>", "250 2.1.5 Ok"},
			{"DATA x", "501 5.5.4 Syntax: DATA"},
			{"DATA", "354 End data with <CR><LF>.<CR><LF>"},
			// A line longer than 2048 bytes, and a bare LF before the end
			// (smtpd_forbid_bare_newline = no in 3.7).
			{"Subject: x\n\n" + strings.Repeat("B", 10000) + "\n.", "queued"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := sub.dial(t)
			for _, s := range tc.steps {
				var got string
				switch {
				case s.send == "STARTTLS":
					c.startTLS(t)
					continue
				case s.send == "" && s.want == "EOF":
					got = c.read()
				default:
					got = c.cmd("%s", s.send)
				}
				switch {
				case s.want == "":
				case s.want == "queued" && queuedRE.MatchString(got):
				case got != s.want:
					t.Fatalf("%.40q:\n got %q\nwant %q", s.send, got, s.want)
				}
			}
		})
	}

	t.Run("465", func(t *testing.T) {
		l := newLab(t, cfg, trap.ListenerConfig{Port: 465, Auth: true, ImplicitTLS: true})
		raw, err := tls.Dial("tcp", l.addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		c := &client{t: t, c: raw, br: bufio.NewReader(raw)}
		c.read()
		if got := c.cmd("STARTTLS"); got != "554 5.5.1 Error: TLS already active" { // starttls_cmd
			t.Fatalf("STARTTLS on 465: %q", got)
		}
		if got := c.cmd("AUTH PLAIN %s", plain("admin", "123456")); got != "235 2.7.0 Authentication successful" { // no EHLO needed
			t.Fatalf("AUTH without EHLO: %q", got)
		}
	})
	t.Run("port 25", func(t *testing.T) {
		l := newLab(t, trap.Config{}, trap.ListenerConfig{Port: 25, RelayDenied: "454 4.7.1 <%s>: Relay access denied"})
		c, _ := l.dial(t)
		for _, s := range []struct{ send, want string }{
			{"AUTH PLAIN " + plain("admin", "123456"), "503 5.5.1 Error: authentication not enabled"},
			{"HELO", "501 Syntax: HELO hostname"},
			{"MAIL FROM:<a@b>", "250 2.1.0 Ok"},
			{"RCPT TO:<c@d>", "454 4.7.1 <c@d>: Relay access denied"}, // Debian's main.cf: defer_unauth_destination
		} {
			if got := c.cmd("%s", s.send); got != s.want {
				t.Fatalf("%q: got %q, want %q", s.send, got, s.want)
			}
		}
	})
}

// TestSMTPTrapPostfix39: what Postfix 3.9 and later (Debian 13) changed:
// HELP, smtpd_forbid_unauth_pipelining = yes, smtpd_forbid_bare_newline =
// normalize.
func TestSMTPTrapPostfix39(t *testing.T) {
	l := newLab(t, trap.Config{Help: true, ForbidUnauthPipelining: true, StrictEOD: true}, trap.ListenerConfig{Port: 25, Auth: true})
	c, _ := l.dial(t)
	if got := c.cmd("HELP"); got != "214 2.0.0 Commands: AUTH BDAT DATA EHLO ETRN HELO HELP MAIL NOOP QUIT RCPT RSET STARTTLS VRFY XCLIENT XFORWARD" {
		t.Fatalf("HELP: %q", got)
	}
	c.envelope()
	c.cmd("DATA")
	// ".\n" or a "." line after a bare LF is no end of data (and not kept).
	fmt.Fprint(c.c, "Subject: x\n\nhi\n.\n.\r\nmore\r\n.\r\n")
	if got := c.read(); !queuedRE.MatchString(got) {
		t.Fatalf("end of data: %q", got)
	}
	fmt.Fprint(c.c, "NOOP\r\nNOOP\r\n") // NOOP is SMTPD_CMD_FLAG_LAST
	if got := c.read(); got != "554 5.5.0 Error: SMTP protocol synchronization" {
		t.Fatalf("pipelined NOOP: %q", got)
	}
	if got := c.read(); got != "EOF" {
		t.Fatalf("after 554: %q", got)
	}
}
