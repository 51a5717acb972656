package config

import "strings"

// The evidence, reporting and actions sections (issue 14): their keys and
// their checks, apart from the rest of the schema.

// Evidence reads the trap's quarantined mail for what it carried.
type Evidence struct {
	Enabled    bool     `toml:"enabled"`
	Retention  Duration `toml:"retention" range:"1d..3650d"`
	Shorteners []string `toml:"shorteners"`
}

func (c *Config) checkEvidence() error {
	for i, h := range c.Evidence.Shorteners {
		if h = strings.ToLower(strings.TrimSpace(h)); h == "" || strings.ContainsAny(h, "/:@ ") || !strings.Contains(h, ".") {
			return c.errorf("evidence.shorteners", "entry %d: %q is not a host name", i+1, c.Evidence.Shorteners[i])
		}
	}
	return nil
}
