package config

import (
	"slices"
	"strings"
	"testing"
)

// TestReportingErrors: mistakes in [reporting] are refused at their
// file:line with what to do.
func TestReportingErrors(t *testing.T) {
	for in, want := range map[string]string{
		"[reporting]\nmode = \"later\"\n":                         `r.toml:2: key "mode": "later" is not one of send, review, dry-run`,
		"[reporting.webhook]\nmode = \"now\"\n":                   `r.toml:2: key "mode": "now" is not one of send, review, dry-run`,
		"[reporting]\ndedup = \"30d\"\nretention = \"7d\"\n":      `r.toml:3: key "retention": 7d is shorter than dedup (30d)`,
		"[reporting.webhook]\nenabled = true\n":                   `r.toml:1: key "url": no URL`,
		"[reporting.webhook]\nurl = \"http://hooks.example/x\"\n": `r.toml:2: key "url": "http://hooks.example/x": http only to loopback; use https`,
		"[reporting.webhook]\nsecret_file = \"hook.secret\"\n":    `r.toml:2: key "secret_file": "hook.secret" is not an absolute path`,
		"[reporting.netcraft]\nemail = \"Me <me@example.org>\"\n": `r.toml:2: key "email": "Me <me@example.org>" is not a bare address`,
		"[reporting.abuseipdb]\ncategories = { sshd = [99] }\n":   `r.toml:2: jail "sshd": category 99 is not one of AbuseIPDB's (1 to 23)`,
		"[reporting.abuseipdb]\ndefault_categories = []\n":        `r.toml:2: at least one category`,
		"[reporting]\nfrom = \"a@b.example\"\n[reporting.smtp]\nserver = \"127.0.0.1:25\"\n[reporting.postmaster]\nenabled = true\n": `r.toml:5: postmaster is enabled but lists no domains`,
		"[reporting.postmaster]\nenabled = true\n":                                          `r.toml: key "from": "" is not an address`,
		"[reporting]\nfrom = \"nobody\"\n":                                                  `r.toml:2: key "from": "nobody" is not an address`,
		"[reporting.smtp]\nserver = \"relay.example:587\"\nsecurity = \"none\"\n":           `r.toml:3: key "security": "none" sends mail (and a password) in the clear: only to a relay on loopback`,
		"[reporting]\nfrom = \"a@b.example\"\n[reporting.abuse_contacts]\nenabled = true\n": `r.toml:1: mailed reports (abuse_contacts, postmaster) need [reporting.smtp] server`,
		"[reporting]\nlocal_domains = [\"a b\"]\n":                                          `r.toml:2: entry 1: "a b" is not a domain`,
		"[trap]\nenabled = true\n[reporting.smtp]\nserver = \"127.0.0.1:10587\"\n":          `r.toml:4: key "server": "127.0.0.1:10587" is the trap's listener for port 587: reports never go through the trap`,
		"[reporting.abuseipdb]\nper_hour = 0\n":                                             `r.toml:2: key "reporting.abuseipdb.per_hour": 0 is out of range (1 to 10000)`,
	} {
		_, err := Parse("r.toml", []byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q:\n got  %v\n want %s", in, err, want)
		}
	}
}

// TestReportingCategoriesMerge: a jail's categories written in the file
// join the built-in ones; the others stay.
func TestReportingCategoriesMerge(t *testing.T) {
	c, err := Parse("r.toml", []byte("[reporting.abuseipdb]\ncategories = { sshd = [22], myapp = [21] }\n"))
	if err != nil {
		t.Fatal(err)
	}
	cats := c.Reporting.AbuseIPDB.Categories
	if !slices.Equal(cats["sshd"], []int{22}) || !slices.Equal(cats["myapp"], []int{21}) || !slices.Equal(cats["postfix"], []int{18}) {
		t.Fatalf("categories %v", cats)
	}
	if Default().Reporting.ReporterMode("") != "review" || Default().Reporting.ReporterMode("send") != "send" {
		t.Error("modes")
	}
}

// TestActionErrors: mistakes in [[action]] tables are refused at the
// line of the table they are in, naming the action.
func TestActionErrors(t *testing.T) {
	hook := "[[action]]\nname = \"a\"\ntype = \"webhook\"\nurl = \"https://h.example/x\"\n"
	for in, want := range map[string]string{
		hook + "[[action]]\nname = \"b\"\ntype = \"webhook\"\nurl = \"https://h.example/x\"\ncommand = [\"/bin/true\"]\n": `r.toml:9: action "b": key "command" is not for a webhook action (it takes url, secret_file, template, timeout)`,
		hook + "[[action]]\nname = \"a\"\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n":                                   `r.toml:6: action "a": the name is used twice`,
		"[[action]]\nname = \"Bad Name\"\n":                        `r.toml:2: action 1: name "Bad Name" must be`,
		"[[action]]\nname = \"x\"\ntype = \"pager\"\n":             `r.toml:3: action "x": type "pager" is not one of webhook, mail, exec, sql`,
		"[[action]]\nname = \"" + strings.Repeat("n", 33) + "\"\n": `r.toml:2: action 1: name "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn" must be 1 to 32`,
		"[[action]]\nname = \"d\"\ntype = \"sql\"\ndriver = \"sqlite\"\ndsn = \"/var/lib/ev.db\"\ntable = \"" + strings.Repeat("t", 64) + "\"\n": `r.toml:6: action "d": table "` + strings.Repeat("t", 64) + `" must be`,
		hook + "on = [\"banned\"]\n":  `r.toml:5: action "a": event "banned" is not one of ban, unban, trap, report`,
		hook + "template = '{{.IP'\n": `r.toml:5: action "a": template: a:1: unclosed action`,
		hook + "queue = 0\n[[action]]\nname = \"q\"\ntype = \"exec\"\ncommand = [\"/bin/true\"]\nqueue = -5\n":           `r.toml:10: action "q": queue -5 is out of range (1 to 1000000)`,
		"[[action]]\nname = \"e\"\ntype = \"exec\"\ncommand = [\"notify-send\", \"{{.IP}}\"]\n":                          `r.toml:4: action "e": "notify-send" is not an absolute path`,
		"[[action]]\nname = \"e\"\ntype = \"exec\"\nshell = true\ncommand = [\"a\", \"b\"]\n":                            `r.toml:5: action "e": with shell = true the command is one string`,
		"[[action]]\nname = \"m\"\ntype = \"mail\"\nto = [\"ops@example.org\"]\n":                                        `r.toml:3: action "m": a mail action needs [reporting.smtp] server and [reporting] from`,
		"[[action]]\nname = \"d\"\ntype = \"sql\"\ndriver = \"postgres\"\ndsn = \"host=db password=x\"\n":                `r.toml:5: action "d": the password belongs in dsn_file or RAMPART_ACTION_D_DSN`,
		"[[action]]\nname = \"d\"\ntype = \"sql\"\ndriver = \"sqlite\"\ndsn = \"/var/lib/rampart/rampart.db\"\n":         `r.toml:5: action "d": "/var/lib/rampart/rampart.db" is Rampart's own store`,
		"[[action]]\nname = \"d\"\ntype = \"sql\"\ndriver = \"sqlite\"\ndsn = \"/var/lib/ev.db\"\ntable = \"x; drop\"\n": `r.toml:6: action "d": table "x; drop" must be`,
	} {
		_, err := Parse("r.toml", []byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q:\n got  %v\n want %s", in, err, want)
		}
	}
	if _, err := Parse("r.toml", []byte("[[action]]\nname = \""+strings.Repeat("n", 32)+"\"\ntype = \"sql\"\ndriver = \"sqlite\"\ndsn = \"/var/lib/ev.db\"\ntable = \""+strings.Repeat("t", 63)+"\"\n")); err != nil {
		t.Errorf("names at their longest: %v", err)
	}
	c, err := Parse("r.toml", []byte(hook+"[[action]]\nname = \"digest\"\ntype = \"mail\"\nto = [\"ops@example.org\"]\n"+
		"[reporting]\nfrom = \"r@example.org\"\n[reporting.smtp]\nserver = \"127.0.0.1:25\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, m := c.Actions[0], c.Actions[1]
	if a.Queue != 1000 || a.Timeout.String() != "10s" || !slices.Equal(a.On, []string{"ban", "trap"}) || m.Interval.String() != "1h" || m.Subject == "" {
		t.Errorf("defaults: %+v %+v", a, m)
	}
}
