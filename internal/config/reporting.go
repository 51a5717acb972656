package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
)

// The evidence and reporting sections (issue 14, docs/reporting.md):
// their keys and their checks, apart from the rest of the schema.

// Evidence reads the trap's quarantined mail for what it carried.
type Evidence struct {
	Enabled    bool     `toml:"enabled"`
	Retention  Duration `toml:"retention" range:"1d..3650d"`
	Shorteners []string `toml:"shorteners"`
}

// Reporting sends reports of attackers, and of what their mail
// advertised, to those who can act on them. Every reporter is off until
// enabled.
type Reporting struct {
	Mode          string   `toml:"mode"` // send, review, dry-run: each reporter's unless it sets its own
	Dedup         Duration `toml:"dedup" range:"15m..365d"`
	Retention     Duration `toml:"retention" range:"1d..3650d"`
	MaxAttempts   int      `toml:"max_attempts" range:"1..100"`
	Jails         []string `toml:"jails"`     // whose bans are reported; empty: every jail's
	Scenarios     []string `toml:"scenarios"` // which scenarios' bans; empty: all but manual ones
	From          string   `toml:"from"`      // the reports' sender: "Abuse desk <abuse@example.org>"
	Organisation  string   `toml:"organisation"`
	LocalDomains  []string `toml:"local_domains"`  // redacted from what is sent, with this host's names and addresses
	IgnoreDomains []string `toml:"ignore_domains"` // never reported, with the built-in big providers

	SMTP          ReportSMTP    `toml:"smtp"`
	AbuseIPDB     AbuseIPDB     `toml:"abuseipdb"`
	Netcraft      Netcraft      `toml:"netcraft"`
	AbuseContacts AbuseContacts `toml:"abuse_contacts"`
	Webhook       ReportWebhook `toml:"webhook"`
	Postmaster    Postmaster    `toml:"postmaster"`
}

// ReportSMTP is the smarthost that mail reports and digests go through.
type ReportSMTP struct {
	Server       string `toml:"server"`   // host:port; "" : none
	Security     string `toml:"security"` // starttls, tls, none (loopback only)
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"` // or RAMPART_SMTP_PASSWORD
	Hostname     string `toml:"hostname"`      // said in EHLO; "": this host's name
}

// AbuseIPDB reports attacking addresses to AbuseIPDB's v2 API.
type AbuseIPDB struct {
	Enabled bool   `toml:"enabled"`
	Mode    string `toml:"mode"`
	KeyFile string `toml:"key_file"` // or RAMPART_ABUSEIPDB_KEY
	URL     string `toml:"url"`
	PerHour int    `toml:"per_hour" range:"1..10000"`
	// Categories by jail name; a jail not listed takes DefaultCategories,
	// mail the trap caught SpamCategories.
	Categories        map[string][]int `toml:"categories"`
	DefaultCategories []int            `toml:"default_categories"`
	SpamCategories    []int            `toml:"spam_categories"`
}

// Netcraft reports the links trapped mail advertised.
type Netcraft struct {
	Enabled bool   `toml:"enabled"`
	Mode    string `toml:"mode"`
	Email   string `toml:"email"`    // the reporter address Netcraft credits
	KeyFile string `toml:"key_file"` // optional; or RAMPART_NETCRAFT_KEY
	URL     string `toml:"url"`
	PerHour int    `toml:"per_hour" range:"1..10000"`
}

// AbuseContacts mails reports (X-ARF, ARF) to the abuse contact RDAP
// names for an attacking address, or a link's registrar.
type AbuseContacts struct {
	Enabled   bool     `toml:"enabled"`
	Mode      string   `toml:"mode"`
	Bootstrap string   `toml:"bootstrap"` // IANA's RDAP bootstrap files' directory
	Addresses bool     `toml:"addresses"` // report attacking and spamming addresses to their network's contact
	Domains   bool     `toml:"domains"`   // report advertised domains to their registrar's contact
	PerHour   int      `toml:"per_hour" range:"1..1000"`
	CacheTTL  Duration `toml:"cache_ttl" range:"1h..90d"`
}

// ReportWebhook posts every report as signed JSON.
type ReportWebhook struct {
	Enabled    bool   `toml:"enabled"`
	Mode       string `toml:"mode"`
	URL        string `toml:"url"`
	SecretFile string `toml:"secret_file"` // or RAMPART_WEBHOOK_SECRET
	PerHour    int    `toml:"per_hour" range:"1..100000"`
	Recipients bool   `toml:"recipients"` // include the trapped mail's recipients' addresses
}

// Postmaster mails each listed domain's postmaster the addresses of
// theirs that spammers hold (leaked recipients). Opt-in, per domain.
type Postmaster struct {
	Enabled  bool     `toml:"enabled"`
	Mode     string   `toml:"mode"`
	Domains  []string `toml:"domains"` // ["*"]: every domain seen
	Interval Duration `toml:"interval" range:"1h..30d"`
}

// ReportModes are the modes a reporter may run in.
var ReportModes = []string{"send", "review", "dry-run"}

// ReporterMode returns a reporter's mode: its own, else [reporting]'s.
func (r *Reporting) ReporterMode(own string) string {
	if own != "" {
		return own
	}
	return r.Mode
}

func (c *Config) checkEvidence() error {
	for i, h := range c.Evidence.Shorteners {
		if h = strings.ToLower(strings.TrimSpace(h)); h == "" || strings.ContainsAny(h, "/:@ ") || !strings.Contains(h, ".") {
			return c.errorf("evidence.shorteners", "entry %d: %q is not a host name", i+1, c.Evidence.Shorteners[i])
		}
	}
	if err := c.checkReporting(); err != nil {
		return err
	}
	return c.checkActions()
}

func (c *Config) checkReporting() error {
	r := &c.Reporting
	if err := oneOf(c, "reporting.mode", r.Mode, ReportModes...); err != nil {
		return err
	}
	for _, m := range []struct{ key, v string }{{"abuseipdb", r.AbuseIPDB.Mode}, {"netcraft", r.Netcraft.Mode},
		{"abuse_contacts", r.AbuseContacts.Mode}, {"webhook", r.Webhook.Mode}, {"postmaster", r.Postmaster.Mode}} {
		if m.v != "" {
			if err := oneOf(c, "reporting."+m.key+".mode", m.v, ReportModes...); err != nil {
				return err
			}
		}
	}
	if r.Retention < r.Dedup {
		return c.errorf("reporting.retention", "key \"retention\": %s is shorter than dedup (%s): a report forgotten earlier could be sent again", r.Retention, r.Dedup)
	}
	for i, d := range append(append([]string(nil), r.LocalDomains...), r.IgnoreDomains...) {
		key := "reporting.local_domains"
		if i >= len(r.LocalDomains) {
			key, i = "reporting.ignore_domains", i-len(r.LocalDomains)
		}
		if !hostLike(d) {
			return c.errorf(key, "entry %d: %q is not a domain", i+1, d)
		}
	}
	mails := r.AbuseContacts.Enabled || r.Postmaster.Enabled
	if mails || r.From != "" {
		if _, err := mail.ParseAddress(r.From); err != nil {
			return c.errorf("reporting.from", "key \"from\": %q is not an address (\"Abuse desk <abuse@example.org>\"); mailed reports need one", r.From)
		}
	}
	if err := c.checkReportSMTP(mails); err != nil {
		return err
	}
	for _, u := range []struct {
		key, url string
		on       bool
	}{{"reporting.abuseipdb.url", r.AbuseIPDB.URL, r.AbuseIPDB.Enabled}, {"reporting.netcraft.url", r.Netcraft.URL, r.Netcraft.Enabled},
		{"reporting.abuse_contacts.bootstrap", r.AbuseContacts.Bootstrap, r.AbuseContacts.Enabled},
		{"reporting.webhook.url", r.Webhook.URL, r.Webhook.Enabled}} {
		if err := checkServiceURL(u.url, u.on || u.url != ""); err != nil {
			return c.errorf(u.key, "key %q: %v", lastKey(u.key), err)
		}
	}
	if err := c.checkAbsPaths(keyValue{"reporting.smtp.password_file", r.SMTP.PasswordFile},
		keyValue{"reporting.abuseipdb.key_file", r.AbuseIPDB.KeyFile}, keyValue{"reporting.netcraft.key_file", r.Netcraft.KeyFile},
		keyValue{"reporting.webhook.secret_file", r.Webhook.SecretFile}); err != nil {
		return err
	}
	// A categories table in the file names some jails: the others keep
	// the built-in categories (the decoder replaced the whole table).
	if r.AbuseIPDB.Categories == nil {
		r.AbuseIPDB.Categories = map[string][]int{}
	}
	for jail, cats := range base().Reporting.AbuseIPDB.Categories {
		if _, ok := r.AbuseIPDB.Categories[jail]; !ok {
			r.AbuseIPDB.Categories[jail] = cats
		}
	}
	for jail, cats := range r.AbuseIPDB.Categories {
		if err := checkCategories(cats); err != nil {
			return c.errorf("reporting.abuseipdb.categories", "jail %q: %v", jail, err)
		}
	}
	for _, x := range []struct {
		key  string
		cats []int
	}{{"reporting.abuseipdb.default_categories", r.AbuseIPDB.DefaultCategories}, {"reporting.abuseipdb.spam_categories", r.AbuseIPDB.SpamCategories}} {
		if err := checkCategories(x.cats); err != nil || len(x.cats) == 0 {
			if err == nil {
				err = fmt.Errorf("at least one category")
			}
			return c.errorf(x.key, "%v", err)
		}
	}
	if r.Netcraft.Enabled || r.Netcraft.Email != "" {
		if a, err := mail.ParseAddress(r.Netcraft.Email); err != nil || a.Name != "" {
			return c.errorf("reporting.netcraft.email", "key \"email\": %q is not a bare address; Netcraft credits reports to it", r.Netcraft.Email)
		}
	}
	if r.AbuseContacts.Enabled && !r.AbuseContacts.Addresses && !r.AbuseContacts.Domains {
		return c.errorf("reporting.abuse_contacts.enabled", "abuse_contacts is enabled but reports neither addresses nor domains")
	}
	if r.Postmaster.Enabled && len(r.Postmaster.Domains) == 0 {
		return c.errorf("reporting.postmaster.domains", "postmaster is enabled but lists no domains (the domains whose postmasters agreed, or [\"*\"] for every one)")
	}
	for i, d := range r.Postmaster.Domains {
		if d != "*" && !hostLike(d) {
			return c.errorf("reporting.postmaster.domains", "entry %d: %q is not a domain", i+1, d)
		}
	}
	return nil
}

// checkReportSMTP checks the smarthost: required when reports are
// mailed, TLS unless on loopback, and never one of the trap's listeners
// (mail handed to the trap would be swallowed, and it must never carry
// Rampart's own mail).
func (c *Config) checkReportSMTP(needed bool) error {
	s := c.Reporting.SMTP
	if err := oneOf(c, "reporting.smtp.security", s.Security, "starttls", "tls", "none"); err != nil {
		return err
	}
	if s.Server == "" {
		if needed {
			return c.errorf("reporting.smtp.server", "mailed reports (abuse_contacts, postmaster) need [reporting.smtp] server")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(s.Server)
	if err != nil || host == "" || port == "" {
		return c.errorf("reporting.smtp.server", "key \"server\": %q is not host:port", s.Server)
	}
	a, isAddr := netip.ParseAddr(strings.Trim(host, "[]"))
	loop := host == "localhost" || isAddr == nil && a.Unmap().IsLoopback()
	if s.Security == "none" && !loop {
		return c.errorf("reporting.smtp.security", "key \"security\": \"none\" sends mail (and a password) in the clear: only to a relay on loopback")
	}
	if c.Trap.Enabled && (loop || isAddr == nil && a.IsUnspecified()) {
		for _, l := range c.Trap.Listeners {
			if _, lport, err := splitListen(l.Listen); err == nil && lport == port {
				return c.errorf("reporting.smtp.server", "key \"server\": %q is the trap's listener for port %d: reports never go through the trap", s.Server, l.Port)
			}
		}
	}
	return nil
}

// checkServiceURL checks a web service's URL: absolute, https (http only
// to loopback, for a service on this host).
func checkServiceURL(s string, needed bool) error {
	if s == "" {
		if needed {
			return fmt.Errorf("no URL")
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if a, err := netip.ParseAddr(h); h == "localhost" || err == nil && a.Unmap().IsLoopback() {
			return nil
		}
		return fmt.Errorf("%q: http only to loopback; use https", s)
	}
	return fmt.Errorf("%q: not an http(s) URL", s)
}

func checkCategories(cats []int) error {
	for _, n := range cats {
		if n < 1 || n > 23 {
			return fmt.Errorf("category %d is not one of AbuseIPDB's (1 to 23)", n)
		}
	}
	return nil
}

// hostLike reports whether s looks like a domain name.
func hostLike(s string) bool {
	return s != "" && len(s) <= 253 && strings.Contains(s, ".") && !strings.ContainsAny(s, " /:@\\\t")
}
