package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDurationForms(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90":         90 * time.Second,
		"3600":       time.Hour,
		"0":          0,
		"10m":        10 * time.Minute,
		"7d":         7 * 24 * time.Hour,
		"2w":         14 * 24 * time.Hour,
		"1h30m":      90 * time.Minute,
		"1.5d":       36 * time.Hour,
		"1d12h":      36 * time.Hour,
		"1w2d3h4m5s": (9*24+3)*time.Hour + 4*time.Minute + 5*time.Second,
		"1h 30m":     90 * time.Minute,
		"2 days":     48 * time.Hour,
		"500ms":      500 * time.Millisecond,
		" 5m ":       5 * time.Minute,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"":              "empty",
		"-5":            "negative",
		"-1":            "negative", // permanent only where a key allows it, not for ParseDuration
		"-1d":           "negative",
		"x":             "expected a number",
		"10":            "",
		"5 fortnights":  `unknown unit "fortnights"`,
		"1d12":          "a unit must follow 12",
		"100000000d":    "too long",
		"9999999999999": "too long",
		"1..5s":         "is not a number",
	} {
		_, err := ParseDuration(in)
		if want == "" {
			if err != nil {
				t.Errorf("ParseDuration(%q): %v", in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDuration(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

func TestFormatDurationRoundTrips(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                       "0s",
		90 * time.Second:        "1m30s",
		36 * time.Hour:          "1d12h",
		7 * 24 * time.Hour:      "7d",
		1500 * time.Millisecond: "1.5s",
		365 * 24 * time.Hour:    "365d",
	} {
		got := FormatDuration(d)
		if got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := ParseDuration(got); err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, back, err, d)
		}
	}
}

// TestDurationKeys: what the file says is what the daemon uses. A bare
// number is seconds (fail2ban's habit; it used to be read as nanoseconds,
// so nothing was ever banned); -1 is a permanent ban where a ban time
// allows it; 0, negatives, overflows and values out of a key's range are
// errors at file:line:key, never silently the default.
func TestDurationKeys(t *testing.T) {
	ok := []struct {
		input string
		get   func(*Config) Duration
		want  Duration
	}{
		{"[defaults]\nbantime = 3600\n", func(c *Config) Duration { return c.Defaults.BanTime }, Duration(time.Hour)},
		{"[defaults]\nfindtime = 600\n", func(c *Config) Duration { return c.Defaults.FindTime }, Duration(10 * time.Minute)},
		{"[defaults]\nbantime = \"1d12h\"\n", func(c *Config) Duration { return c.Defaults.BanTime }, Duration(36 * time.Hour)},
		{"[defaults]\nbantime = \"3600\"\n", func(c *Config) Duration { return c.Defaults.BanTime }, Duration(time.Hour)},
		{"[defaults]\nbantime = -1\n", func(c *Config) Duration { return c.Defaults.BanTime }, Permanent},
		{"[defaults]\nbantime = \"-1\"\n", func(c *Config) Duration { return c.Defaults.BanTime }, Permanent},
		{"[recidive]\nbantime = -1\n", func(c *Config) Duration { return c.Recidive.BanTime }, Permanent},
		{"[known_good]\ngrace = 0\n", func(c *Config) Duration { return c.KnownGood.Grace }, 0},
		{"[dovecot_policy]\ntarpit = \"0s\"\n", func(c *Config) Duration { return c.Dovecot.Base }, 0},
		{"[jail.s]\nfiles = [\"/a\"]\nbantime = -1\n", func(c *Config) Duration { return c.Jails["s"].BanTime }, Permanent},
		{"[jail.s]\nfiles = [\"/a\"]\nbantime = 86400\n", func(c *Config) Duration { return c.Jails["s"].BanTime }, Duration(24 * time.Hour)},
	}
	for _, tt := range ok {
		c, err := Parse("r.toml", []byte(tt.input))
		if err != nil {
			t.Errorf("%q: %v", tt.input, err)
			continue
		}
		if got := tt.get(c); got != tt.want {
			t.Errorf("%q: got %v, want %v", tt.input, got, tt.want)
		}
	}
	bad := map[string]string{
		"[defaults]\nbantime = 0\n":                        `r.toml:2: key "defaults.bantime": 0s is out of range (1s to 365d, or -1 for a permanent ban)`,
		"[defaults]\nbantime = \"0s\"\n":                   `r.toml:2: key "defaults.bantime": 0s is out of range (1s to 365d, or -1 for a permanent ban)`,
		"[defaults]\nbantime = -5\n":                       `r.toml:2: key "defaults.bantime": bad duration -5: negative`,
		"[defaults]\nbantime = \"-2h\"\n":                  `r.toml:2: key "defaults.bantime": bad duration "-2h": negative`,
		"[defaults]\nbantime = \"100000000d\"\n":           `r.toml:2: key "defaults.bantime": bad duration "100000000d": too long`,
		"[defaults]\nbantime = 99999999999999999\n":        `r.toml:2: key "defaults.bantime": bad duration 99999999999999999: too long`,
		"[defaults]\nbantime = \"1000d\"\n":                `r.toml:2: key "defaults.bantime": 1000d is out of range (1s to 365d, or -1 for a permanent ban)`,
		"[defaults]\nbantime = 1.5\n":                      `r.toml:2: key "defaults.bantime": bad duration 1.5: want a whole number of seconds`,
		"[defaults]\nfindtime = -1\n":                      `r.toml:2: key "defaults.findtime": -1 (permanent) is not allowed here; want 1s to 30d`,
		"[defaults]\nfindtime = 0\n":                       `r.toml:2: key "defaults.findtime": 0s is out of range (1s to 30d)`,
		"[spray]\nbantime = -1\n":                          `r.toml:2: key "spray.bantime": -1 (permanent) is not allowed here; want 1m to 365d`,
		"[escalation]\nmax = 0\n":                          `r.toml:2: key "escalation.max": 0s is out of range (1m to 365d)`,
		"[allow]\nresolve_every = 1\n":                     `r.toml:2: key "allow.resolve_every": 1s is out of range (10s to 1d)`,
		"[jail.s]\nfiles = [\"/a\"]\nfindtime = \"40d\"\n": `r.toml:3: jail "s": key "findtime": 40d is out of range (1s to 30d)`,
		"[jail.s]\nfiles = [\"/a\"]\nbantime = \"ages\"\n": `r.toml:3: jail "s": key "jail.s.bantime": bad duration "ages"`,
		"[jail.s]\nfiles = [\"/a\"]\nbantime = 0\n":        `r.toml:3: jail "s": key "bantime": 0s is out of range (1s to 365d, or -1 for a permanent ban)`,
		"[jail]\ns = { files = [\"/a\"], bantime = 0 }\n":  `r.toml:2: jail "s": key "bantime": 0s is out of range`,
	}
	for in, want := range bad {
		_, err := Parse("r.toml", []byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q:\n got  %v\n want %s...", in, err, want)
		}
	}
}
