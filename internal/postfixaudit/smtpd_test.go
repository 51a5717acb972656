package postfixaudit

import (
	"context"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"reflect"
	"testing"
)

// smtpd37 is what postconf -x prints for SmtpdParams on Postfix 3.7 with
// compatibility_level = 3.6 and nothing else set.
var smtpd37 = map[string]string{
	"message_size_limit": "10240000", "smtpd_recipient_limit": "1000", "smtpd_client_connection_count_limit": "50",
	"disable_vrfy_command": "no", "smtputf8_enable": "yes",
	"smtpd_tls_security_level": "", "smtpd_use_tls": "no", "smtpd_enforce_tls": "no", "smtpd_tls_wrappermode": "no", "smtpd_tls_auth_only": "no",
	"smtpd_sasl_auth_enable": "no", "smtpd_sasl_type": "cyrus", "smtpd_sasl_security_options": "noanonymous",
	"smtpd_sasl_tls_security_options": "noanonymous", "smtpd_sasl_mechanism_filter": "!external, static:rest",
	"broken_sasl_auth_clients": "no", "smtpd_discard_ehlo_keywords": "", "smtpd_discard_ehlo_keyword_address_maps": "",
	"smtpd_sasl_path": "smtpd", "queue_directory": "/var/spool/postfix",
	"mydestination": "mail.example.org, localhost",
}

func TestSmtpd(t *testing.T) {
	plainLogin := DovecotMechs([]string{"plain", "login"})
	many := DovecotMechs([]string{"plain", "login", "cram-md5", "anonymous", "external", "scram-sha-256", "apop"})
	dovecot := map[string]string{"smtpd_sasl_auth_enable": "yes", "smtpd_sasl_type": "dovecot"}
	with := func(extra ...map[string]string) map[string]string {
		m := maps.Clone(smtpd37)
		for _, e := range extra {
			maps.Copy(m, e)
		}
		return m
	}
	base := Smtpd{SMTPUTF8: true, SizeLimit: 10240000, RecipientLimit: 1000, ConnectionLimit: 50}
	for _, tc := range []struct {
		name  string
		set   map[string]string
		mechs []DovecotMech
		want  func(d *Smtpd)
	}{
		{"Postfix's defaults", nil, nil, func(*Smtpd) {}},
		{"Debian's main.cf: may", with(map[string]string{"smtpd_tls_security_level": "may"}), nil, func(d *Smtpd) { d.StartTLS = true }},
		{"Debian's submission", with(dovecot, map[string]string{"smtpd_tls_security_level": "encrypt", "smtpd_tls_auth_only": "yes"}), plainLogin, func(d *Smtpd) {
			d.StartTLS, d.EnforceTLS, d.AuthTLSOnly, d.SASL = true, true, true, true
			d.Mechanisms, d.TLSMechanisms = []string{"PLAIN", "LOGIN"}, []string{"PLAIN", "LOGIN"}
		}},
		{"submissions: wrapper mode ignores the level", with(dovecot, map[string]string{"smtpd_tls_wrappermode": "yes", "smtpd_tls_security_level": "none"}), plainLogin, func(d *Smtpd) {
			d.StartTLS, d.EnforceTLS, d.AuthTLSOnly, d.SASL, d.WrapperMode = true, true, true, true, true
			d.Mechanisms, d.TLSMechanisms = []string{"PLAIN", "LOGIN"}, []string{"PLAIN", "LOGIN"}
		}},
		{"legacy smtpd_use_tls", with(map[string]string{"smtpd_use_tls": "yes"}), nil, func(d *Smtpd) { d.StartTLS = true }},
		{"level none wins over smtpd_use_tls", with(map[string]string{"smtpd_use_tls": "yes", "smtpd_tls_security_level": "none"}), nil, func(*Smtpd) {}},
		{"verify is taken for encrypt", with(map[string]string{"smtpd_tls_security_level": "verify"}), nil, func(d *Smtpd) { d.StartTLS, d.EnforceTLS, d.AuthTLSOnly = true, true, true }},
		{"filtered mechanisms, in Dovecot's order", with(dovecot), many, func(d *Smtpd) {
			d.SASL = true // ANONYMOUS: noanonymous; EXTERNAL: hidden by the filter; APOP: private
			all := []string{"PLAIN", "LOGIN", "CRAM-MD5", "EXTERNAL", "SCRAM-SHA-256"}
			d.Mechanisms, d.TLSMechanisms, d.Hidden = all, all, []string{"EXTERNAL"}
		}},
		{"noplaintext before TLS only", with(dovecot, map[string]string{"smtpd_sasl_security_options": "noanonymous, noplaintext"}), many, func(d *Smtpd) {
			d.SASL, d.Hidden = true, []string{"EXTERNAL"}
			d.Mechanisms, d.TLSMechanisms = []string{"CRAM-MD5", "EXTERNAL", "SCRAM-SHA-256"}, []string{"PLAIN", "LOGIN", "CRAM-MD5", "EXTERNAL", "SCRAM-SHA-256"}
		}},
		{"mutual_auth, nodictionary", with(dovecot, map[string]string{"smtpd_sasl_security_options": "mutual_auth", "smtpd_sasl_tls_security_options": "nodictionary"}), many, func(d *Smtpd) {
			d.SASL, d.Hidden = true, []string{"EXTERNAL"}
			d.Mechanisms, d.TLSMechanisms = []string{"SCRAM-SHA-256"}, []string{"PLAIN", "LOGIN", "ANONYMOUS", "EXTERNAL", "SCRAM-SHA-256"}
		}},
		{"a filter of names", with(dovecot, map[string]string{"smtpd_sasl_mechanism_filter": "!login, plain, cram-md5"}), many, func(d *Smtpd) {
			all := []string{"PLAIN", "LOGIN", "CRAM-MD5", "EXTERNAL", "SCRAM-SHA-256"}
			d.SASL, d.Hidden = true, []string{"LOGIN", "ANONYMOUS", "EXTERNAL", "SCRAM-SHA-256", "APOP"}
			d.Mechanisms, d.TLSMechanisms = all, all
		}},
		{"a filter that hides all", with(dovecot, map[string]string{"smtpd_sasl_mechanism_filter": "gssapi"}), plainLogin, func(d *Smtpd) {
			d.SASL, d.Hidden = true, []string{"PLAIN", "LOGIN"}
		}},
		{"a filter that looks up a table", with(dovecot, map[string]string{"smtpd_sasl_mechanism_filter": "hash:/etc/postfix/mechs"}), many, func(d *Smtpd) { d.SASL = true }},
		{"everything filtered away: smtpd stops", with(dovecot, map[string]string{"smtpd_sasl_security_options": "noplaintext"}), plainLogin, func(d *Smtpd) {
			d.SASL, d.TLSMechanisms, d.Hidden = true, []string{"PLAIN", "LOGIN"}, nil
		}},
		{"an option Postfix does not know", with(dovecot, map[string]string{"smtpd_sasl_security_options": "nosuch"}), plainLogin, func(d *Smtpd) {
			d.SASL, d.TLSMechanisms = true, []string{"PLAIN", "LOGIN"}
		}},
		{"Cyrus: its list is not known", with(map[string]string{"smtpd_sasl_auth_enable": "yes"}), plainLogin, func(d *Smtpd) { d.SASL = true }},
		{"Dovecot's list not known", with(dovecot), nil, func(d *Smtpd) { d.SASL = true }},
		{"discarded keywords, broken clients, no SMTPUTF8, no VRFY", with(map[string]string{"smtpd_discard_ehlo_keywords": "silent-discard, dsn Chunking",
			"broken_sasl_auth_clients": "yes", "smtputf8_enable": "no", "disable_vrfy_command": "yes"}), nil, func(d *Smtpd) {
			d.Discard, d.BrokenAuth, d.SMTPUTF8, d.DisableVRFY = []string{"SILENT-DISCARD", "DSN", "CHUNKING"}, true, false, true
		}},
		{"no size limit, no recipient limit", with(map[string]string{"message_size_limit": "0", "smtpd_recipient_limit": "0", "smtpd_client_connection_count_limit": "0"}), nil, func(d *Smtpd) {
			d.SizeLimit, d.RecipientLimit, d.ConnectionLimit = 0, 0, 0
		}},
		{"limits it cannot read: Postfix's defaults", with(map[string]string{"message_size_limit": "10m", "smtpd_recipient_limit": "x"}), nil, func(*Smtpd) {}},
	} {
		set := tc.set
		if set == nil {
			set = smtpd37
		}
		c := &Config{Main: set}
		want := base
		tc.want(&want)
		if got := c.Smtpd(nil, tc.mechs); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, want)
		}
	}
}

func TestSmtpdService(t *testing.T) {
	c, err := Parse("smtpd_tls_security_level = may\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\nqueue_directory = /var/spool/postfix\n",
		"submission inet n - y - - smtpd -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes -o smtpd_sasl_path=/run/dovecot/auth-client\n"+
			"smtp inet n - y - - smtpd\n", "")
	if err != nil {
		t.Fatal(err)
	}
	sub, smtp := c.SMTPService(587), c.SMTPService(25)
	if d := c.Smtpd(sub, nil); !d.EnforceTLS || !d.SASL || !d.AuthTLSOnly {
		t.Errorf("submission: %+v", d)
	}
	if d := c.Smtpd(smtp, nil); d.EnforceTLS || d.SASL || !d.StartTLS {
		t.Errorf("smtp: %+v", d)
	}
	if got := c.DovecotSocket(sub); got != "/run/dovecot/auth-client" {
		t.Errorf("submission's socket: %q", got)
	}
	if got := c.DovecotSocket(smtp); got != "/var/spool/postfix/private/auth" {
		t.Errorf("smtp's socket: %q", got)
	}
	c.Main["smtpd_sasl_path"] = "inet:127.0.0.1:12345"
	if got := c.DovecotSocket(smtp); got != "" {
		t.Errorf("over TCP: %q", got)
	}
}

func TestDovecotMechs(t *testing.T) {
	got := DovecotMechs([]string{"plain", "LOGIN"})
	if want := []DovecotMech{{"PLAIN", []string{"plaintext"}}, {"LOGIN", []string{"plaintext"}}}; !reflect.DeepEqual(got, want) {
		t.Errorf("%+v", got)
	}
	if got := DovecotMechs([]string{"plain", "otp"}); got != nil {
		t.Errorf("a mechanism of unknown properties: %+v", got)
	}
}

// ReadDovecotAuth reads a handshake as Dovecot 2.3 sends it.
func TestReadDovecotAuth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(c, "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tCRAM-MD5\tdictionary\tactive\nMECH\tAPOP\tprivate\tdictionary\tactive\n"+
			"SPID\t1234\nCUID\t1\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n")
		buf := make([]byte, 100)
		c.Read(buf)
	}()
	got, err := ReadDovecotAuth(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	want := []DovecotMech{{"PLAIN", []string{"plaintext"}}, {"CRAM-MD5", []string{"dictionary", "active"}}, {"APOP", []string{"private", "dictionary", "active"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%+v", got)
	}
	if _, err := ReadDovecotAuth(context.Background(), filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("no socket: no error")
	}
}

func TestPostmaster(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  map[string]string
		want Postmaster
		ok   bool
	}{
		{"Debian's main.cf", nil, Postmaster{Domains: []string{"mail.example.org", "localhost"}}, true},
		{"Debian's submission", map[string]string{"smtpd_relay_restrictions": "", "smtpd_recipient_restrictions": "permit_sasl_authenticated,reject"},
			Postmaster{Domains: []string{"mail.example.org", "localhost"}, Reply: "554 5.7.1 <%s>: Recipient address rejected: Access denied"}, true},
		{"reject_unauth_destination passes it", map[string]string{"smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination", "smtpd_recipient_restrictions": "reject_unlisted_recipient"},
			Postmaster{Domains: []string{"mail.example.org", "localhost"}}, true},
		{"permit_auth_destination permits it", map[string]string{"smtpd_relay_restrictions": "permit_auth_destination, reject"},
			Postmaster{Domains: []string{"mail.example.org", "localhost"}}, true},
		{"a map decides", map[string]string{"smtpd_recipient_restrictions": "check_recipient_access hash:/etc/postfix/access"}, Postmaster{}, false},
		{"tables and patterns are skipped", map[string]string{"mydestination": "hash:/etc/postfix/local, .example.org, /etc/postfix/domains, localhost."},
			Postmaster{Domains: []string{"localhost"}}, true},
		{"a negation", map[string]string{"mydestination": "!mail.example.org, localhost"}, Postmaster{}, false},
		{"no local domain", map[string]string{"mydestination": ""}, Postmaster{}, false},
	} {
		set := maps.Clone(main37)
		maps.Copy(set, smtpd37)
		maps.Copy(set, tc.set)
		c := &Config{Main: set}
		got, ok := c.Postmaster(nil)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
