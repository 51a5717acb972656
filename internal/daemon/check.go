package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/geo"
)

// Problem is one thing Check found, at the configuration's file:line:key.
type Problem struct {
	Err error
	// Warning: `rampart run` says so and goes on (a log file that does not
	// exist yet is waited for); otherwise the configuration does not work
	// as written, and `rampart check-config` fails.
	Warning bool
}

// Check looks at what cfg needs from this host, beyond what parsing it
// checked: what `rampart run` would fail on or silently do without. It
// reads files and lists the host's addresses; it opens no listener and
// changes nothing.
//
// Errors: no enabled jail; an unknown filter or mode; a reporter's secret
// missing or unreadable (run refuses to start); a Dovecot auth_file
// that cannot be read or is empty (run refuses both; parsing already
// requires one off loopback); the dashboard's token_file likewise; an ASN
// or country database that cannot be opened (run would leave the ASN
// scenario off, and places unknown); a listen address that is not this
// host's (run cannot listen on it).
//
// Warnings: a log file missing or unreadable (run waits for it), a jail
// with no source run can read (journald not running), a syslog listener
// off loopback (syslog has no authentication: whoever reaches it can write
// lines that get addresses banned), a metrics listener off loopback.
func Check(cfg *config.Config, reg *filter.Registry) []Problem {
	var ps []Problem
	fail := func(key, format string, args ...any) {
		ps = append(ps, Problem{Err: cfg.Errorf(key, format, args...)})
	}
	warn := func(key, format string, args ...any) {
		ps = append(ps, Problem{Err: cfg.Errorf(key, format, args...), Warning: true})
	}
	jails := cfg.EnabledJails()
	if len(jails) == 0 {
		fail("jail", "no enabled jail: nothing would be watched")
	}
	if err := cfg.CheckFilters(FilterCheck(reg)); err != nil {
		ps = append(ps, Problem{Err: err})
	}
	checkSources(cfg, jails, journaldRunning(), warn)
	if cfg.Dovecot.Listen != "" {
		auth, _, err := configuredDovecotAuth(cfg.Dovecot.AuthFile)
		switch {
		case err != nil:
			fail("dovecot_policy.auth_file", "%v", err)
		case auth == "" && cfg.Dovecot.AuthFile != "":
			fail("dovecot_policy.auth_file", "%s is empty: Dovecot's requests would not be authenticated", cfg.Dovecot.AuthFile)
		}
	}
	if _, err := reportingSecrets(cfg); err != nil {
		ps = append(ps, Problem{Err: err})
	}
	for i, a := range cfg.Actions {
		for _, f := range []struct{ key, env, file string }{{"secret_file", a.SecretEnv("SECRET"), a.SecretFile}, {"dsn_file", a.SecretEnv("DSN"), a.DSNFile}} {
			if _, err := secret(f.env, f.file); err != nil {
				fail(fmt.Sprintf("action.%d.%s", i, f.key), "action %q: %v (run refuses to start)", a.Name, err)
			}
		}
	}
	if cfg.Web.Listen != "" {
		if _, err := readToken(cfg.Web.TokenFile); err != nil {
			fail("web.token_file", "%v (run refuses to start the dashboard)", err)
		}
	}
	if path := cfg.Geo.CountryDatabase; path != "" {
		if db, err := geo.Open(path, ""); err != nil {
			fail("geo.country_database", "%v (run would record no countries until the file is fixed)", err)
		} else {
			db.Close()
		}
	}
	if path := cfg.ASN.Database; path != "" {
		if db, err := geo.Open("", path); err != nil {
			fail("asn.database", "%v (run would leave the ASN scenario off)", err)
		} else {
			db.Close()
		}
	}
	own, err := hostAddrs()
	if err != nil {
		warn("", "cannot list this host's addresses, listen addresses not checked: %v", err)
	}
	for _, l := range []struct{ key, addr string }{
		{"syslog.udp", cfg.Syslog.UDP},
		{"syslog.tcp", cfg.Syslog.TCP},
		{"postfix_policy.listen", cfg.Postfix.Listen},
		{"dovecot_policy.listen", cfg.Dovecot.Listen},
		{"metrics.listen", cfg.Metrics.Listen},
		{"web.listen", cfg.Web.Listen},
	} {
		ap, err := netip.ParseAddrPort(l.addr)
		if err != nil {
			continue // "" (off) or a unix socket
		}
		a := ap.Addr().Unmap()
		if own != nil && !a.IsLoopback() && !a.IsUnspecified() && !own[a] {
			fail(l.key, "%s is not an address of this host: run cannot listen on it", a)
		}
		if l.key == "metrics.listen" && !a.IsLoopback() {
			warn(l.key, "%q serves the metrics beyond this host: they tell how it is attacked and defended (limit who reaches it in the firewall)", l.addr)
		}
		if strings.HasPrefix(l.key, "syslog.") && !a.IsLoopback() {
			warn(l.key, "%q listens beyond this host, and syslog has no authentication: whoever reaches it can send lines that get addresses banned (limit it in the firewall to the hosts that send logs)", l.addr)
		}
	}
	return ps
}

// checkSources warns about the log sources run would read nothing from.
func checkSources(cfg *config.Config, jails []string, haveJournal bool, warn func(key, format string, args ...any)) {
	for _, plan := range planSources(cfg, jails, haveJournal) {
		key := "jail." + plan.jails[0]
		switch {
		case plan.file != "":
			f, err := os.Open(plan.file)
			if err == nil {
				f.Close()
				continue
			}
			why := "cannot be read"
			if errors.Is(err, fs.ErrNotExist) {
				why = "does not exist (yet)"
			}
			warn(key+".files", "%s %s: run waits for it, and reads nothing from it meanwhile (jails %s)", plan.file, why, strings.Join(plan.jails, ", "))
		case plan.jrnl != nil && plan.jrnl.Directory != "":
			if _, err := os.Stat(plan.jrnl.Directory); err != nil {
				warn(key+".journal", "journal directory %s: %v: jail %s reads nothing from it", plan.jrnl.Directory, err, plan.jails[0])
			}
		case plan.jrnl != nil && !haveJournal:
			warn(key+".journal", "journald is not running here: jail %s reads nothing (give it files too)", plan.jails[0])
		}
	}
}

// hostAddrs returns the addresses of this host's interfaces.
func hostAddrs() (map[netip.Addr]bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	own := map[netip.Addr]bool{}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			own[p.Addr().Unmap()] = true
		}
	}
	return own, nil
}
