package postfixaudit

import (
	"net/netip"
	"strconv"
	"strings"
)

// RelayParams are the main.cf parameters RelayDenied reads: a caller that
// asks postconf for some keys only (postconf -x KEY...) asks for these.
var RelayParams = []string{
	"smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
	"smtpd_relay_restrictions", "smtpd_recipient_restrictions",
	"smtpd_relay_before_recipient_restrictions", "smtpd_delay_reject", "smtpd_restriction_classes",
	"reject_code", "defer_code", "relay_domains_reject_code", "soft_bounce",
	"smtpd_reject_footer", "smtpd_reject_footer_maps", "smtpd_service_name",
}

// RelayDenied returns the reply of service s (nil: main.cf's settings
// alone) to RCPT TO for an address at a remote domain from a client that
// has not logged in, is not in mynetworks and shows no client
// certificate, as a format with %s for the address: "554 5.7.1 <%s>:
// Relay access denied", "454 4.7.1 <%s>: Relay access denied", "554 5.7.1
// <%s>: Recipient address rejected: Access denied", …
//
// It returns "" when the reply cannot be told from the configuration: a
// restriction that looks something up (an access map, DNS, a policy
// service, a restriction class whose definition it was not given) or
// depends on the session comes before the one that decides; a refusal
// names the client, its HELO name or the sender rather than the
// recipient; the reply gets a footer or ends the session; or the
// restrictions let the client relay (the service would accept).
func (c *Config) RelayDenied(s *Service) string {
	return relayDenied(func(name string) string { return c.Param(s, name) })
}

// relayDenied follows smtpd_check_rcpt in Postfix's smtpd_check.c, for the
// values param returns (postconf -x's: $names already expanded).
func relayDenied(param func(string) string) string {
	if v, reply := recipientCheck(param, false); v == refused {
		return reply
	}
	return ""
}

// recipientCheck follows smtpd_check_rcpt for a recipient at a remote
// domain, or at a local one (mydestination's): refused with the reply's
// format, permit when the recipient passes, unknown when that cannot be
// told.
func recipientCheck(param func(string) string, local bool) (verdict, string) {
	if param("smtpd_reject_footer") != "" || param("smtpd_reject_footer_maps") != "" {
		return unknown, "" // a multi-line reply
	}
	e := &relayEval{param: param, classes: map[string]bool{}, local: local}
	for _, name := range tokens(param("smtpd_restriction_classes")) {
		e.classes[name] = true
	}
	relay, rcpt := tokens(param("smtpd_relay_restrictions")), tokens(param("smtpd_recipient_restrictions"))
	if !e.hasRequired(relay, 0) && !e.hasRequired(rcpt, 0) {
		return unknown, "" // smtpd refuses to start
	}
	// With smtpd_delay_reject (the default), RCPT runs the client, HELO and
	// sender restrictions first, and a recipient is known to them. Without
	// it they ran at their own command, before any recipient.
	delay := !strings.EqualFold(param("smtpd_delay_reject"), "no")
	for _, name := range []string{"smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions"} {
		if v, reply := e.list(tokens(param(name)), "", delay, false, 0); v == refused || v == unknown {
			return v, reply
		}
	}
	// smtpd_relay_before_recipient_restrictions = yes since
	// compatibility_level 3.6; recipient restrictions first before it (and
	// before Postfix 3.6, which lacks the parameter). A permit in the first
	// list ends that list only.
	lists := [][]string{rcpt, relay}
	if yes(param("smtpd_relay_before_recipient_restrictions")) {
		lists = [][]string{relay, rcpt}
	}
	for _, l := range lists {
		if v, reply := e.list(l, "Recipient address", true, false, 0); v == refused || v == unknown {
			return v, reply
		}
	}
	return permit, "" // relayed, or delivered here
}

// verdict is what a restriction (or a list) decides.
type verdict int

const (
	next    verdict = iota // DUNNO: on to the next restriction
	permit                 // OK: the end of this list
	refused                // a reply
	unknown                // cannot be told from the configuration
)

type relayEval struct {
	param   func(string) string
	classes map[string]bool // smtpd_restriction_classes
	local   bool            // the recipient's domain is local (mydestination)
}

// list evaluates one restriction list for the trapped client and a
// recipient at a remote domain, as generic_checks does. subject names the
// list's refusals ("Recipient address"); "" when they name the client,
// its HELO or the sender, which the reply's format cannot. rcptKnown says
// whether the recipient restrictions see the recipient; warn, whether
// warn_if_reject covers the whole list (a restriction class after it).
func (e *relayEval) list(toks []string, subject string, rcptKnown, warn bool, depth int) (verdict, string) {
	warnNext := false
	for i := 0; i < len(toks); i++ {
		v, reply := next, ""
		switch strings.ToLower(toks[i]) {
		case "warn_if_reject":
			// The next restriction's refusal is only logged.
			warnNext = true
			continue
		case "permit":
			v = permit
		case "reject":
			v, reply = refused, e.reply(e.code("reject_code", 554), "5.7.1", subject, "Access denied")
		case "defer":
			v, reply = refused, e.reply(e.code("defer_code", 450), "4.3.2", subject, "Try again later")
		case "reject_unauth_destination":
			if rcptKnown && !e.local {
				v, reply = refused, e.reply(e.code("relay_domains_reject_code", 554), "5.7.1", "", "")
			}
		case "defer_unauth_destination":
			if rcptKnown && !e.local {
				v, reply = refused, e.reply(e.code("relay_domains_reject_code", 554)-100, "4.7.1", "", "")
			}
		case "permit_auth_destination":
			if rcptKnown && e.local {
				v = permit
			}
		case "permit_mynetworks", "permit_sasl_authenticated", "permit_tls_clientcerts", "permit_tls_all_clientcerts",
			"permit_inet_interfaces":
			// None holds for a trapped client.
		case "reject_unlisted_recipient", "check_recipient_maps", "reject_non_fqdn_recipient":
			// They judge unqualified addresses and local recipients; the
			// local one asked about here, postmaster@a local domain, is
			// qualified and always listed (smtpd_check.c:check_rcpt_maps).
		case "sleep":
			i++ // a wait, then on
		case "check_policy_service":
			// Rampart's own hook answers DUNNO for a client it has not
			// banned, and the trap stands for the server as it answers
			// before Rampart's verdict. Another policy service may say
			// anything.
			if i+1 >= len(toks) || !isRampart(toks[i+1]) {
				return unknown, ""
			}
			i++
		default:
			if !e.classes[toks[i]] || e.param(toks[i]) == "" || depth >= 10 {
				return unknown, ""
			}
			v, reply = e.list(tokens(e.param(toks[i])), subject, rcptKnown, warn || warnNext, depth+1)
			if v == unknown {
				return unknown, ""
			}
		}
		if v == refused && (warn || warnNext) {
			v = next
		}
		warnNext = false
		switch {
		case v == refused && reply == "":
			return unknown, ""
		case v != next:
			return v, reply
		}
	}
	return next, ""
}

// reply formats a refusal as smtpd_check_reject does; text "" is
// reject_unauth_destination's. It returns "" for a reply the format
// cannot hold.
func (e *relayEval) reply(code int, dsn, subject, text string) string {
	if code < 400 || code > 599 {
		return "" // "450 4.7.1 Service unavailable", with no address
	}
	if code >= 500 && yes(e.param("soft_bounce")) {
		code -= 100
	}
	if code == 421 || code == 521 {
		return "" // and the session ends
	}
	// The DSN's class follows the reply code.
	dsn = strconv.Itoa(code/100) + dsn[1:]
	switch {
	case text == "":
		text = "Relay access denied"
	case subject == "":
		return ""
	default:
		text = subject + " rejected: " + text
	}
	return strconv.Itoa(code) + " " + dsn + " <%s>: " + text
}

// code reads a reply code parameter (def when absent; 0, a reply it
// cannot give, when malformed: Postfix would not start).
func (e *relayEval) code(name string, def int) int {
	v := e.param(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0
	}
	return n
}

// hasRequired is smtpd's start-up check: the relay or the recipient
// restrictions must hold a restriction that refuses by default.
func (e *relayEval) hasRequired(toks []string, depth int) bool {
	for i := 0; i < len(toks); i++ {
		switch t := strings.ToLower(toks[i]); {
		case t == "warn_if_reject":
			i++
		case t == "permit":
			return false
		case t == "reject_unauth_destination" || t == "defer_unauth_destination" || t == "reject" ||
			t == "defer" || t == "defer_if_permit" || t == "check_relay_domains":
			return true
		case e.classes[toks[i]] && depth < 10 && e.hasRequired(tokens(e.param(toks[i])), depth+1):
			return true
		}
	}
	return false
}

// SMTPService returns the smtpd service that answers the clients who dial
// port (25, 587, 465, …) at a public address: the inet service named by
// the port ("submission", "587") for every address, else one for an
// address that is not loopback ("192.0.2.1:submission"); when that is
// postscreen, the smtpd it hands clients to. nil when there is none.
func (c *Config) SMTPService(port int) *Service {
	l := c.inetListener(port)
	switch {
	case l == nil:
		return nil
	case l.Command == "postscreen":
		return c.postscreenSmtpd(l)
	case l.Command != "smtpd":
		return nil
	}
	return l
}

// inetListener is the inet service clients reach on port at a public
// address: the one for every address, else one bound to an address that
// is not loopback; nil when there is none.
func (c *Config) inetListener(port int) *Service {
	var found *Service
	for i := range c.Services {
		s := &c.Services[i]
		if s.Type != "inet" {
			continue
		}
		host, name := "", s.Name
		if at := strings.LastIndexByte(s.Name, ':'); at >= 0 {
			host, name = s.Name[:at], s.Name[at+1:]
		}
		if servicePort(name) != port || loopback(host) {
			continue
		}
		if host == "" {
			return s
		}
		if found == nil {
			found = s
		}
	}
	return found
}

// postscreenSmtpd is the smtpd postscreen l hands its clients to
// (smtpd_service_name, "smtpd" by default, of type pass).
func (c *Config) postscreenSmtpd(l *Service) *Service {
	name := c.Param(l, "smtpd_service_name")
	if name == "" {
		name = "smtpd"
	}
	return c.service(name, "pass")
}

// servicePort is the port of a master.cf service name (a number, or a
// name of /etc/services); 0 for one it does not know.
func servicePort(name string) int {
	switch name {
	case "smtp":
		return 25
	case "submission":
		return 587
	case "submissions", "smtps", "ssmtp", "urd":
		return 465
	}
	n, err := strconv.Atoi(name)
	if err != nil || n <= 0 || n > 65535 {
		return 0
	}
	return n
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}
