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
