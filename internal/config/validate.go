package config

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// FilterCheck reports whether a filter name (or alias) and mode exist; the
// daemon passes the filter registry's lookup so config stays independent of it.
type FilterCheck func(name, mode string) error

// validate checks what decoding cannot: ranges, names, addresses, and
// that the parts refer to each other consistently. The first problem found
// is returned, at its file:line.
func (c *Config) validate() error {
	if err := c.checkRanges(reflect.ValueOf(c).Elem(), ""); err != nil {
		return err
	}
	if err := oneOf(c, "daemon.log_level", c.Daemon.LogLevel, "debug", "info", "warn", "error"); err != nil {
		return err
	}
	if err := oneOf(c, "daemon.log_format", c.Daemon.LogFormat, "text", "json"); err != nil {
		return err
	}
	if err := oneOf(c, "firewall.backend", c.Firewall.Backend, "auto", "nftables", "ipset", "command", "log"); err != nil {
		return err
	}
	if c.Firewall.Backend == "command" && c.Firewall.BanCommand == "" {
		return c.errorf("firewall.backend", "backend \"command\" needs ban_command (and usually unban_command)")
	}
	if !validName(c.Firewall.Table) {
		return c.errorf("firewall.table", "key \"table\": %q must be letters, digits, '-' or '_'", c.Firewall.Table)
	}
	for i, e := range c.Allow.Entries {
		if err := checkAllowEntry(e); err != nil {
			return c.errorf("allow.entries", "entry %d: %v", i+1, err)
		}
	}
	if err := c.checkAddrPorts(keyValue{"syslog.udp", c.Syslog.UDP}, keyValue{"syslog.tcp", c.Syslog.TCP}); err != nil {
		return err
	}
	for i, lv := range c.Prefixes.IPv4 {
		if lv.Bits < 8 || lv.Bits > 31 || lv.Addresses < 1 || lv.Addresses > 8 {
			return c.errorf("prefixes.ipv4", "level %d: bits must be 8..31 and addresses 1..8", i+1)
		}
	}
	for i, lv := range c.Prefixes.IPv6 {
		if lv.Bits < 16 || lv.Bits > 127 || lv.Addresses < 1 || lv.Addresses > 8 {
			return c.errorf("prefixes.ipv6", "level %d: bits must be 16..127 and addresses 1..8", i+1)
		}
	}
	for _, w := range []struct {
		key      string
		w        Widen
		levels   []Level
		min, max int
	}{{"prefixes.widen_ipv4", c.Prefixes.WidenIPv4, c.Prefixes.IPv4, 8, 31}, {"prefixes.widen_ipv6", c.Prefixes.WidenIPv6, c.Prefixes.IPv6, 16, 127}} {
		if w.w.Bits == 0 {
			continue
		}
		narrowest := w.max + 1
		for _, lv := range w.levels {
			narrowest = min(narrowest, lv.Bits)
		}
		if w.w.Bits < w.min || w.w.Bits >= narrowest {
			return c.errorf(w.key, "bits must be %d or more and below the narrowest level (/%d); bits = 0 turns widening off", w.min, narrowest)
		}
	}
	if err := c.checkWeb(); err != nil {
		return err
	}
	if err := c.checkFleet(); err != nil {
		return err
	}
	if err := c.checkAddrPorts(keyValue{"metrics.listen", c.Metrics.Listen}); err != nil {
		return err
	}
	if err := c.checkAbsPaths(keyValue{"geo.country_database", c.Geo.CountryDatabase}); err != nil {
		return err
	}
	for _, w := range []struct {
		key string
		d   Duration
	}{{"escalation.window", c.Escalation.Window}, {"recidive.window", c.Recidive.Window}} {
		if w.d > c.Daemon.HistoryRetention {
			return c.errorf("daemon.history_retention", "key \"history_retention\": %s is shorter than %s (%s): the bans it counts would be forgotten", c.Daemon.HistoryRetention, w.key, w.d)
		}
	}
	if c.Insight.Hourly > c.Insight.Retention {
		return c.errorf("insight.hourly", "key \"hourly\": %s is longer than the retention (%s)", c.Insight.Hourly, c.Insight.Retention)
	}
	if err := c.checkAbsPaths(keyValue{"asn.database", c.ASN.Database}); err != nil {
		return err
	}
	if err := c.checkPolicies(); err != nil {
		return err
	}
	if err := c.checkTrap(); err != nil {
		return err
	}
	if err := c.checkEvidence(); err != nil {
		return err
	}
	if err := c.checkShields(); err != nil {
		return err
	}
	if err := c.checkWeights("defaults.weights", c.Defaults.Weights); err != nil {
		return err
	}
	for _, name := range c.JailNames() {
		if err := c.checkJail(name, c.Jails[name]); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) checkJail(name string, j *Jail) error {
	key := "jail." + name
	if err := c.checkWeights(key+".weights", j.Weights); err != nil {
		return err
	}
	if !validName(name) {
		return c.errorf(key, "jail name must be letters, digits, '-' or '_'")
	}
	if !j.Enabled {
		return nil
	}
	if err := c.checkPorts(key, j); err != nil {
		return err
	}
	if len(j.Files) == 0 && j.Journal == nil && !j.Syslog {
		return c.errorf(key, "no log source: set files, journal or syslog = true")
	}
	if j.Syslog && c.Syslog.UDP == "" && c.Syslog.TCP == "" {
		return c.errorf(key+".syslog", "syslog = true but no [syslog] listener (udp or tcp) is configured")
	}
	for _, f := range j.Files {
		if !strings.HasPrefix(f, "/") {
			return c.errorf(key+".files", "key \"files\": %q is not an absolute path", f)
		}
	}
	if j.Journal != nil && j.Journal.Directory != "" && !strings.HasPrefix(j.Journal.Directory, "/") {
		return c.errorf(key+".journal", "key \"journal\": directory %q is not an absolute path", j.Journal.Directory)
	}
	if j.Journal != nil {
		if err := journalMatches(j.Journal.Matches); err != "" {
			return c.errorf(key+".journal", "key \"journal\": matches: %s", err)
		}
	}
	return nil
}

// journalMatches checks journalctl match expressions: FIELD=VALUE terms,
// FIELD in upper case letters, digits and "_" (so that no term reads as
// an option), with single "+" between alternatives; it says what is
// wrong, or "".
func journalMatches(ms []string) string {
	for i, m := range ms {
		if m == "+" {
			if i == 0 || i == len(ms)-1 || ms[i-1] == "+" {
				return fmt.Sprintf("%q must stand between two terms", m)
			}
			continue
		}
		field, _, ok := strings.Cut(m, "=")
		if !ok || field == "" || strings.TrimLeft(field, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" || field[0] >= '0' && field[0] <= '9' {
			return fmt.Sprintf("%q is not FIELD=VALUE (FIELD in upper case, as _SYSTEMD_UNIT=ssh.service) or \"+\"", m)
		}
	}
	return ""
}

func oneOf(c *Config, key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return c.errorf(key, "key %q: %q is not one of %s", lastKey(key), v, strings.Join(allowed, ", "))
}

// checkRanges checks every key with a range tag in the table v (at the
// dotted prefix), its sub-tables and every jail.
func (c *Config) checkRanges(v reflect.Value, prefix string) error {
	for _, f := range fields(v.Type()) {
		fv := v.FieldByIndex(f.index)
		key := prefix + f.key
		switch {
		case f.rng != "":
			if err := c.checkRange(key, fv, f.rng); err != nil {
				return err
			}
		case fv.Kind() == reflect.Struct:
			if err := c.checkRanges(fv, key+"."); err != nil {
				return err
			}
		case fv.Kind() == reflect.Map && fv.Type().Elem() == reflect.TypeFor[*Jail]():
			for _, name := range c.JailNames() {
				if err := c.checkRanges(reflect.ValueOf(c.Jails[name]).Elem(), key+"."+name+"."); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkRange checks one value against its range tag: "lo..hi", with
// ",permanent" when -1 is allowed too.
func (c *Config) checkRange(key string, v reflect.Value, tag string) error {
	spec, permanent := strings.CutSuffix(tag, ",permanent")
	lo, hi, _ := strings.Cut(spec, "..")
	want := lo + " to " + hi
	in := true
	var shown string
	switch x := v.Interface().(type) {
	case Duration:
		if x.Permanent() {
			if permanent {
				return nil
			}
			return c.errorf(key, "%s: -1 (permanent) is not allowed here; want %s", keyName(key), want)
		}
		l, _ := ParseDuration(lo)
		h, _ := ParseDuration(hi)
		in, shown = time.Duration(x) >= l && time.Duration(x) <= h, x.String()
	case int:
		l, _ := strconv.Atoi(lo)
		h, _ := strconv.Atoi(hi)
		in, shown = x >= l && x <= h, strconv.Itoa(x)
	case float64:
		l, _ := strconv.ParseFloat(lo, 64)
		h, _ := strconv.ParseFloat(hi, 64)
		in, shown = x >= l && x <= h, strconv.FormatFloat(x, 'g', -1, 64)
	default:
		panic(fmt.Sprintf("config: range tag on %s, a %s", key, v.Type()))
	}
	if in {
		return nil
	}
	also := ""
	if permanent {
		also = ", or -1 for a permanent ban"
	}
	return c.errorf(key, "%s: %s is out of range (%s%s)", keyName(key), shown, want, also)
}

// keyName names a key in a message: `key "defaults.bantime"`, or within a
// jail (whose errors start with `jail "x": `) `key "bantime"`.
func keyName(key string) string {
	if rest, ok := strings.CutPrefix(key, "jail."); ok {
		if _, k, ok := strings.Cut(rest, "."); ok {
			return fmt.Sprintf("key %q", k)
		}
	}
	return fmt.Sprintf("key %q", key)
}

// checkPolicies validates the live policy servers: loopback or unix
// sockets only (the Postfix protocol has no authentication; Dovecot's may
// listen elsewhere with auth_file set), an enabled jail to count in, and
// delays that keep within Postfix's 100s policy timeout.
func (c *Config) checkPolicies() error {
	if l := c.Postfix.Listen; l != "" {
		if path, ok := strings.CutPrefix(l, "unix:"); ok {
			if !strings.HasPrefix(path, "/") {
				return c.errorf("postfix_policy.listen", "key \"listen\": %q: the socket path must be absolute", l)
			}
		} else if ap, err := netip.ParseAddrPort(l); err != nil || !ap.Addr().IsLoopback() {
			return c.errorf("postfix_policy.listen", "key \"listen\": %q must be a loopback address:port or unix:/path (the protocol has no authentication)", l)
		}
		if err := c.policyJail("postfix_policy", c.Postfix.Jail); err != nil {
			return err
		}
		if c.Postfix.Max.D() > 90*time.Second {
			return c.errorf("postfix_policy.tarpit_max", "key \"tarpit_max\": %s is too close to Postfix's 100s policy timeout (at most 90s)", c.Postfix.Max)
		}
	}
	if l := c.Dovecot.Listen; l != "" {
		ap, err := netip.ParseAddrPort(l)
		if err != nil {
			return c.errorf("dovecot_policy.listen", "key \"listen\": %q is not an address:port", l)
		}
		if !ap.Addr().IsLoopback() && c.Dovecot.AuthFile == "" {
			return c.errorf("dovecot_policy.listen", "key \"listen\": %q is not loopback: set auth_file so requests must authenticate", l)
		}
		if err := c.policyJail("dovecot_policy", c.Dovecot.Jail); err != nil {
			return err
		}
	}
	return nil
}

// checkShields validates the port groups: real ports, none in two groups;
// and the shield jails' names against the configured jails.
func (c *Config) checkShields() error {
	if !c.Shields.Enabled {
		return nil
	}
	owner := map[int]string{}
	for _, g := range c.Shields.ShieldGroups() {
		if !g.Enabled {
			continue
		}
		key := "shields." + g.Name + ".ports"
		if len(g.Ports) == 0 {
			return c.errorf(key, "key \"ports\": no ports (set enabled = false to turn the group off)")
		}
		for _, p := range g.Ports {
			if p < 1 || p > 65535 {
				return c.errorf(key, "key \"ports\": %d is not a port (1 to 65535)", p)
			}
			if o, ok := owner[p]; ok && o != g.Name {
				return c.errorf(key, "key \"ports\": port %d is in [shields.%s] too; a port belongs to one group", p, o)
			}
			owner[p] = g.Name
		}
	}
	for _, j := range []struct {
		name string
		on   bool
	}{{"flood", c.Shields.Flood.Enabled}, {"portscan", c.Shields.Portscan.Enabled}} {
		if _, clash := c.Jails[j.name]; clash && j.on {
			return c.errorf("jail."+j.name, "jail %q is the name of [shields.%s]'s jail; rename it or set shields.%s.enabled = false", j.name, j.name, j.name)
		}
	}
	return nil
}

func (c *Config) policyJail(section, name string) error {
	if j, ok := c.Jails[name]; !ok || !j.Enabled {
		return c.errorf(section+".jail", "jail %q, where its events count, is not an enabled jail", name)
	}
	return nil
}

// WeightKinds lists the event kinds a weight may name: those that count
// against an address (package event defines them).
func WeightKinds() []string {
	var names []string
	for _, k := range event.Kinds() {
		if k.Failure() {
			names = append(names, k.String())
		}
	}
	return names
}

func (c *Config) checkWeights(key string, w map[string]int) error {
	for k, v := range w {
		if kind, err := event.ParseKind(k); err != nil || !kind.Failure() {
			msg := fmt.Sprintf("unknown event kind %q", k)
			if s := Closest(k, WeightKinds()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return c.errorf(key+"."+k, "%s; want one of %s", msg, strings.Join(WeightKinds(), ", "))
		}
		if v < 0 || v > 100 {
			return c.errorf(key+"."+k, "weight %d is outside 0..100", v)
		}
	}
	return nil
}

// CheckFilters validates every enabled jail's filter and mode with check.
func (c *Config) CheckFilters(check FilterCheck) error {
	for _, name := range c.EnabledJails() {
		j := c.Jails[name]
		if err := check(j.Filter, j.Mode); err != nil {
			key := "jail." + name + ".filter"
			if j.Mode != "" {
				if _, ok := c.lines["jail."+name+".mode"]; ok {
					key = "jail." + name + ".mode"
				}
			}
			return c.errorf(key, "%v", err)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func checkAllowEntry(e string) error {
	if _, err := netip.ParseAddr(e); err == nil {
		return nil
	}
	if strings.Contains(e, "/") {
		if _, err := netip.ParsePrefix(e); err != nil {
			return fmt.Errorf("%q is not a valid CIDR prefix", e)
		}
		return nil
	}
	if len(e) == 0 || len(e) > 253 || strings.ContainsAny(e, " :/\\") || !strings.Contains(e, ".") && e != "localhost" {
		return fmt.Errorf("%q is neither an address, a prefix nor a DNS name", e)
	}
	return nil
}

// checkTrap checks the [trap] section.
func (c *Config) checkTrap() error {
	t := c.Trap
	for _, sc := range t.Scenarios {
		if !slicesContains(TrapScenarios, sc) {
			return c.errorf("trap.scenarios", "key \"scenarios\": %q is not a scenario that bans an address (%s)", sc, strings.Join(TrapScenarios, ", "))
		}
	}
	seenPort, seenListen := map[int]bool{}, map[string]bool{}
	for i, l := range t.Listeners {
		if l.Port < 1 || l.Port > 65535 {
			return c.errorf("trap.listeners", "listener %d: port %d is not 1 to 65535", i+1, l.Port)
		}
		if !slicesContains(TrapProtocols, l.Protocol) {
			return c.errorf("trap.listeners", "listener %d: protocol %q is not one of %s", i+1, l.Protocol, strings.Join(TrapProtocols, ", "))
		}
		host, port, err := splitListen(l.Listen)
		if err != nil {
			return c.errorf("trap.listeners", "listener %d: listen %q: %v", i+1, l.Listen, err)
		}
		_ = host
		if seenPort[l.Port] || seenListen[port] {
			return c.errorf("trap.listeners", "listener %d: port %d or listen %q used twice", i+1, l.Port, l.Listen)
		}
		seenPort[l.Port], seenListen[port] = true, true
	}
	if t.Enabled && len(t.Listeners) == 0 {
		return c.errorf("trap.enabled", "the trap is enabled but has no listeners")
	}
	if err := c.checkAbsPaths(keyValue{"trap.cert_file", t.CertFile}, keyValue{"trap.key_file", t.KeyFile},
		keyValue{"trap.passwords_file", t.PasswordsFile}, keyValue{"trap.postfix_config", t.PostfixConfig}); err != nil {
		return err
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return c.errorf("trap.cert_file", "cert_file and key_file go together")
	}
	return nil
}

// keyValue is a key's value and its dotted name ("trap.cert_file").
type keyValue struct{ key, v string }

// checkAbsPaths refuses the first value that is set but not an absolute
// path.
func (c *Config) checkAbsPaths(kvs ...keyValue) error {
	for _, kv := range kvs {
		if kv.v != "" && !strings.HasPrefix(kv.v, "/") {
			return c.errorf(kv.key, "key %q: %q is not an absolute path", lastKey(kv.key), kv.v)
		}
	}
	return nil
}

// checkAddrPorts refuses the first value that is set but not an
// address:port.
func (c *Config) checkAddrPorts(kvs ...keyValue) error {
	for _, kv := range kvs {
		if kv.v == "" {
			continue
		}
		if _, err := netip.ParseAddrPort(kv.v); err != nil {
			return c.errorf(kv.key, "key %q: %q is not an address:port", lastKey(kv.key), kv.v)
		}
	}
	return nil
}

// lastKey is a dotted key's name in its table: "cert_file" of
// "trap.cert_file".
func lastKey(key string) string { return key[strings.LastIndexByte(key, '.')+1:] }

func slicesContains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// splitListen checks a listen address: "host:port" or ":port", a port
// from 1 to 65535, a host that is an address.
func splitListen(s string) (host, port string, err error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", fmt.Errorf("not host:port")
	}
	host, port = strings.Trim(s[:i], "[]"), s[i+1:]
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("port %q is not 1 to 65535", port)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return "", "", fmt.Errorf("%q is not an address", host)
		}
	}
	return host, port, nil
}

// checkWeb checks the dashboard's listen address, and that one off
// loopback has a token: the dashboard can ban and unban.
func (c *Config) checkWeb() error {
	if err := c.checkAbsPaths(keyValue{"web.token_file", c.Web.TokenFile}); err != nil {
		return err
	}
	if c.Web.Listen == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(c.Web.Listen)
	if err != nil || port == "" {
		return c.errorf("web.listen", "key \"listen\": %q is not an address:port", c.Web.Listen)
	}
	loopback := host == "localhost"
	if !loopback {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return c.errorf("web.listen", "key \"listen\": %q is not an address:port (an IP address or localhost)", c.Web.Listen)
		}
		loopback = a.Unmap().IsLoopback()
	}
	if !loopback && c.Web.TokenFile == "" {
		return c.errorf("web.listen", "key \"listen\": %q is not a loopback address: set token_file too, so that only those with the token reach the dashboard", c.Web.Listen)
	}
	return nil
}
