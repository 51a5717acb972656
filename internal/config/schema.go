package config

import (
	"reflect"
	"sort"
	"strings"
)

// The schema: what a configuration file may say. The toml tags are the
// keys (the "did you mean" hints are derived from them, see keysAt); a
// range tag gives a number's or a duration's allowed values, checked for
// every key that has one (see checkRanges): "lo..hi", and for a ban time
// ",permanent" when -1 (a ban until revoked) is allowed. The default of
// every key is in default.toml, nowhere else.

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
	Filters    Filters          `toml:"filters"`
	Spray      Spray            `toml:"spray"`
	Prefixes   Prefixes         `toml:"prefixes"`
	ASN        ASN              `toml:"asn"`
	Surge      Surge            `toml:"surge"`
	Slow       Slow             `toml:"slow"`
	KnownGood  KnownGood        `toml:"known_good"`
	Relays     Relays           `toml:"relays"`
	Enumerate  Enumeration      `toml:"enumeration"`
	Postfix    PostfixPolicy    `toml:"postfix_policy"`
	Dovecot    DovecotPolicy    `toml:"dovecot_policy"`
	Metrics    Metrics          `toml:"metrics"`
	Web        Web              `toml:"web"`
	Geo        Geo              `toml:"geo"`
	Insight    Insight          `toml:"insight"`
	Trap       Trap             `toml:"trap"`
	Evidence   Evidence         `toml:"evidence"`  // reporting.go
	Reporting  Reporting        `toml:"reporting"` // reporting.go
	Actions    []Action         `toml:"action"`    // actions.go
	Shields    Shields          `toml:"shields"`
	Fleet      Fleet            `toml:"fleet"`
	API        API              `toml:"api"`
	Feed       Feed             `toml:"feed"`
	Jails      map[string]*Jail `toml:"jail"`

	lines map[string]int // dotted key → line in File, for errors found after decoding
}

// Daemon holds process-wide settings.
type Daemon struct {
	StateDir   string `toml:"state_dir"`                          // the SQLite store lives here
	Socket     string `toml:"socket"`                             // control socket for rampart status/ban/unban
	LogLevel   string `toml:"log_level"`                          // debug, info, warn, error
	LogFormat  string `toml:"log_format"`                         // text or json
	MaxTracked int    `toml:"max_tracked" range:"1000..50000000"` // cap on tracked addresses per table
	// HistoryRetention is how long the store keeps a decision's history
	// entry; an active decision's stays while it is in force.
	HistoryRetention Duration `toml:"history_retention" range:"1d..3650d"`
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
	ResolveEvery Duration `toml:"resolve_every" range:"10s..1d"`
	// Loopback allows the whole loopback network (127.0.0.0/8, ::1), the
	// default. false leaves only the host's own addresses (127.0.0.1 and ::1
	// among them), so that tests can attack from 127.0.0.2 and the like.
	Loopback bool `toml:"loopback"`
}

// JailDefaults apply to every jail that does not set its own.
type JailDefaults struct {
	MaxRetry int            `toml:"maxretry" range:"1..1000"`
	FindTime Duration       `toml:"findtime" range:"1s..30d"`
	BanTime  Duration       `toml:"bantime" range:"1s..365d,permanent"`
	Weights  map[string]int `toml:"weights"` // event kind → failures it counts for
}

// Spray bans addresses trying a user name that fails from many addresses.
type Spray struct {
	Enabled   bool     `toml:"enabled"`
	Addresses int      `toml:"addresses" range:"2..8"` // the engine tells at most 8 addresses apart per name
	Window    Duration `toml:"window" range:"1m..30d"`
	BanTime   Duration `toml:"bantime" range:"1m..365d"`
}

// Level is one prefix length to aggregate bad addresses at.
type Level struct {
	Bits      int `toml:"bits"`
	Addresses int `toml:"addresses"`
}

// Prefixes bans networks holding many bad addresses.
type Prefixes struct {
	Enabled         bool     `toml:"enabled"`
	IPv4            []Level  `toml:"ipv4"`
	IPv6            []Level  `toml:"ipv6"`
	Window          Duration `toml:"window" range:"1m..30d"`
	BanTime         Duration `toml:"bantime" range:"1m..365d"`
	SuspectMaxRetry int      `toml:"suspect_maxretry" range:"1..100"`
	WidenIPv4       Widen    `toml:"widen_ipv4"`
	WidenIPv6       Widen    `toml:"widen_ipv6"`
}

// Widen bans a wider prefix holding several banned ones.
type Widen struct {
	Bits     int      `toml:"bits"`                  // 0 disables; checked against the levels in validate
	Prefixes int      `toml:"prefixes" range:"1..8"` // banned prefixes inside it within the window
	BanTime  Duration `toml:"bantime" range:"1m..365d"`
}

// Relays remembers addresses that delivered mail the server accepted.
type Relays struct {
	Enabled bool     `toml:"enabled"`
	TTL     Duration `toml:"ttl" range:"1h..365d"`
	Factor  int      `toml:"factor" range:"1..100"`
}

// ASN lowers thresholds inside autonomous systems with many bad addresses.
type ASN struct {
	Database  string   `toml:"database"` // MaxMind-format ASN database; "" disables
	Addresses int      `toml:"addresses" range:"1..8"`
	Window    Duration `toml:"window" range:"1m..30d"`
	MaxRetry  int      `toml:"maxretry" range:"1..100"`
}

// Surge tightens thresholds while the failure rate jumps.
type Surge struct {
	Enabled  bool     `toml:"enabled"`
	Factor   float64  `toml:"factor" range:"1..1000"`
	MinRate  int      `toml:"min_rate" range:"1..1000000"`
	Hold     Duration `toml:"hold" range:"1m..1d"`
	MaxRetry int      `toml:"maxretry" range:"1..100"`
}

// Slow bans addresses failing slowly over a long window.
type Slow struct {
	Enabled  bool     `toml:"enabled"`
	Failures int      `toml:"failures" range:"2..8"` // a tracked address keeps its last 8 failure times
	Window   Duration `toml:"window" range:"1m..30d"`
	BanTime  Duration `toml:"bantime" range:"1m..365d"`
}

// Enumeration flags clients probing for valid recipients; the Postfix
// policy server then gives them the same answer for every recipient.
type Enumeration struct {
	Enabled    bool     `toml:"enabled"`
	Recipients int      `toml:"recipients" range:"1..8"`
	Window     Duration `toml:"window" range:"1m..30d"`
}

// KnownGood remembers addresses that logged in.
type KnownGood struct {
	TTL    Duration `toml:"ttl" range:"1h..365d"`
	Grace  Duration `toml:"grace" range:"0s..1h"`
	Factor int      `toml:"factor" range:"1..100"`
}

// Tarpit delays suspicious clients of a live policy server: Base after the
// first recent failure, doubling with each further one, at most Max. A
// Base of 0 turns the tarpit off.
type Tarpit struct {
	Base Duration `toml:"tarpit" range:"0s..5m"`
	Max  Duration `toml:"tarpit_max" range:"0s..5m"`
}

// PostfixPolicy is the Postfix policy delegation server
// (check_policy_service).
type PostfixPolicy struct {
	Listen string `toml:"listen"` // "127.0.0.1:10023" or "unix:/run/rampart/postfix-policy.sock"; "" disables
	Jail   string `toml:"jail"`   // the jail its events count in
	Tarpit
	FailClosed bool `toml:"fail_closed"` // answer DEFER instead of DUNNO when the engine cannot
	MaxConns   int  `toml:"max_conns" range:"1..1000000"`
}

// DovecotPolicy is the Dovecot authentication policy server
// (auth_policy_server_url).
type DovecotPolicy struct {
	Listen string `toml:"listen"` // "127.0.0.1:10024"; "" disables
	Jail   string `toml:"jail"`
	// AuthFile holds the Authorization header value Dovecot sends
	// (auth_policy_server_api_header), e.g. "Basic cmFtcGFydDpzZWNyZXQ=";
	// the environment variable RAMPART_DOVECOT_AUTH may give it instead.
	AuthFile string `toml:"auth_file"`
	Tarpit
	// AuthFailureDelay is Dovecot's own auth_failure_delay (default 2s):
	// an SMTP AUTH login must be answered within Postfix's 10 seconds,
	// Dovecot's delays included.
	AuthFailureDelay Duration `toml:"auth_failure_delay" range:"1s..10s"`
}

// Shields are the kernel-side limits on the protected ports (nftables
// backend only), and the engine jails their drops and the port scans they
// see count in.
type Shields struct {
	Enabled    bool        `toml:"enabled"`
	LogGroup   int         `toml:"log_group" range:"1..65535"`        // NFLOG group drops and probes reach the daemon through
	MaxSources int         `toml:"max_sources" range:"1024..4194304"` // entries per per-source table
	SSH        ShieldGroup `toml:"ssh"`
	Submission ShieldGroup `toml:"submission"`
	SMTP       ShieldGroup `toml:"smtp"`
	IMAP       ShieldGroup `toml:"imap"`
	Web        ShieldGroup `toml:"web"`
	Flood      ShieldJail  `toml:"flood"`    // clients the shields drop
	Portscan   ShieldJail  `toml:"portscan"` // clients probing closed ports
}

// ShieldGroup is one group of protected ports and its limits; a limit of 0
// is off.
type ShieldGroup struct {
	Enabled  bool  `toml:"enabled"`
	Ports    []int `toml:"ports"`
	Rate     int   `toml:"rate" range:"0..100000"` // new connections per second per source
	Burst    int   `toml:"burst" range:"1..1000000"`
	Conns    int   `toml:"conns" range:"0..1000000"`     // connections held per source
	NetConns int   `toml:"net_conns" range:"0..1000000"` // connections held per /24 (/64)
	SYNRate  int   `toml:"syn_rate" range:"0..1000000"`  // new connections per second from everyone else
	SYNBurst int   `toml:"syn_burst" range:"1..1000000"`
}

// ShieldJail is the engine jail one kind of shield event counts in: its
// name is its key in [shields] ("flood", "portscan").
type ShieldJail struct {
	Enabled  bool     `toml:"enabled"`
	MaxRetry int      `toml:"maxretry" range:"1..8"` // the engine keeps an address's last 8 failure times
	FindTime Duration `toml:"findtime" range:"1s..30d"`
	BanTime  Duration `toml:"bantime" range:"1s..365d,permanent"`
}

// ShieldGroups returns the port groups by name, in a fixed order.
func (s *Shields) ShieldGroups() []NamedShieldGroup {
	return []NamedShieldGroup{{"ssh", s.SSH}, {"submission", s.Submission}, {"smtp", s.SMTP}, {"imap", s.IMAP}, {"web", s.Web}}
}

// NamedShieldGroup is a port group with its name.
type NamedShieldGroup struct {
	Name string
	ShieldGroup
}

// Metrics is the optional TCP listener for Prometheus (the control socket
// always serves /metrics).
type Metrics struct {
	Listen string `toml:"listen"` // "127.0.0.1:9842"; "" disables
}

// Web is the dashboard.
type Web struct {
	Listen    string `toml:"listen"`     // "127.0.0.1:9843"; "" disables
	TokenFile string `toml:"token_file"` // required off loopback: the token every request must carry
}

// Geo locates attackers for reports and the dashboard: the country from
// this database, the autonomous system from [asn] database.
type Geo struct {
	CountryDatabase string `toml:"country_database"` // MaxMind-format Country or City database; "" disables
}

// Insight bounds the hourly aggregates reports are made from.
type Insight struct {
	Retention Duration `toml:"retention" range:"1d..3650d"` // aggregates older than this are deleted
	Hourly    Duration `toml:"hourly" range:"1d..365d"`     // kept per hour this long, then per day
	MaxKeys   int      `toml:"max_keys" range:"10..100000"` // keys per hour, jail and dimension; the smallest are folded
}

// Trap is the mail honeypot (docs/trap.md): addresses that the chosen
// jails' scenarios would ban on the mail ports are redirected to decoy
// SMTP and IMAP servers instead, which let them "log in" to trap accounts
// and keep what they send, delivering nothing.
type Trap struct {
	Enabled    bool     `toml:"enabled"`
	Jails      []string `toml:"jails"`     // whose address decisions trap instead of ban
	Scenarios  []string `toml:"scenarios"` // which scenarios trap; the others ban
	Hostname   string   `toml:"hostname"`  // "": postconf's myhostname, else the host's name
	Banner     string   `toml:"banner"`    // the greeting after "220 "; "": postconf's smtpd_banner
	IMAPBanner string   `toml:"imap_banner"`
	// PostfixConfig is the Postfix configuration directory postconf reads
	// ("": its default, /etc/postfix).
	PostfixConfig string         `toml:"postfix_config"`
	CertFile      string         `toml:"cert_file"` // the real server's certificate; "": postconf's smtpd_tls_cert_file
	KeyFile       string         `toml:"key_file"`
	Listeners     []TrapListener `toml:"listeners"`

	AccountAddresses int      `toml:"account_addresses" range:"1..8"`
	MaxAccounts      int      `toml:"max_accounts" range:"1..1000000"`
	AccountTTL       Duration `toml:"account_ttl" range:"1h..365d"`
	RealUsers        []string `toml:"real_users"`
	PasswordsFile    string   `toml:"passwords_file"`
	AnyPasswordAfter int      `toml:"any_password_after" range:"0..100"`

	MaxMessageSize int      `toml:"max_message_size" range:"1024..1073741824"`
	MaxRecipients  int      `toml:"max_recipients" range:"1..10000"`
	MaxMessages    int      `toml:"max_messages" range:"1..10000"`
	MaxSessions    int      `toml:"max_sessions" range:"1..1000000"`
	MaxPerAddress  int      `toml:"max_sessions_per_address" range:"1..10000"`
	SessionTimeout Duration `toml:"session_timeout" range:"10s..1h"`
	QuarantineSize int      `toml:"quarantine_size" range:"1048576..1099511627776"`
	Retention      Duration `toml:"retention" range:"1h..3650d"`
}

// TrapListener is one decoy server: the port attackers dial, where the
// redirect sends them, and what it speaks.
type TrapListener struct {
	Port     int    `toml:"port"`
	Listen   string `toml:"listen"`   // ":10587": every address, as the redirect goes to the address the client reached
	Protocol string `toml:"protocol"` // submission, submissions, smtp, imap, imaps
}

// TrapProtocols are the protocols a trap listener may speak.
var TrapProtocols = []string{"submission", "submissions", "smtp", "imap", "imaps"}

// TrapScenarios are the engine's scenarios that ban a single address,
// the ones a trap can take over (a network cannot be redirected).
var TrapScenarios = []string{"ip-failures", "user-spray", "slow", "surge", "prefix-suspect", "asn"}

// Escalation lengthens repeat bans.
type Escalation struct {
	Factor float64  `toml:"factor" range:"1..100"`
	Max    Duration `toml:"max" range:"1m..365d"`
	Window Duration `toml:"window" range:"1m..365d"`
}

// Recidive bans long-term repeat offenders.
type Recidive struct {
	Bans    int      `toml:"bans" range:"1..1000"`
	Window  Duration `toml:"window" range:"1m..365d"`
	BanTime Duration `toml:"bantime" range:"1m..365d,permanent"`
}

// Filters says where filters beyond the built-in ones are found.
type Filters struct {
	// Dir holds the server's own filters: *.toml in Rampart's pattern
	// language, *.conf in fail2ban's format. A missing directory is fine.
	Dir string `toml:"dir"`
	// Fail2banDir is a fail2ban configuration directory: a jail's filter
	// that names no built-in or own filter is read from its filter.d.
	// "" turns that off.
	Fail2banDir string `toml:"fail2ban_dir"`
}

// Syslog configures the syslog listener that jails with syslog = true read.
type Syslog struct {
	UDP string `toml:"udp"` // listen address, e.g. "127.0.0.1:514"; "" disables
	TCP string `toml:"tcp"`
}

// Jail ties filters to log sources and thresholds. A key a jail leaves
// out takes its value from [defaults] (see newJail).
type Jail struct {
	Name     string         `toml:"-"`
	Enabled  bool           `toml:"enabled"`
	Filter   string         `toml:"filter"` // a built-in filter name or alias
	Mode     string         `toml:"mode"`
	Files    []string       `toml:"files"`
	Journal  *Journal       `toml:"journal"`
	Syslog   bool           `toml:"syslog"`
	MaxRetry int            `toml:"maxretry" range:"1..1000"`
	FindTime Duration       `toml:"findtime" range:"1s..30d"`
	BanTime  Duration       `toml:"bantime" range:"1s..365d,permanent"`
	Weights  map[string]int `toml:"weights"` // event kind → failures it counts for
	// Ports limits the jail's address bans to these destination ports, as
	// fail2ban's per-port actions do (see ResolvePorts); empty bans the
	// whole host, the default.
	Ports PortList `toml:"ports"`
	// Protocol is that of the ports given without one: tcp (""), udp or sctp.
	Protocol string `toml:"protocol"`
}

// Journal selects journald records.
type Journal struct {
	Units       []string `toml:"units"`
	Identifiers []string `toml:"identifiers"`
	// Matches are journalctl's own match expressions, FIELD=VALUE terms
	// with "+" between alternatives (as fail2ban's journalmatch), for a
	// selection units and identifiers cannot say: a record from this unit
	// or with that command name. They and any units and identifiers must
	// all hold.
	Matches []string `toml:"matches"`
	// Directory reads the journal files in this directory (journalctl
	// --directory) rather than the system's journal: a container's,
	// another host's, or a copy. journald need not run.
	Directory string `toml:"directory"`
}

// newJail returns a jail named name as [defaults] makes it before its own
// table is read: enabled, reading the filter of its name, with the
// default thresholds.
func (c *Config) newJail(name string) *Jail {
	return &Jail{
		Name:     name,
		Enabled:  true,
		Filter:   name,
		MaxRetry: c.Defaults.MaxRetry,
		FindTime: c.Defaults.FindTime,
		BanTime:  c.Defaults.BanTime,
	}
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

// EnabledJails returns the names of the enabled jails, sorted.
func (c *Config) EnabledJails() []string {
	var names []string
	for _, n := range c.JailNames() {
		if c.Jails[n].Enabled {
			names = append(names, n)
		}
	}
	return names
}

// field is one key of a table of the schema.
type field struct {
	key   string // its toml tag
	index []int  // for reflect.Value.FieldByIndex
	typ   reflect.Type
	rng   string // its range tag
}

// fields lists the keys of a table type, those of embedded structs (Tarpit)
// included, in the order they are declared.
func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for _, sub := range fields(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if key == "" || key == "-" {
			continue
		}
		out = append(out, field{key: key, index: []int{i}, typ: f.Type, rng: f.Tag.Get("range")})
	}
	return out
}

// tableAt returns the table type a dotted key path leads to ("jail",
// "sshd", "journal" leads to Journal; a map's key is any name), or nil
// when the path names no table.
func tableAt(path []string) reflect.Type {
	t := reflect.TypeFor[Config]()
	for i := 0; i < len(path); i++ {
		t = tableOf(t)
		if t.Kind() == reflect.Map {
			t = t.Elem() // path[i] is the map's key: a jail's name
			continue
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		found := false
		for _, f := range fields(t) {
			if f.key == path[i] {
				t, found = f.typ, true
				break
			}
		}
		if !found {
			return nil
		}
	}
	if t = tableOf(t); t.Kind() == reflect.Struct {
		return t
	}
	return nil
}

// tableOf looks through pointers and slices ([[prefixes.ipv4]] tables) to
// the table type they hold.
func tableOf(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t
}

// keysAt lists the keys the table at path accepts, for "did you mean" hints.
func keysAt(path []string) []string {
	t := tableAt(path)
	if t == nil {
		return nil
	}
	var keys []string
	for _, f := range fields(t) {
		keys = append(keys, f.key)
	}
	return keys
}

// Fleet shares decisions and signals with other Rampart nodes over NATS
// JetStream (docs/fleet.md).
type Fleet struct {
	Enabled  bool     `toml:"enabled"`
	Name     string   `toml:"name"`      // this node's name in peers' logs and origins; "": the host name
	SeedFile string   `toml:"seed_file"` // this node's NKey seed (a user key: rampart fleet keygen)
	Servers  []string `toml:"servers"`   // an external NATS cluster's URLs; empty: the embedded server

	// The embedded server.
	Listen            string   `toml:"listen"`         // its client listener; "": a random loopback port
	ClusterListen     string   `toml:"cluster_listen"` // its route listener; "": no cluster
	Routes            []string `toml:"routes"`         // the other nodes' cluster_listen addresses
	ClusterSecretFile string   `toml:"cluster_secret_file"`
	StoreDir          string   `toml:"store_dir"` // JetStream's files; "": <state_dir>/fleet
	MaxStore          int      `toml:"max_store" range:"16777216..1099511627776"`

	Replicas        int      `toml:"replicas" range:"0..5"` // 0: the cluster's size, at most 3
	Publish         bool     `toml:"publish"`               // share this node's own decisions
	Signals         bool     `toml:"signals"`               // share hot user names, bad prefixes and suspect addresses
	SignalTTL       Duration `toml:"signal_ttl" range:"1m..7d"`
	Quorum          int      `toml:"quorum" range:"2..100"`
	SuspectMaxRetry int      `toml:"suspect_maxretry" range:"1..100"`
	// An address that fails EvidenceFailures times within EvidenceWindow
	// here without being banned is shared as suspect (0: never).
	EvidenceFailures int         `toml:"evidence_failures" range:"0..100"`
	EvidenceWindow   Duration    `toml:"evidence_window" range:"1m..7d"`
	Peers            []FleetPeer `toml:"peers"`
}

// FleetPeer is another node and how far its word goes here.
type FleetPeer struct {
	Name  string `toml:"name"`
	Key   string `toml:"key"`   // its public NKey (U...)
	Trust string `toml:"trust"` // ban, quorum, suspect or ignore; "": ban
}

// API serves the decisions to bouncers (the CrowdSec Local API's bouncer
// endpoints) and as blocklists (docs/fleet.md).
type API struct {
	Listen   string            `toml:"listen"`    // "": off; e.g. "127.0.0.1:8089"
	KeyFiles map[string]string `toml:"key_files"` // bouncer name → file holding its API key
}

// Feed is the signed feed across owners: this node's, served over HTTPS,
// and the feeds it subscribes to (docs/fleet.md).
type Feed struct {
	Listen         string             `toml:"listen"`           // HTTPS listener for this node's feed; "": none
	CertFile       string             `toml:"cert_file"`        // its TLS certificate
	KeyFile        string             `toml:"key_file"`         // and key
	SigningKeyFile string             `toml:"signing_key_file"` // the Ed25519 seed the feed is signed with
	Name           string             `toml:"name"`             // the publisher's name in the feed; "": the host name
	Validity       Duration           `toml:"validity" range:"1m..1d"`
	Subscribe      []FeedSubscription `toml:"subscribe"`
}

// FeedSubscription is another owner's feed and how far it is trusted.
type FeedSubscription struct {
	Name      string   `toml:"name"`
	URL       string   `toml:"url"`        // https://...
	PublicKey string   `toml:"public_key"` // the publisher's Ed25519 public key, base64
	Trust     string   `toml:"trust"`      // ban or suspect; "": suspect
	CAFile    string   `toml:"ca_file"`    // CA certificates to trust for it; "": the system's
	Every     Duration `toml:"every"`      // how often it is fetched; 0: 5m
	MaxAge    Duration `toml:"max_age"`    // older feeds are stale; 0: 1h
	MaxBytes  int      `toml:"max_bytes"`  // larger feeds are refused; 0: 16 MiB
}
