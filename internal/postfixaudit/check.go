package postfixaudit

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Finding is one thing to change, with the line that changes it.
type Finding struct {
	ID string `json:"id"` // stable: "open-relay", "sasl-on-port-25", …
	// Level is "error" for an exposure now (relaying for anyone, passwords
	// in plain text) and "warning" for a defence that is missing.
	Level   string `json:"level"`
	Service string `json:"service,omitempty"` // the master.cf service; "" for main.cf
	Problem string `json:"problem"`
	Why     string `json:"why"`
	Fix     string `json:"fix"` // lines for main.cf, or master.cf -o options
}

// Levels.
const (
	Error   = "error"
	Warning = "warning"
)

// rampartTCP is the Postfix policy server's documented TCP endpoint.
const rampartTCP = "inet:127.0.0.1:10023"

// rampartPolicy is the hook docs/integrations.md gives.
const rampartPolicy = "rampart_policy = check_policy_service { unix:rampart/policy, default_action=DUNNO }"

// Check returns the findings for c, in a fixed order.
func Check(c *Config) []Finding {
	var out []Finding
	add := func(f Finding) { out = append(out, f) }
	clients := c.clientServices()
	port25 := c.port25()

	for _, s := range clients {
		if !c.relayClosed(s) {
			add(Finding{ID: "open-relay", Level: Error, Service: s.Name,
				Problem: "neither smtpd_relay_restrictions nor smtpd_recipient_restrictions ends relaying with reject_unauth_destination",
				Why:     "any client may send mail through this server to any domain: spammers find such servers within hours",
				Fix:     "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"})
		}
	}
	if wide := wideNetworks(c.Main["mynetworks"]); len(wide) > 0 {
		add(Finding{ID: "mynetworks-wide", Level: Error,
			Problem: "mynetworks includes " + strings.Join(wide, ", "),
			Why:     "permit_mynetworks lets every address in these networks relay and skips every other check, Rampart's included",
			Fix:     "mynetworks = 127.0.0.0/8 [::1]/128   # and only the hosts that relay through this one"})
	}
	if port25 != nil && yes(c.Param(port25, "smtpd_sasl_auth_enable")) {
		add(Finding{ID: "sasl-on-port-25", Level: Warning, Service: port25.Name,
			Problem: "SMTP AUTH is offered on port 25",
			Why:     "password guessers try port 25 first; users submit on 587 (or 465), where AUTH belongs",
			Fix:     "smtpd_sasl_auth_enable = no   # in main.cf; and in master.cf, on submission: -o smtpd_sasl_auth_enable=yes"})
	}
	sasl := false
	for _, s := range clients {
		if !yes(c.Param(s, "smtpd_sasl_auth_enable")) {
			continue
		}
		sasl = true
		if !yes(c.Param(s, "smtpd_tls_auth_only")) && c.Param(s, "smtpd_tls_security_level") != "encrypt" && !yes(c.Param(s, "smtpd_tls_wrappermode")) {
			add(Finding{ID: "plaintext-auth", Level: Error, Service: s.Name,
				Problem: "AUTH is offered before TLS",
				Why:     "passwords cross the network readable by anyone on the path",
				Fix:     "-o smtpd_tls_auth_only=yes   # on " + s.Name + " in master.cf (or smtpd_tls_security_level=encrypt)"})
		}
	}
	if !yes(c.Main["smtpd_helo_required"]) {
		add(Finding{ID: "helo-not-required", Level: Warning,
			Problem: "smtpd_helo_required = no",
			Why:     "clients that skip HELO/EHLO are almost all bots; requiring it costs real senders nothing",
			Fix:     "smtpd_helo_required = yes"})
	}
	if number(c.Main["smtpd_client_connection_rate_limit"]) == 0 {
		add(Finding{ID: "no-connection-rate-limit", Level: Warning,
			Problem: "smtpd_client_connection_rate_limit = 0 (no limit)",
			Why:     "one client may open connections as fast as it likes, each taking an smtpd process",
			Fix:     "smtpd_client_connection_rate_limit = 30"})
	}
	if sasl && number(c.Main["smtpd_client_auth_rate_limit"]) == 0 {
		add(Finding{ID: "no-auth-rate-limit", Level: Warning,
			Problem: "smtpd_client_auth_rate_limit = 0 (no limit)",
			Why:     "one client may try passwords as fast as smtpd answers",
			Fix:     "smtpd_client_auth_rate_limit = 10"})
	}
	if c.service("anvil", "unix") == nil {
		add(Finding{ID: "no-anvil", Level: Warning,
			Problem: "master.cf has no anvil service",
			Why:     "the per-client connection and rate limits are counted by anvil: without it none of them works",
			Fix:     "anvil     unix  -       -       y       -       1       anvil   # in master.cf"})
	}
	if soft, hard := number(c.Main["smtpd_soft_error_limit"]), number(c.Main["smtpd_hard_error_limit"]); soft >= 10 || hard >= 20 {
		add(Finding{ID: "error-limits", Level: Warning,
			Problem: fmt.Sprintf("smtpd_soft_error_limit = %d, smtpd_hard_error_limit = %d (Postfix's defaults)", soft, hard),
			Why:     "a client may make 20 errors (unknown recipients, bad commands) per connection before it is dropped",
			Fix:     "smtpd_soft_error_limit = 3\nsmtpd_hard_error_limit = 10"})
	}
	if !yes(c.Main["disable_vrfy_command"]) {
		add(Finding{ID: "vrfy-enabled", Level: Warning,
			Problem: "disable_vrfy_command = no",
			Why:     "VRFY tells a client which addresses exist, without sending mail and without the recipient checks",
			Fix:     "disable_vrfy_command = yes"})
	}
	for _, s := range clients {
		if !yes(c.Param(s, "smtpd_reject_unlisted_recipient")) {
			add(Finding{ID: "unlisted-recipients", Level: Warning, Service: s.Name,
				Problem: "smtpd_reject_unlisted_recipient = no",
				Why:     "mail for addresses that do not exist is accepted and bounced later: backscatter, and an enumerator still learns from the bounces",
				Fix:     "smtpd_reject_unlisted_recipient = yes"})
		}
	}
	if smtp := c.port25Listener(); smtp != nil && smtp.Command != "postscreen" {
		add(Finding{ID: "no-postscreen", Level: Warning, Service: smtp.Name,
			Problem: "port 25 is served by smtpd directly, without postscreen",
			Why:     "postscreen turns away bots that talk before the greeting, and holds the rest in one process instead of one smtpd each",
			Fix: "# in master.cf, instead of the smtp inet line:\n" +
				"smtp      inet  n       -       y       -       1       postscreen\n" +
				"smtpd     pass  -       -       y       -       -       smtpd\n" +
				"dnsblog   unix  -       -       y       -       0       dnsblog\n" +
				"tlsproxy  unix  -       -       y       -       0       tlsproxy"})
	}
	out = append(out, c.checkRampart(port25, clients)...)
	return out
}

// checkRampart checks Rampart's policy hooks: on port 25's recipient
// restrictions, before anything that tells valid recipients from invalid
// ones; on submission's client restrictions with smtpd_delay_reject = no;
// failing open; with a timeout longer than Rampart's tarpit.
func (c *Config) checkRampart(port25 *Service, clients []*Service) []Finding {
	var out []Finding
	recip := c.Param(port25, "smtpd_recipient_restrictions")
	toks := tokens(recip)
	at := -1
	for i := range toks {
		if toks[i] == "check_policy_service" && i+1 < len(toks) && isRampart(toks[i+1]) {
			at = i
			break
		}
	}
	svc := ""
	if port25 != nil {
		svc = port25.Name
	}
	hooks := c.rampartHooks()
	switch {
	case at < 0:
		out = append(out, Finding{ID: "rampart-hook-absent", Level: Warning, Service: svc,
			Problem: "smtpd_recipient_restrictions does not ask Rampart (check_policy_service)",
			Why:     "banned clients, enumerators and password guessers are answered by Postfix as if nothing were known about them",
			Fix:     rampartPolicy + "\nsmtpd_recipient_restrictions = permit_mynetworks, $rampart_policy, ...   # see docs/integrations.md"})
	default:
		for _, t := range toks[:at] {
			if revealing(t) {
				out = append(out, Finding{ID: "rampart-hook-order", Level: Warning, Service: svc,
					Problem: fmt.Sprintf("%s comes before Rampart's check_policy_service in smtpd_recipient_restrictions", t),
					Why:     "it answers first (telling valid recipients from invalid ones, or accepting outright), so Rampart cannot blind an enumerator or refuse a banned client",
					Fix:     "smtpd_recipient_restrictions = permit_mynetworks, $rampart_policy, " + t + ", ...   # Rampart right after the permit_ entries"})
				break
			}
		}
	}
	for _, s := range clients {
		if s == port25 || !yes(c.Param(s, "smtpd_sasl_auth_enable")) {
			continue
		}
		ct := tokens(c.Param(s, "smtpd_client_restrictions"))
		has := false
		for i := range ct {
			has = has || ct[i] == "check_policy_service" && i+1 < len(ct) && isRampart(ct[i+1])
		}
		if !has || yes(c.Param(s, "smtpd_delay_reject")) {
			out = append(out, Finding{ID: "rampart-hook-submission", Level: Warning, Service: s.Name,
				Problem: "submission does not ask Rampart at CONNECT (smtpd_client_restrictions with smtpd_delay_reject = no)",
				Why:     "a banned client reaches AUTH and keeps guessing passwords; with the hook it gets 554 instead of the greeting",
				Fix:     "-o smtpd_delay_reject=no\n-o smtpd_client_restrictions=$rampart_policy   # on " + s.Name + " in master.cf"})
		}
	}
	out = append(out, c.checkChroot(clients)...)
	failClosed := strings.HasPrefix(c.Main["smtpd_policy_service_default_action"], "4") || strings.HasPrefix(c.Main["smtpd_policy_service_default_action"], "5") ||
		strings.HasPrefix(strings.ToUpper(c.Main["smtpd_policy_service_default_action"]), "DEFER") || strings.HasPrefix(strings.ToUpper(c.Main["smtpd_policy_service_default_action"]), "REJECT")
	for _, h := range hooks {
		if failClosed && !strings.Contains(strings.ReplaceAll(h, " ", ""), "default_action=DUNNO") {
			out = append(out, Finding{ID: "policy-fails-closed", Level: Warning,
				Problem: "Rampart's hook " + h + " uses smtpd_policy_service_default_action = " + c.Main["smtpd_policy_service_default_action"],
				Why:     "while Rampart is stopped or restarting, every recipient is deferred and every submission connection refused",
				Fix:     rampartPolicy})
			break
		}
	}
	if len(hooks) > 0 {
		if d, ok := duration(c.Main["smtpd_policy_service_timeout"]); ok && d < 25*time.Second {
			out = append(out, Finding{ID: "policy-timeout-short", Level: Warning,
				Problem: "smtpd_policy_service_timeout = " + c.Main["smtpd_policy_service_timeout"],
				Why:     "Rampart holds a suspicious client's answer up to its tarpit_max (20s): a shorter timeout turns the tarpit into a policy failure",
				Fix:     "smtpd_policy_service_timeout = 100s"})
		}
	}
	return out
}

// checkChroot flags a Rampart hook a chrooted smtpd cannot reach: an
// absolute unix: path is looked up inside the chroot (the queue
// directory), so Debian's smtpd (chroot "y") would connect to
// /var/spool/postfix/var/spool/postfix/... and every query would fail
// open, unnoticed but for a warning in the mail log. Postfix's daemons
// run in the queue directory, chrooted or not, so a path relative to it
// works for both.
func (c *Config) checkChroot(clients []*Service) []Finding {
	var out []Finding
	for _, s := range clients {
		if s.Chroot != "y" && s.Chroot != "yes" {
			continue
		}
		for _, h := range c.serviceHooks(s) {
			path, ok := strings.CutPrefix(bareEndpoint(h), "unix:")
			if !ok || !strings.HasPrefix(path, "/") {
				continue
			}
			fix := "# a unix: path relative to queue_directory, as:\n" + rampartPolicy
			if q := strings.TrimSuffix(c.Main["queue_directory"], "/"); q != "" {
				if rel, ok := strings.CutPrefix(path, q+"/"); ok {
					fix = strings.Replace(rampartPolicy, "unix:rampart/policy", "unix:"+rel, 1)
				} else {
					fix = "# move Rampart's socket into " + q + " ([postfix_policy] listen), then:\n" + rampartPolicy
				}
			}
			out = append(out, Finding{ID: "rampart-hook-chroot", Level: Error, Service: s.Name,
				Problem: "Rampart's hook " + h + " is an absolute path, and " + s.Name + " runs chrooted in the queue directory",
				Why:     "the chrooted smtpd looks for the socket inside its chroot and never finds it: every query fails open, and Rampart is never asked",
				Fix:     fix})
			break
		}
	}
	return out
}

// serviceHooks returns the endpoints of Rampart's check_policy_service
// entries in the restriction lists s uses: its -o overrides, else main.cf's.
func (c *Config) serviceHooks(s *Service) []string {
	var hooks []string
	names := map[string]bool{}
	for k := range c.Main {
		names[k] = true
	}
	for k := range s.Overrides {
		names[k] = true
	}
	for k := range names {
		if strings.HasSuffix(k, "_restrictions") {
			hooks = appendHooks(hooks, c.Param(s, k))
		}
	}
	slices.Sort(hooks)
	return hooks
}

// appendHooks appends to hooks the endpoints of Rampart's
// check_policy_service entries in the restriction list v that it lacks.
func appendHooks(hooks []string, v string) []string {
	t := tokens(v)
	for i := range t {
		if t[i] == "check_policy_service" && i+1 < len(t) && isRampart(t[i+1]) && !slices.Contains(hooks, t[i+1]) {
			hooks = append(hooks, t[i+1])
		}
	}
	return hooks
}

// bareEndpoint returns a check_policy_service endpoint without the braces
// and attributes of its { endpoint, name=value ... } form.
func bareEndpoint(endpoint string) string {
	e := strings.Trim(endpoint, "{} ")
	e, _, _ = strings.Cut(e, ",")
	return strings.TrimSpace(e)
}

// rampartHooks returns the endpoints of Rampart's check_policy_service
// entries in every restriction list of main.cf and of the services.
func (c *Config) rampartHooks() []string {
	var hooks []string
	for k, v := range c.Main {
		if strings.HasSuffix(k, "_restrictions") {
			hooks = appendHooks(hooks, v)
		}
	}
	for _, s := range c.Services {
		for k, v := range s.Overrides {
			if strings.HasSuffix(k, "_restrictions") {
				hooks = appendHooks(hooks, v)
			}
		}
	}
	slices.Sort(hooks)
	return hooks
}

func isRampart(endpoint string) bool {
	e := bareEndpoint(endpoint)
	return strings.Contains(e, "rampart") || e == rampartTCP
}

// revealing reports whether a restriction placed before Rampart's hook
// answers a recipient first: it tells valid recipients from invalid ones,
// or ends the list.
func revealing(t string) bool {
	switch t {
	case "permit", "reject", "defer", "permit_auth_destination", "reject_unlisted_recipient",
		"reject_unverified_recipient", "check_recipient_access", "check_recipient_maps",
		"check_recipient_a_access", "check_recipient_mx_access", "check_recipient_ns_access":
		return true
	}
	return false
}

// relayClosed reports whether one of the two lists that can stop relaying
// does: reject_unauth_destination (or defer_) with no bare permit before
// it.
func (c *Config) relayClosed(s *Service) bool {
	for _, name := range []string{"smtpd_relay_restrictions", "smtpd_recipient_restrictions"} {
		for _, t := range tokens(c.Param(s, name)) {
			if t == "permit" {
				break
			}
			if t == "reject_unauth_destination" || t == "defer_unauth_destination" {
				return true
			}
		}
	}
	return false
}

// clientServices returns the smtpd services that talk to clients: inet
// ones, and the one postscreen passes port 25 clients to.
func (c *Config) clientServices() []*Service {
	var out []*Service
	for i := range c.Services {
		s := &c.Services[i]
		if s.Command == "smtpd" && (s.Type == "inet" || s.Type == "pass") {
			out = append(out, s)
		}
	}
	return out
}

// port25Listener is the inet service on port 25.
func (c *Config) port25Listener() *Service { return c.inetListener(25) }

// port25 is the smtpd serving port 25's clients: the listener, or the
// pass service postscreen hands them to.
func (c *Config) port25() *Service {
	l := c.port25Listener()
	if l != nil && l.Command == "postscreen" {
		return c.postscreenSmtpd(l)
	}
	return l
}

func (c *Config) service(name, typ string) *Service {
	for i := range c.Services {
		if c.Services[i].Name == name && c.Services[i].Type == typ {
			return &c.Services[i]
		}
	}
	return nil
}

// tokens splits a restriction list on commas and white space, keeping a
// { … } group (a restriction's attributes) as one token.
func tokens(v string) []string {
	var out []string
	depth, start := 0, -1
	for i, r := range v {
		switch {
		case r == '{':
			if depth == 0 && start < 0 {
				start = i
			}
			depth++
		case r == '}':
			depth = max(depth-1, 0)
		case depth == 0 && (r == ',' || r == ' ' || r == '\t' || r == '\n'):
			if start >= 0 {
				out = append(out, v[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, v[start:])
	}
	return out
}

// wideNetworks returns the entries of mynetworks that reach beyond a
// small network of one's own: any public network wider than a /24 (IPv6:
// a /48), and anything of /8 or wider (IPv6: /16).
func wideNetworks(mynetworks string) []string {
	var out []string
	for _, t := range tokens(mynetworks) {
		if strings.HasPrefix(t, "!") || strings.Contains(t, ":/") || strings.HasPrefix(t, "/") {
			continue // a negation or a lookup table
		}
		raw := t
		t = strings.Replace(strings.Replace(t, "[", "", 1), "]", "", 1)
		p, err := netip.ParsePrefix(t)
		if err != nil {
			continue
		}
		a := p.Addr().Unmap()
		bits := p.Bits()
		if p.Addr().Is4In6() {
			bits -= 96
		}
		private := a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast()
		switch {
		case a.Is4() && (bits < 8 || !private && bits < 24):
			out = append(out, raw)
		case a.Is6() && (bits < 16 || !private && bits < 48):
			out = append(out, raw)
		}
	}
	return out
}

func yes(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "yes") }

// number reads the leading integer of a value (0 when there is none).
func number(v string) int {
	v = strings.TrimSpace(v)
	end := 0
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}

// duration reads a Postfix time value: a number with an optional unit
// (s, m, h, d, w; seconds by default).
func duration(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	n := number(v)
	if n == 0 && !strings.HasPrefix(v, "0") {
		return 0, false
	}
	unit := strings.TrimLeft(v, "0123456789")
	mult := map[string]time.Duration{"": time.Second, "s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}
	m, ok := mult[unit]
	if !ok {
		return 0, false
	}
	return time.Duration(n) * m, true
}
