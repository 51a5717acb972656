// Package config reads Rampart's configuration file (TOML), fills in
// defaults and validates it strictly: unknown keys, bad values and missing
// files are errors that name the file, the line and the key.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Config is the whole configuration.
type Config struct {
	File       string           `toml:"-"` // where it was read; "" for the embedded defaults
	Daemon     Daemon           `toml:"daemon"`
	Firewall   Firewall         `toml:"firewall"`
	Allow      Allow            `toml:"allow"`
	Defaults   JailDefaults     `toml:"defaults"`
	Escalation Escalation       `toml:"escalation"`
	Recidive   Recidive         `toml:"recidive"`
	Syslog     Syslog           `toml:"syslog"`
	Spray      Spray            `toml:"spray"`
	Prefixes   Prefixes         `toml:"prefixes"`
	ASN        ASN              `toml:"asn"`
	Surge      Surge            `toml:"surge"`
	Slow       Slow             `toml:"slow"`
	KnownGood  KnownGood        `toml:"known_good"`
	Enumerate  Enumeration      `toml:"enumeration"`
	Postfix    PostfixPolicy    `toml:"postfix_policy"`
	Dovecot    DovecotPolicy    `toml:"dovecot_policy"`
	Jails      map[string]*Jail `toml:"jail"`

	lines map[string]int // dotted key → line, for errors found after decoding
}

// Daemon holds process-wide settings.
type Daemon struct {
	StateDir   string `toml:"state_dir"`   // the SQLite store lives here
	Socket     string `toml:"socket"`      // control socket for rampart status/ban/unban
	LogLevel   string `toml:"log_level"`   // debug, info, warn, error
	LogFormat  string `toml:"log_format"`  // text or json
	MaxTracked int    `toml:"max_tracked"` // cap on tracked addresses per table
}

// Firewall selects and configures the enforcer.
type Firewall struct {
	Backend      string `toml:"backend"` // auto, nftables, ipset, command, log
	Table        string `toml:"table"`   // nftables table (family inet) or ipset name prefix
	BanCommand   string `toml:"ban_command"`
	UnbanCommand string `toml:"unban_command"`
}

// Allow lists addresses never to ban.
type Allow struct {
	Entries      []string `toml:"entries"` // addresses, CIDR prefixes or DNS names
	ResolveEvery Duration `toml:"resolve_every"`
	// Loopback allows the whole loopback network (127.0.0.0/8, ::1), the
	// default. false leaves only the host's own addresses (127.0.0.1 and ::1
	// among them), so that tests can attack from 127.0.0.2 and the like.
	Loopback *bool `toml:"loopback"`
}

// JailDefaults apply to every jail that does not set its own.
type JailDefaults struct {
	MaxRetry int            `toml:"maxretry"`
	FindTime Duration       `toml:"findtime"`
	BanTime  Duration       `toml:"bantime"`
	Weights  map[string]int `toml:"weights"` // event kind → failures it counts for
}

// Spray bans addresses trying a user name that fails from many addresses.
type Spray struct {
	Enabled   *bool    `toml:"enabled"`
	Addresses int      `toml:"addresses"`
	Window    Duration `toml:"window"`
	BanTime   Duration `toml:"bantime"`
}

// Level is one prefix length to aggregate bad addresses at.
type Level struct {
	Bits      int `toml:"bits"`
	Addresses int `toml:"addresses"`
}

// Prefixes bans networks holding many bad addresses.
type Prefixes struct {
	Enabled         *bool    `toml:"enabled"`
	IPv4            []Level  `toml:"ipv4"`
	IPv6            []Level  `toml:"ipv6"`
	Window          Duration `toml:"window"`
	BanTime         Duration `toml:"bantime"`
	SuspectMaxRetry int      `toml:"suspect_maxretry"`
}

// ASN lowers thresholds inside autonomous systems with many bad addresses.
type ASN struct {
	Database  string   `toml:"database"` // MaxMind-format ASN database; "" disables
	Addresses int      `toml:"addresses"`
	Window    Duration `toml:"window"`
	MaxRetry  int      `toml:"maxretry"`
}

// Surge tightens thresholds while the failure rate jumps.
type Surge struct {
	Enabled  *bool    `toml:"enabled"`
	Factor   float64  `toml:"factor"`
	MinRate  int      `toml:"min_rate"`
	Hold     Duration `toml:"hold"`
	MaxRetry int      `toml:"maxretry"`
}

// Slow bans addresses failing slowly over a long window.
type Slow struct {
	Enabled  *bool    `toml:"enabled"`
	Failures int      `toml:"failures"`
	Window   Duration `toml:"window"`
	BanTime  Duration `toml:"bantime"`
}

// Enumeration flags clients probing for valid recipients; the Postfix
// policy server then gives them the same answer for every recipient.
type Enumeration struct {
	Enabled    *bool    `toml:"enabled"`
	Recipients int      `toml:"recipients"`
	Window     Duration `toml:"window"`
}

// KnownGood remembers addresses that logged in.
type KnownGood struct {
	TTL    Duration `toml:"ttl"`
	Grace  Duration `toml:"grace"`
	Factor int      `toml:"factor"`
}

// Tarpit delays suspicious clients of a live policy server: Base after the
// first recent failure, doubling with each further one, at most Max.
type Tarpit struct {
	Base Duration `toml:"tarpit"`
	Max  Duration `toml:"tarpit_max"`
}

// PostfixPolicy is the Postfix policy delegation server
// (check_policy_service).
type PostfixPolicy struct {
	Listen string `toml:"listen"` // "127.0.0.1:10023" or "unix:/run/rampart/postfix-policy.sock"; "" disables
	Jail   string `toml:"jail"`   // the jail its events count in; default "postfix"
	Tarpit
	FailClosed bool `toml:"fail_closed"` // answer DEFER instead of DUNNO when the engine cannot
	MaxConns   int  `toml:"max_conns"`
}

// DovecotPolicy is the Dovecot authentication policy server
// (auth_policy_server_url).
type DovecotPolicy struct {
	Listen string `toml:"listen"` // "127.0.0.1:10024"; "" disables
	Jail   string `toml:"jail"`   // default "dovecot"
	// AuthFile holds the Authorization header value Dovecot sends
	// (auth_policy_server_api_header), e.g. "Basic cmFtcGFydDpzZWNyZXQ=";
	// the environment variable RAMPART_DOVECOT_AUTH may give it instead.
	AuthFile string `toml:"auth_file"`
	Tarpit
	// AuthFailureDelay is Dovecot's own auth_failure_delay (default 2s):
	// an SMTP AUTH login must be answered within Postfix's 10 seconds,
	// Dovecot's delays included.
	AuthFailureDelay Duration `toml:"auth_failure_delay"`
}

// On reports whether an optional section is enabled (the default).
func On(b *bool) bool { return b == nil || *b }

// Escalation lengthens repeat bans.
type Escalation struct {
	Factor float64  `toml:"factor"`
	Max    Duration `toml:"max"`
	Window Duration `toml:"window"`
}

// Recidive bans long-term repeat offenders.
type Recidive struct {
	Bans    int      `toml:"bans"`
	Window  Duration `toml:"window"`
	BanTime Duration `toml:"bantime"`
}

// Syslog configures the syslog listener that jails with syslog = true read.
type Syslog struct {
	UDP string `toml:"udp"` // listen address, e.g. "127.0.0.1:514"; "" disables
	TCP string `toml:"tcp"`
}

// Jail ties filters to log sources and thresholds.
type Jail struct {
	Name     string         `toml:"-"`
	Enabled  *bool          `toml:"enabled"`
	Filter   string         `toml:"filter"` // a built-in filter name or alias
	Mode     string         `toml:"mode"`
	Files    []string       `toml:"files"`
	Journal  *Journal       `toml:"journal"`
	Syslog   bool           `toml:"syslog"`
	MaxRetry int            `toml:"maxretry"`
	FindTime Duration       `toml:"findtime"`
	BanTime  Duration       `toml:"bantime"`
	Weights  map[string]int `toml:"weights"` // event kind → failures it counts for
}

// Journal selects journald records.
type Journal struct {
	Units       []string `toml:"units"`
	Identifiers []string `toml:"identifiers"`
}

// On reports whether the jail is enabled (the default).
func (j *Jail) On() bool { return j.Enabled == nil || *j.Enabled }

// Duration is a time.Duration written as "90s", "10m", "1h30m", "7d", "2w",
// or a number of seconds.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalText parses a duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration in its shortest common form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ParseDuration parses Go durations plus the d (day) and w (week) units and bare seconds.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("negative duration %q", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f < 0 {
				return 0, fmt.Errorf("bad duration %q (want e.g. 90s, 10m, 1h, 7d)", s)
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q (want e.g. 90s, 10m, 1h, 7d)", s)
	}
	return d, nil
}

//go:embed default.toml
var defaultTOML []byte

// Default returns the embedded default configuration.
func Default() *Config {
	c, err := parse("(embedded defaults)", defaultTOML)
	if err != nil {
		panic("embedded default config: " + err.Error())
	}
	c.File = ""
	return c
}

// DefaultTOML returns the text of the embedded defaults, for
// `rampart check-config --print-defaults`.
func DefaultTOML() []byte { return slices.Clone(defaultTOML) }

// Load reads, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, data)
}

// Parse reads a configuration from data; file names it in errors.
func Parse(file string, data []byte) (*Config, error) { return parse(file, data) }

func parse(file string, data []byte) (*Config, error) {
	c := &Config{File: file}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, decodeError(file, err)
	}
	c.lines = keyLines(data)
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// knownKeys lists the keys each table accepts, for "did you mean" hints.
var knownKeys = map[string][]string{
	"":               {"daemon", "firewall", "allow", "defaults", "escalation", "recidive", "syslog", "spray", "prefixes", "asn", "surge", "slow", "known_good", "enumeration", "postfix_policy", "dovecot_policy", "jail"},
	"spray":          {"enabled", "addresses", "window", "bantime"},
	"prefixes":       {"enabled", "ipv4", "ipv6", "window", "bantime", "suspect_maxretry"},
	"asn":            {"database", "addresses", "window", "maxretry"},
	"surge":          {"enabled", "factor", "min_rate", "hold", "maxretry"},
	"slow":           {"enabled", "failures", "window", "bantime"},
	"known_good":     {"ttl", "grace", "factor"},
	"postfix_policy": {"listen", "jail", "tarpit", "tarpit_max", "fail_closed", "max_conns"},
	"dovecot_policy": {"listen", "jail", "auth_file", "tarpit", "tarpit_max", "auth_failure_delay"},
	"daemon":         {"state_dir", "socket", "log_level", "log_format", "max_tracked"},
	"firewall":       {"backend", "table", "ban_command", "unban_command"},
	"allow":          {"entries", "resolve_every", "loopback"},
	"defaults":       {"maxretry", "findtime", "bantime", "weights"},
	"escalation":     {"factor", "max", "window"},
	"recidive":       {"bans", "window", "bantime"},
	"syslog":         {"udp", "tcp"},
	"jail.*":         {"enabled", "filter", "mode", "files", "journal", "syslog", "maxretry", "findtime", "bantime", "weights"},
	"journal":        {"units", "identifiers"},
}

func decodeError(file string, err error) error {
	var de *toml.DecodeError
	var se *toml.StrictMissingError
	switch {
	case errors.As(err, &se) && len(se.Errors) > 0:
		de = &se.Errors[0]
	case errors.As(err, &de):
	default:
		return fmt.Errorf("%s: %w", file, err)
	}
	row, _ := de.Position()
	key := de.Key()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	where := ""
	if len(key) >= 2 && key[0] == "jail" {
		where = fmt.Sprintf("jail %q: ", key[1])
	}
	if se != nil && len(key) > 0 {
		last := key[len(key)-1]
		msg = fmt.Sprintf("unknown key %q", last)
		if s := Closest(last, knownKeys[tableOf(key)]); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return fmt.Errorf("%s:%d: %s%s", file, row, where, msg)
	}
	if len(key) > 0 {
		return fmt.Errorf("%s:%d: %skey %q: %s", file, row, where, strings.Join(key, "."), msg)
	}
	return fmt.Errorf("%s:%d: %s", file, row, msg)
}

func tableOf(key []string) string {
	switch {
	case len(key) <= 1:
		return ""
	case key[0] == "jail" && len(key) == 3:
		return "jail.*"
	case key[0] == "jail" && len(key) == 4 && key[2] == "journal":
		return "journal"
	}
	return key[0]
}

// Closest returns the candidate nearest to a mistyped s (by edit distance,
// within about a third of its length), or "" when none is close: the
// "did you mean" of configuration and command-line errors.
func Closest(s string, cands []string) string {
	best, bestD := "", max(2, len(s)/3)+1
	for _, c := range cands {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (c *Config) applyDefaults() {
	d := &c.Daemon
	if d.StateDir == "" {
		d.StateDir = "/var/lib/rampart"
	}
	if d.Socket == "" {
		d.Socket = "/run/rampart/rampart.sock"
	}
	if d.LogLevel == "" {
		d.LogLevel = "info"
	}
	if d.LogFormat == "" {
		d.LogFormat = "text"
	}
	if d.MaxTracked == 0 {
		d.MaxTracked = 1_000_000
	}
	if c.Firewall.Backend == "" {
		c.Firewall.Backend = "auto"
	}
	if c.Firewall.Table == "" {
		c.Firewall.Table = "rampart"
	}
	if c.Allow.ResolveEvery == 0 {
		c.Allow.ResolveEvery = Duration(5 * time.Minute)
	}
	if c.Defaults.MaxRetry == 0 {
		c.Defaults.MaxRetry = 5
	}
	if c.Defaults.FindTime == 0 {
		c.Defaults.FindTime = Duration(10 * time.Minute)
	}
	if c.Defaults.BanTime == 0 {
		c.Defaults.BanTime = Duration(10 * time.Minute)
	}
	if c.Escalation.Factor == 0 {
		c.Escalation.Factor = 2
	}
	if c.Escalation.Max == 0 {
		c.Escalation.Max = Duration(7 * 24 * time.Hour)
	}
	if c.Escalation.Window == 0 {
		c.Escalation.Window = Duration(30 * 24 * time.Hour)
	}
	if c.Recidive.Bans == 0 {
		c.Recidive.Bans = 5
	}
	if c.Recidive.Window == 0 {
		c.Recidive.Window = Duration(24 * time.Hour)
	}
	if c.Recidive.BanTime == 0 {
		c.Recidive.BanTime = Duration(7 * 24 * time.Hour)
	}
	defaultsInt(&c.Spray.Addresses, 5)
	defaultsDur(&c.Spray.Window, time.Hour)
	defaultsDur(&c.Spray.BanTime, 12*time.Hour)
	if c.Prefixes.IPv4 == nil {
		c.Prefixes.IPv4 = []Level{{Bits: 24, Addresses: 3}}
	}
	if c.Prefixes.IPv6 == nil {
		c.Prefixes.IPv6 = []Level{{Bits: 64, Addresses: 3}}
	}
	defaultsDur(&c.Prefixes.Window, 6*time.Hour)
	defaultsDur(&c.Prefixes.BanTime, time.Hour)
	defaultsInt(&c.Prefixes.SuspectMaxRetry, 1)
	defaultsInt(&c.ASN.Addresses, 10)
	defaultsDur(&c.ASN.Window, time.Hour)
	defaultsInt(&c.ASN.MaxRetry, 2)
	if c.Surge.Factor == 0 {
		c.Surge.Factor = 5
	}
	defaultsInt(&c.Surge.MinRate, 30)
	defaultsDur(&c.Surge.Hold, 10*time.Minute)
	defaultsInt(&c.Surge.MaxRetry, 2)
	defaultsInt(&c.Slow.Failures, 8)
	defaultsDur(&c.Slow.Window, 12*time.Hour)
	defaultsDur(&c.Slow.BanTime, 24*time.Hour)
	defaultsDur(&c.KnownGood.TTL, 90*24*time.Hour)
	defaultsDur(&c.KnownGood.Grace, 90*time.Second)
	defaultsInt(&c.KnownGood.Factor, 3)
	defaultsInt(&c.Enumerate.Recipients, 3)
	defaultsDur(&c.Enumerate.Window, time.Hour)
	for _, tp := range []*Tarpit{&c.Postfix.Tarpit, &c.Dovecot.Tarpit} {
		defaultsDur(&tp.Base, time.Second)
		defaultsDur(&tp.Max, 20*time.Second)
	}
	if c.Postfix.Jail == "" {
		c.Postfix.Jail = "postfix"
	}
	if c.Dovecot.Jail == "" {
		c.Dovecot.Jail = "dovecot"
	}
	defaultsInt(&c.Postfix.MaxConns, 20_000)
	defaultsDur(&c.Dovecot.AuthFailureDelay, 2*time.Second)
	for name, j := range c.Jails {
		j.Name = name
		if j.Filter == "" {
			j.Filter = name
		}
		if j.MaxRetry == 0 {
			j.MaxRetry = c.Defaults.MaxRetry
		}
		if j.FindTime == 0 {
			j.FindTime = c.Defaults.FindTime
		}
		if j.BanTime == 0 {
			j.BanTime = c.Defaults.BanTime
		}
	}
}

func defaultsInt(v *int, d int) {
	if *v == 0 {
		*v = d
	}
}

func defaultsDur(v *Duration, d time.Duration) {
	if *v == 0 {
		*v = Duration(d)
	}
}

// errorf formats an error at the line of the dotted key (or its nearest
// known parent).
func (c *Config) errorf(key, format string, args ...any) error {
	line := 0
	for k := key; k != ""; {
		if l, ok := c.lines[k]; ok {
			line = l
			break
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	file := c.File
	if file == "" {
		file = "(embedded defaults)"
	}
	prefix := ""
	if parts := strings.SplitN(key, ".", 3); len(parts) >= 2 && parts[0] == "jail" {
		prefix = fmt.Sprintf("jail %q: ", parts[1])
	}
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		return fmt.Errorf("%s:%d: %s%s", file, line, prefix, msg)
	}
	return fmt.Errorf("%s: %s%s", file, prefix, msg)
}

// FilterCheck reports whether a filter name (or alias) and mode exist; the
// daemon passes the filter registry's lookup so config stays independent of it.
type FilterCheck func(name, mode string) error

func (c *Config) validate() error {
	switch c.Daemon.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return c.errorf("daemon.log_level", "key \"log_level\": %q is not one of debug, info, warn, error", c.Daemon.LogLevel)
	}
	switch c.Daemon.LogFormat {
	case "text", "json":
	default:
		return c.errorf("daemon.log_format", "key \"log_format\": %q is not one of text, json", c.Daemon.LogFormat)
	}
	if c.Daemon.MaxTracked < 1000 {
		return c.errorf("daemon.max_tracked", "key \"max_tracked\": %d is below the minimum of 1000", c.Daemon.MaxTracked)
	}
	switch c.Firewall.Backend {
	case "auto", "nftables", "ipset", "log":
	case "command":
		if c.Firewall.BanCommand == "" {
			return c.errorf("firewall.backend", "backend \"command\" needs ban_command (and usually unban_command)")
		}
	default:
		return c.errorf("firewall.backend", "key \"backend\": %q is not one of auto, nftables, ipset, command, log", c.Firewall.Backend)
	}
	if !validName(c.Firewall.Table) {
		return c.errorf("firewall.table", "key \"table\": %q must be letters, digits, '-' or '_'", c.Firewall.Table)
	}
	for i, e := range c.Allow.Entries {
		if err := checkAllowEntry(e); err != nil {
			return c.errorf("allow.entries", "entry %d: %v", i+1, err)
		}
	}
	if c.Escalation.Factor < 1 {
		return c.errorf("escalation.factor", "key \"factor\": %v is below 1", c.Escalation.Factor)
	}
	for _, a := range []struct{ key, addr string }{{"syslog.udp", c.Syslog.UDP}, {"syslog.tcp", c.Syslog.TCP}} {
		if a.addr == "" {
			continue
		}
		if _, err := netip.ParseAddrPort(a.addr); err != nil {
			return c.errorf(a.key, "key %q: %q is not an address:port", a.key[len("syslog."):], a.addr)
		}
	}
	for i, lv := range c.Prefixes.IPv4 {
		if lv.Bits < 8 || lv.Bits > 31 || lv.Addresses < 1 {
			return c.errorf("prefixes.ipv4", "level %d: bits must be 8..31 and addresses at least 1", i+1)
		}
	}
	for i, lv := range c.Prefixes.IPv6 {
		if lv.Bits < 16 || lv.Bits > 127 || lv.Addresses < 1 {
			return c.errorf("prefixes.ipv6", "level %d: bits must be 16..127 and addresses at least 1", i+1)
		}
	}
	if c.Slow.Failures > 8 {
		return c.errorf("slow.failures", "key \"failures\": %d is above the maximum of 8", c.Slow.Failures)
	}
	if c.Surge.Factor < 1 {
		return c.errorf("surge.factor", "key \"factor\": %v is below 1", c.Surge.Factor)
	}
	if c.ASN.Database != "" && !strings.HasPrefix(c.ASN.Database, "/") {
		return c.errorf("asn.database", "key \"database\": %q is not an absolute path", c.ASN.Database)
	}
	if err := c.checkPolicies(); err != nil {
		return err
	}
	if err := c.checkWeights("defaults.weights", c.Defaults.Weights); err != nil {
		return err
	}
	for _, name := range c.JailNames() {
		j := c.Jails[name]
		key := "jail." + name
		if err := c.checkWeights(key+".weights", j.Weights); err != nil {
			return err
		}
		if !validName(name) {
			return c.errorf(key, "jail name must be letters, digits, '-' or '_'")
		}
		if j.MaxRetry < 1 {
			return c.errorf(key+".maxretry", "key \"maxretry\": %d is below 1", j.MaxRetry)
		}
		if !j.On() {
			continue
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
	}
	return nil
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
			return c.errorf("postfix_policy.tarpit_max", "key \"tarpit_max\": %s is too close to Postfix's 100s policy timeout (at most 90s)", c.Postfix.Max.D())
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

func (c *Config) policyJail(section, name string) error {
	if j, ok := c.Jails[name]; !ok || !j.On() {
		return c.errorf(section+".jail", "jail %q, where its events count, is not an enabled jail", name)
	}
	return nil
}

// kindNames are the event kinds weights may name (see package event).
var kindNames = []string{"auth-failure", "unknown-user", "recipient-unknown", "protocol-abuse", "probe", "rejected"}

func (c *Config) checkWeights(key string, w map[string]int) error {
	for k, v := range w {
		if !slices.Contains(kindNames, k) {
			msg := fmt.Sprintf("unknown event kind %q (want one of %s)", k, strings.Join(kindNames, ", "))
			return c.errorf(key+"."+k, "%s", msg)
		}
		if v < 0 || v > 100 {
			return c.errorf(key+"."+k, "weight %d is outside 0..100", v)
		}
	}
	return nil
}

// CheckFilters validates every enabled jail's filter and mode with check.
func (c *Config) CheckFilters(check FilterCheck) error {
	for _, name := range c.JailNames() {
		j := c.Jails[name]
		if !j.On() {
			continue
		}
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

// JailNames returns the jail names, sorted.
func (c *Config) JailNames() []string {
	names := make([]string, 0, len(c.Jails))
	for n := range c.Jails {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
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
