package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"
)

// Action is one [[action]] table (docs/actions.md): what to do, beside
// the firewall, when a decision or a report happens — fail2ban's custom
// actions, run off the engine's path.
type Action struct {
	Name      string   `toml:"name"`
	Type      string   `toml:"type"` // webhook, mail, exec, sql
	On        []string `toml:"on"`   // ban, unban, trap, report
	Jails     []string `toml:"jails"`
	Scenarios []string `toml:"scenarios"`
	Queue     int      `toml:"queue"`   // events waiting at most; more are dropped (counted)
	Timeout   Duration `toml:"timeout"` // per event (webhook, exec, sql)

	// webhook
	URL        string `toml:"url"`
	SecretFile string `toml:"secret_file"` // signs the body; or RAMPART_ACTION_<NAME>_SECRET
	Template   string `toml:"template"`    // the body: a text/template producing JSON; "": the event as JSON

	// mail (a digest through [reporting.smtp], from [reporting] from)
	To       []string `toml:"to"`
	Interval Duration `toml:"interval"`
	Subject  string   `toml:"subject"`

	// exec
	Command []string `toml:"command"` // argv, each element a template; with shell = true, one string for /bin/sh -c
	Shell   bool     `toml:"shell"`

	// sql
	Driver  string `toml:"driver"`   // sqlite, postgres
	DSN     string `toml:"dsn"`      // sqlite: the database file; postgres: a connection string without its password
	DSNFile string `toml:"dsn_file"` // a connection string with secrets; or RAMPART_ACTION_<NAME>_DSN
	Table   string `toml:"table"`
}

// ActionTypes and ActionEvents are what an action may be and run on.
var (
	ActionTypes  = []string{"webhook", "mail", "exec", "sql"}
	ActionEvents = []string{"ban", "unban", "trap", "report"}
)

// actionKeys are the keys each type takes, beside the common ones.
var actionKeys = map[string][]string{
	"webhook": {"url", "secret_file", "template", "timeout"},
	"mail":    {"to", "interval", "subject"},
	"exec":    {"command", "shell", "timeout"},
	"sql":     {"driver", "dsn", "dsn_file", "table", "timeout"},
}

// Names of actions (at most 32 bytes) and of SQL tables (at most 63). The
// lengths are checked apart: a bounded repeat would compile to a program
// of that many steps at every start.
var (
	actionNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	sqlNameRE    = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

// ActionDefaults fills in what an action leaves out.
func (a *Action) defaults() {
	if a.Queue == 0 {
		a.Queue = 1000
	}
	if a.Timeout == 0 {
		a.Timeout = Duration(10 * time.Second)
	}
	if a.Type == "mail" && a.Interval == 0 {
		a.Interval = Duration(time.Hour)
	}
	if a.Type == "mail" && a.Subject == "" {
		a.Subject = "Rampart: {{.Count}} events on {{.Host}}"
	}
	if a.Type == "sql" && a.Table == "" {
		a.Table = "rampart_events"
	}
	if len(a.On) == 0 {
		a.On = []string{"ban", "trap"}
	}
}

// SecretEnv is the environment variable that may hold an action's
// secret: RAMPART_ACTION_<NAME>_<WHAT>, the name in upper case with '-'
// as '_'.
func (a *Action) SecretEnv(what string) string {
	return "RAMPART_ACTION_" + strings.ToUpper(strings.ReplaceAll(a.Name, "-", "_")) + "_" + what
}

func (c *Config) checkActions() error {
	seen := map[string]bool{}
	for i := range c.Actions {
		a := &c.Actions[i]
		key := fmt.Sprintf("action.%d", i)
		errf := func(k, format string, args ...any) error {
			if k != "" {
				k = "." + k
			}
			return c.errorf(key+k, "action %q: %s", a.Name, fmt.Sprintf(format, args...))
		}
		if len(a.Name) > 32 || !actionNameRE.MatchString(a.Name) {
			return c.errorf(key+".name", "action %d: name %q must be 1 to 32 lower-case letters, digits, '-' or '_'", i+1, a.Name)
		}
		if seen[a.Name] {
			return errf("name", "the name is used twice")
		}
		seen[a.Name] = true
		if !slices.Contains(ActionTypes, a.Type) {
			return errf("type", "type %q is not one of %s", a.Type, strings.Join(ActionTypes, ", "))
		}
		// A key of another type is a mistake (a webhook with a command).
		v := reflect.ValueOf(*a)
		for _, f := range fields(reflect.TypeFor[Action]()) {
			common := slices.Contains([]string{"name", "type", "on", "jails", "scenarios", "queue"}, f.key)
			if !common && !slices.Contains(actionKeys[a.Type], f.key) && !v.FieldByIndex(f.index).IsZero() {
				return errf(f.key, "key %q is not for a %s action (it takes %s)", f.key, a.Type, strings.Join(actionKeys[a.Type], ", "))
			}
		}
		a.defaults()
		for _, on := range a.On {
			if !slices.Contains(ActionEvents, on) {
				return errf("on", "event %q is not one of %s", on, strings.Join(ActionEvents, ", "))
			}
		}
		if a.Queue < 1 || a.Queue > 1_000_000 {
			return errf("queue", "queue %d is out of range (1 to 1000000)", a.Queue)
		}
		if d := a.Timeout.D(); d < time.Second || d > 10*time.Minute {
			return errf("timeout", "timeout %s is out of range (1s to 10m)", a.Timeout)
		}
		if err := c.checkAction(a, errf); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) checkAction(a *Action, errf func(k, format string, args ...any) error) error {
	switch a.Type {
	case "webhook":
		if err := checkServiceURL(a.URL, true); err != nil {
			return errf("url", "%v", err)
		}
		if a.Template != "" {
			if _, err := template.New(a.Name).Parse(a.Template); err != nil {
				return errf("template", "%v", err)
			}
		}
	case "mail":
		if len(a.To) == 0 {
			return errf("to", "a mail action needs recipients")
		}
		for _, to := range a.To {
			if plainAddr(to) == "" {
				return errf("to", "%q is not an address", to)
			}
		}
		if c.Reporting.SMTP.Server == "" || c.Reporting.From == "" {
			return errf("type", "a mail action needs [reporting.smtp] server and [reporting] from")
		}
		if d := a.Interval.D(); d < time.Minute || d > 7*24*time.Hour {
			return errf("interval", "interval %s is out of range (1m to 7d)", a.Interval)
		}
		if _, err := template.New(a.Name).Parse(a.Subject); err != nil {
			return errf("subject", "%v", err)
		}
	case "exec":
		if len(a.Command) == 0 {
			return errf("command", "an exec action needs a command")
		}
		if a.Shell && len(a.Command) != 1 {
			return errf("command", "with shell = true the command is one string for /bin/sh -c")
		}
		if !a.Shell && !strings.HasPrefix(a.Command[0], "/") {
			return errf("command", "%q is not an absolute path (the daemon runs with a minimal PATH)", a.Command[0])
		}
		for _, arg := range a.Command {
			if _, err := template.New(a.Name).Parse(arg); err != nil {
				return errf("command", "%v", err)
			}
		}
	case "sql":
		switch a.Driver {
		case "sqlite":
			if !strings.HasPrefix(a.DSN, "/") {
				return errf("dsn", "the SQLite database %q is not an absolute path", a.DSN)
			}
			if strings.HasPrefix(a.DSN, strings.TrimSuffix(c.Daemon.StateDir, "/")+"/rampart.db") {
				return errf("dsn", "%q is Rampart's own store: give the events a database of their own", a.DSN)
			}
		case "postgres":
			if a.DSN == "" && a.DSNFile == "" {
				return errf("dsn", "a PostgreSQL action needs dsn or dsn_file (or %s)", a.SecretEnv("DSN"))
			}
			if strings.Contains(strings.ToLower(a.DSN), "password") {
				return errf("dsn", "the password belongs in dsn_file or %s, not in the configuration", a.SecretEnv("DSN"))
			}
		default:
			return errf("driver", "driver %q is not sqlite or postgres", a.Driver)
		}
		if a.DSNFile != "" && !strings.HasPrefix(a.DSNFile, "/") {
			return errf("dsn_file", "%q is not an absolute path", a.DSNFile)
		}
		if len(a.Table) > 63 || !sqlNameRE.MatchString(a.Table) {
			return errf("table", "table %q must be lower-case letters, digits and '_'", a.Table)
		}
	}
	if a.SecretFile != "" && !strings.HasPrefix(a.SecretFile, "/") {
		return errf("secret_file", "%q is not an absolute path", a.SecretFile)
	}
	return nil
}

// plainAddr returns a bare address ("ops@example.org"), or "".
func plainAddr(s string) string {
	if strings.ContainsAny(s, " <>\"\r\n") || strings.Count(s, "@") != 1 || strings.HasPrefix(s, "@") || !strings.Contains(s[strings.IndexByte(s, '@'):], ".") {
		return ""
	}
	return s
}
