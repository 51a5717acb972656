package postfixaudit

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SmtpdParams are the main.cf parameters Smtpd and Postmaster read: a
// caller that asks postconf for some keys only asks for these too.
var SmtpdParams = []string{
	"message_size_limit", "smtpd_recipient_limit", "smtpd_client_connection_count_limit",
	"disable_vrfy_command", "smtputf8_enable",
	"smtpd_tls_security_level", "smtpd_use_tls", "smtpd_enforce_tls", "smtpd_tls_wrappermode", "smtpd_tls_auth_only",
	"smtpd_sasl_auth_enable", "smtpd_sasl_type", "smtpd_sasl_security_options", "smtpd_sasl_tls_security_options",
	"smtpd_sasl_mechanism_filter", "broken_sasl_auth_clients",
	"smtpd_discard_ehlo_keywords", "smtpd_discard_ehlo_keyword_address_maps",
	"smtpd_sasl_path", "queue_directory",
	"mydestination",
}

// Smtpd is what an smtpd service announces in its EHLO reply and the
// limits a client sees, for a client outside mynetworks (smtpd.c:ehlo_cmd
// and the checks of the commands it names, Postfix 3.7 to 3.10).
type Smtpd struct {
	StartTLS    bool // STARTTLS is offered until TLS is on (var_smtpd_use_tls)
	EnforceTLS  bool // only the commands allowed before TLS are answered before STARTTLS
	WrapperMode bool // TLS on connect (smtpd_tls_wrappermode)
	AuthTLSOnly bool // SASL is off until TLS is on (smtpd_tls_auth_only, or TLS enforced)
	SASL        bool // smtpd_sasl_auth_enable
	// Mechanisms and TLSMechanisms are what AUTH takes before and inside
	// TLS: Dovecot's, filtered by smtpd_sasl_security_options and
	// smtpd_sasl_tls_security_options; nil when that cannot be told.
	// EHLO lists them without Hidden, the ones smtpd_sasl_mechanism_filter
	// drops: that filter hides them, it does not refuse them
	// (xsasl_dovecot_server_first checks Dovecot's list).
	Mechanisms, TLSMechanisms, Hidden []string
	BrokenAuth                        bool     // broken_sasl_auth_clients: an "AUTH=…" line too
	Discard                           []string // EHLO keywords not announced (smtpd_discard_ehlo_keywords), upper case
	SizeLimit                         int64    // message_size_limit; 0: none
	SMTPUTF8                          bool     // smtputf8_enable
	DisableVRFY                       bool     // disable_vrfy_command
	RecipientLimit                    int      // smtpd_recipient_limit; 0: none
	ConnectionLimit                   int      // smtpd_client_connection_count_limit; 0: none
}

// Smtpd derives service s's EHLO reply and limits (nil: main.cf's
// settings alone). dovecot is what Dovecot's auth service offers, for a
// service with smtpd_sasl_type = dovecot (nil: unknown).
//
// smtpd_discard_ehlo_keyword_address_maps is not read: it looks the
// client up; smtpd_sasl_exceptions_networks neither, for the same reason.
func (c *Config) Smtpd(s *Service, dovecot []DovecotMech) Smtpd {
	p := func(name string) string { return c.Param(s, name) }
	d := Smtpd{
		WrapperMode: yes(p("smtpd_tls_wrappermode")),
		SASL:        yes(p("smtpd_sasl_auth_enable")),
		BrokenAuth:  yes(p("broken_sasl_auth_clients")),
		SMTPUTF8:    yes(p("smtputf8_enable")),
		DisableVRFY: yes(p("disable_vrfy_command")),
	}
	d.StartTLS, d.EnforceTLS = tlsLevel(p, d.WrapperMode)
	d.AuthTLSOnly = yes(p("smtpd_tls_auth_only")) || d.EnforceTLS
	for _, w := range tokens(p("smtpd_discard_ehlo_keywords")) {
		d.Discard = append(d.Discard, strings.ToUpper(w))
	}
	d.SizeLimit = 10240000 // Postfix's default; a value it cannot read stops smtpd
	if n, err := strconv.ParseInt(strings.TrimSpace(p("message_size_limit")), 10, 64); err == nil && n >= 0 {
		d.SizeLimit = n
	}
	d.RecipientLimit = limit(p("smtpd_recipient_limit"), 1000)
	d.ConnectionLimit = limit(p("smtpd_client_connection_count_limit"), 50)
	if d.SASL && strings.EqualFold(strings.TrimSpace(p("smtpd_sasl_type")), "dovecot") && dovecot != nil {
		hidden, ok := hiddenMechs(dovecot, p("smtpd_sasl_mechanism_filter"))
		if !ok {
			return d
		}
		d.Hidden = hidden
		d.Mechanisms = shown(mechanisms(dovecot, p("smtpd_sasl_security_options")), hidden)
		d.TLSMechanisms = shown(mechanisms(dovecot, p("smtpd_sasl_tls_security_options")), hidden)
	}
	return d
}

// shown returns ms when EHLO lists at least one of them; nil when the
// filter hides them all (smtpd stops: it cannot be copied).
func shown(ms, hidden []string) []string {
	for _, m := range ms {
		if !slices.Contains(hidden, m) {
			return ms
		}
	}
	return nil
}

// hiddenMechs returns Dovecot's mechanisms smtpd_sasl_mechanism_filter
// drops; ok is false when the filter looks up a table.
func hiddenMechs(dovecot []DovecotMech, filter string) (hidden []string, ok bool) {
	for _, m := range dovecot {
		match, ok := mechFilter(filter, m.Name)
		if !ok {
			return nil, false
		}
		if !match {
			hidden = append(hidden, m.Name)
		}
	}
	return hidden, true
}

// tlsLevel is smtpd's start-up reading of the TLS settings: whether
// STARTTLS is offered and whether TLS is required. Wrapper mode ignores
// smtpd_tls_security_level and requires TLS.
func tlsLevel(p func(string) string, wrapper bool) (use, enforce bool) {
	level := strings.ToLower(strings.TrimSpace(p("smtpd_tls_security_level")))
	switch {
	case wrapper || level == "":
		// The settings before smtpd_tls_security_level.
		use, enforce = yes(p("smtpd_use_tls")), yes(p("smtpd_enforce_tls"))
	case level == "may":
		use = true
	case level == "encrypt", level == "secure", level == "verify", level == "fingerprint":
		use, enforce = true, true // the last three are taken for encrypt
	}
	enforce = enforce || wrapper
	return use || enforce, enforce
}

// limit reads a count parameter (def when it cannot be read; 0: none).
func limit(v string, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return def
	}
	return n
}

// DovecotMech is a mechanism Dovecot's auth service offers Postfix, with
// its properties ("plaintext", "anonymous", "private", …), as one MECH
// line of its handshake says.
type DovecotMech struct {
	Name  string
	Flags []string
}

// DovecotMechs gives auth_mechanisms' names (doveconf -h
// auth_mechanisms) the properties Dovecot 2.3 declares for them
// (src/auth/mech-*.c), in their order, as Dovecot sends them; nil when
// one is not known here.
func DovecotMechs(names []string) []DovecotMech {
	var out []DovecotMech
	for _, n := range names {
		n = strings.ToUpper(n)
		flags, ok := dovecotFlags[n]
		if !ok {
			return nil
		}
		out = append(out, DovecotMech{Name: n, Flags: flags})
	}
	return out
}

// ReadDovecotAuth reads the mechanisms Dovecot's auth service offers from
// its handshake, as Postfix's smtpd reads them on path (a unix socket):
// it says its version, reads up to DONE and hangs up.
func ReadDovecotAuth(ctx context.Context, path string) ([]DovecotMech, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
	}
	if _, err := fmt.Fprintf(conn, "VERSION\t1\t2\nCPID\t%d\n", os.Getpid()); err != nil {
		return nil, err
	}
	var out []DovecotMech
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		switch {
		case f[0] == "DONE":
			return out, nil
		case f[0] == "MECH" && len(f) > 1:
			out = append(out, DovecotMech{Name: strings.ToUpper(f[1]), Flags: f[2:]})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("dovecot auth %s: no DONE in its handshake", path)
}

// DovecotSocket is where service s's smtpd finds Dovecot's auth service
// (smtpd_sasl_path, under queue_directory when relative); "" when it does
// not use Dovecot or uses it over TCP.
func (c *Config) DovecotSocket(s *Service) string {
	p := strings.TrimSpace(c.Param(s, "smtpd_sasl_path"))
	if !strings.EqualFold(strings.TrimSpace(c.Param(s, "smtpd_sasl_type")), "dovecot") || p == "" || strings.HasPrefix(p, "inet:") {
		return ""
	}
	p = strings.TrimPrefix(p, "unix:")
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.Main["queue_directory"], p)
	}
	return p
}

// Doveconf returns a Dovecot setting as doveconf reads it; false when
// doveconf is missing or does not know the setting (2.4 renamed some).
func Doveconf(ctx context.Context, key string) (string, bool) {
	if _, err := exec.LookPath("doveconf"); err != nil {
		return "", false
	}
	out, err := exec.CommandContext(ctx, "doveconf", "-h", key).Output()
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(out)), true
}

// dovecotFlags are the properties Dovecot 2.3 declares for its
// mechanisms and sends Postfix in its MECH lines: Postfix drops the
// private ones and filters the others by its security options
// (xsasl_dovecot_server.c).
var dovecotFlags = map[string][]string{
	"PLAIN": {"plaintext"}, "LOGIN": {"plaintext"}, "OAUTHBEARER": {"plaintext"}, "XOAUTH2": {"plaintext"},
	"CRAM-MD5": {"dictionary", "active"}, "NTLM": {"dictionary", "active"}, "SKEY": {"dictionary", "active"},
	"DIGEST-MD5":  {"dictionary", "active", "mutual-auth"},
	"SCRAM-SHA-1": {"mutual-auth"}, "SCRAM-SHA-256": {"mutual-auth"},
	"ANONYMOUS": {"anonymous"}, "EXTERNAL": {}, "GSSAPI": {}, "GSS-SPNEGO": {},
	"APOP": {"private", "dictionary", "active"}, "DOVECOT-TOKEN": {"private"},
}

// mechanisms is Dovecot's mechanisms (in their order) that a security
// options value lets through, as xsasl_dovecot_server_mech_filter keeps
// them; nil when that cannot be told: an option it cannot read, or no
// mechanism left (smtpd stops).
func mechanisms(dovecot []DovecotMech, options string) []string {
	forbid, require := map[string]bool{}, map[string]bool{}
	for _, o := range tokens(strings.ToLower(options)) {
		switch o {
		case "noplaintext", "noactive", "nodictionary", "noanonymous":
			forbid[strings.TrimPrefix(o, "no")] = true
		case "forward_secrecy", "mutual_auth":
			require[strings.ReplaceAll(o, "_", "-")] = true
		default:
			return nil
		}
	}
	var out []string
	for _, dm := range dovecot {
		m := dm.Name
		has := map[string]bool{}
		for _, f := range dm.Flags {
			has[strings.ToLower(f)] = true
		}
		keep := !has["private"]
		for f := range forbid {
			keep = keep && !has[f]
		}
		for f := range require {
			keep = keep && has[f]
		}
		if keep {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// mechFilter matches a mechanism against smtpd_sasl_mechanism_filter, a
// string list: the first name or !name that names it decides, static:…
// matches all, nothing matched drops it. ok is false for a table that
// must be looked up.
func mechFilter(filter, mech string) (match, ok bool) {
	toks := tokens(filter)
	if len(toks) == 0 {
		return true, true // no filter
	}
	for _, t := range toks {
		neg := strings.HasPrefix(t, "!")
		t = strings.TrimPrefix(t, "!")
		switch {
		case strings.HasPrefix(strings.ToLower(t), "static:"):
			return !neg, true
		case strings.Contains(t, ":") || strings.HasPrefix(t, "/"):
			return false, false
		case strings.EqualFold(t, mech):
			return !neg, true
		}
	}
	return false, true
}

// Postmaster is how a service answers RCPT TO:<postmaster@D>, D one of
// mydestination's names, from a client that has not logged in: smtpd's
// restrictions run for a local recipient, and postmaster, unlike other
// local names, is never refused as unknown (smtpd_check.c:
// check_rcpt_maps). (<postmaster> alone skips the restrictions:
// smtpd_check_rcpt takes it whatever they say.)
type Postmaster struct {
	Domains []string // mydestination's names, lower case
	// Reply is "" when the service accepts it, else its refusal as a
	// format with %s for the address.
	Reply string
}

// Postmaster derives service s's answer to postmaster at a local domain;
// ok is false when it cannot be told (the restrictions look something
// up, or mydestination has no name it can read).
func (c *Config) Postmaster(s *Service) (pm Postmaster, ok bool) {
	v, reply := recipientCheck(func(name string) string { return c.Param(s, name) }, true)
	switch v {
	case refused:
		pm.Reply = reply
	case permit, next:
	default:
		return Postmaster{}, false
	}
	// mydestination is trivial-rewrite's, read from main.cf.
	for _, t := range tokens(c.Main["mydestination"]) {
		switch {
		case strings.HasPrefix(t, "!"):
			return Postmaster{}, false // a negation may take back a name listed after it
		case strings.ContainsAny(t, ":/[") || strings.HasPrefix(t, "."):
			// A table, a file, an address or a pattern: its names are not
			// known here, and stay refused as remote ones.
		default:
			pm.Domains = append(pm.Domains, strings.ToLower(strings.TrimSuffix(t, ".")))
		}
	}
	if len(pm.Domains) == 0 {
		return Postmaster{}, false
	}
	return pm, true
}
