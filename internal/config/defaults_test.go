package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestDefaultsOneSource: a file that says nothing is the embedded defaults
// (without their jails), and a key a file leaves out keeps its default:
// default.toml is the only place a default is written.
func TestDefaultsOneSource(t *testing.T) {
	empty, err := Parse("empty.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if len(empty.Jails) != 0 || len(def.Jails) != 3 {
		t.Fatalf("jails: %d in an empty file, %d in the defaults", len(empty.Jails), len(def.Jails))
	}
	for _, c := range []*Config{empty, def} {
		c.File, c.Jails, c.lines = "", nil, nil
	}
	if !reflect.DeepEqual(empty, def) {
		t.Fatalf("an empty file differs from the defaults:\n%+v\n%+v", empty, def)
	}
	// One key set; its neighbours keep their defaults.
	c, err := Parse("r.toml", []byte("[spray]\nwindow = \"2h\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default().Spray
	want.Window = Duration(2 * 60 * 60 * 1e9)
	if c.Spray != want {
		t.Fatalf("spray = %+v, want %+v", c.Spray, want)
	}
}

// TestDefaultTOMLSetsEveryKey: every key of the schema outside the jails
// is written in default.toml, so the printed defaults show them all, and
// none is left to a Go zero value.
func TestDefaultTOMLSetsEveryKey(t *testing.T) {
	lines := keyLines(defaultTOML)
	var missing []string
	for _, k := range schemaKeys(false) {
		if _, ok := lines[k.key]; !ok {
			missing = append(missing, k.key)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("default.toml does not set %s", strings.Join(missing, ", "))
	}
}

// schemaKey is one key of the schema outside the jails, with its dotted
// name: "spray.window", "shields.ssh.rate" (with placeholders,
// "shields.<group>.rate": the groups share one row in the docs).
type schemaKey struct {
	key string
	f   field
}

// schemaKeys lists the keys of every table outside the jails, those of
// the sub-tables of [shields] included.
func schemaKeys(placeholders bool) []schemaKey {
	var out []schemaKey
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for _, f := range fields(typ) {
			key := prefix + f.key
			// Sub-tables written as tables of their own ([shields.ssh]);
			// inline ones (widen_ipv4 = {…}) are documented as one row.
			if f.typ == reflect.TypeFor[ShieldGroup]() || f.typ == reflect.TypeFor[ShieldJail]() || reportingTables[f.typ] {
				sub := key
				if placeholders && f.typ == reflect.TypeFor[ShieldGroup]() {
					sub = prefix + "<group>"
				}
				out = append(out, schemaKey{key: key, f: f})
				walk(f.typ, sub+".")
				continue
			}
			out = append(out, schemaKey{key: key, f: f})
		}
	}
	for _, table := range fields(reflect.TypeFor[Config]()) {
		switch {
		case table.key == "jail":
		case table.typ.Kind() != reflect.Struct:
			// An array of tables ([[action]]), none by default: the key
			// itself is written (action = []).
			out = append(out, schemaKey{key: table.key, f: table})
		default:
			walk(table.typ, table.key+".")
		}
	}
	return out
}

// reportingTables are [reporting]'s sub-tables, written as tables of
// their own ([reporting.smtp]).
var reportingTables = map[reflect.Type]bool{
	reflect.TypeFor[ReportSMTP](): true, reflect.TypeFor[AbuseIPDB](): true, reflect.TypeFor[Netcraft](): true,
	reflect.TypeFor[AbuseContacts](): true, reflect.TypeFor[ReportWebhook](): true, reflect.TypeFor[Postmaster](): true,
}

// TestExplicitZeroIsNotTheDefault: a value written in the file is the
// value used, or an error; 0 used to become the default silently (and
// spray.addresses = 0 would now turn spraying off unseen).
func TestExplicitZeroIsNotTheDefault(t *testing.T) {
	for in, want := range map[string]string{
		"[spray]\naddresses = 0\n":                            `r.toml:2: key "spray.addresses": 0 is out of range (2 to 8)`,
		"[defaults]\nmaxretry = 0\n":                          `r.toml:2: key "defaults.maxretry": 0 is out of range (1 to 1000)`,
		"[daemon]\nmax_tracked = 0\n":                         `r.toml:2: key "daemon.max_tracked": 0 is out of range (1000 to 50000000)`,
		"[surge]\nfactor = 0\n":                               `r.toml:2: key "surge.factor": 0 is out of range (1 to 1000)`,
		"[escalation]\nfactor = 0.5\n":                        `r.toml:2: key "escalation.factor": 0.5 is out of range (1 to 100)`,
		"[slow]\nfailures = 9\n":                              `r.toml:2: key "slow.failures": 9 is out of range (2 to 8)`,
		"[known_good]\nttl = 0\n":                             `r.toml:2: key "known_good.ttl": 0s is out of range (1h to 365d)`,
		"[postfix_policy]\nmax_conns = 0\n":                   `r.toml:2: key "postfix_policy.max_conns": 0 is out of range (1 to 1000000)`,
		"[prefixes]\nipv4 = [{ bits = 24, addresses = 9 }]\n": `r.toml:2: level 1: bits must be 8..31 and addresses 1..8`,
	} {
		_, err := Parse("r.toml", []byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q:\n got  %v\n want %s", in, err, want)
		}
	}
}

// TestJailsInheritDefaults: a jail takes what it leaves out from
// [defaults], wherever [defaults] is written in the file, and keeps what
// it sets.
func TestJailsInheritDefaults(t *testing.T) {
	c, err := Parse("r.toml", []byte(`
[jail.a]
files = ["/a"]
maxretry = 3

[defaults]
maxretry = 7
findtime = "1h"
bantime = "2h"

[jail.b]
files = ["/b"]
bantime = -1
enabled = false
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Jails["a"], c.Jails["b"]
	if a.MaxRetry != 3 || a.FindTime.String() != "1h" || a.BanTime.String() != "2h" || !a.Enabled || a.Filter != "a" {
		t.Errorf("jail a = %+v", a)
	}
	if b.MaxRetry != 7 || !b.BanTime.Permanent() || b.Enabled {
		t.Errorf("jail b = %+v", b)
	}
	if got := c.EnabledJails(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("enabled jails %v", got)
	}
}

// TestHintsFromSchema: the keys offered as "did you mean" come from the
// schema itself (embedded tables included), the event kinds from package
// event.
func TestHintsFromSchema(t *testing.T) {
	for in, want := range map[string]string{
		"[postfix_policy]\ntarpit_mx = \"1s\"\n":                         `r.toml:2: unknown key "tarpit_mx" (did you mean "tarpit_max"?)`,
		"[dovecot_policy]\nauthfile = \"/x\"\n":                          `r.toml:2: unknown key "authfile" (did you mean "auth_file"?)`,
		"[jail.s]\nfiles = [\"/a\"]\n[jail.s.journal]\nunit = [\"x\"]\n": `r.toml:4: jail "s": unknown key "unit" (did you mean "units"?)`,
		"[[prefixes.ipv4]]\nbit = 24\n":                                  `r.toml:2: unknown key "bit" (did you mean "bits"?)`,
		"[surge]\nmin_rat = 3\n":                                         `r.toml:2: unknown key "min_rat" (did you mean "min_rate"?)`,
		"[jail.s]\nfiles = [\"/a\"]\nweights = { unknown-usr = 2 }\n":    `r.toml:3: jail "s": unknown event kind "unknown-usr" (did you mean "unknown-user"?); want one of auth-failure, unknown-user, recipient-unknown, protocol-abuse, probe, rejected`,
		"[defaults]\nweights = { auth-success = 1 }\n":                   `r.toml:2: unknown event kind "auth-success"`,
	} {
		_, err := Parse("r.toml", []byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q:\n got  %v\n want %s", in, err, want)
		}
	}
}

// TestRangesDocumented: docs/configuration.md lists every key's allowed
// range as the schema has it, and a jail's keys have the ranges of the
// [defaults] they inherit from.
func TestRangesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	jailRanges := map[string]string{}
	for _, f := range fields(reflect.TypeFor[Jail]()) {
		jailRanges[f.key] = f.rng
	}
	seen := map[string]bool{}
	for _, k := range schemaKeys(true) {
		f := k.f
		if f.rng == "" || seen[k.key] {
			continue
		}
		seen[k.key] = true
		if strings.HasPrefix(k.key, "defaults.") && jailRanges[f.key] != f.rng {
			t.Errorf("jail key %s has range %q, [defaults] %q", f.key, jailRanges[f.key], f.rng)
		}
		spec, permanent := strings.CutSuffix(f.rng, ",permanent")
		row := fmt.Sprintf("| `%s` | %s |", k.key, strings.ReplaceAll(spec, "..", " to "))
		if permanent {
			row = fmt.Sprintf("| `%s` | %s, or `-1` (permanent) |", k.key, strings.ReplaceAll(spec, "..", " to "))
		}
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/configuration.md lacks the row %s", row)
		}
	}
}
