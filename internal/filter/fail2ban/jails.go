package fail2ban

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// Jail is one jail of a fail2ban configuration (jail.conf, jail.d/*.conf,
// jail.local, jail.d/*.local), its options interpolated.
type Jail struct {
	Name    string
	Enabled bool
	// Options holds every option the jail sees (its own and [DEFAULT]'s),
	// interpolated; an option whose interpolation fails holds its raw text.
	Options map[string]string
	// Where tells the file and line that set each of the jail's options.
	Where map[string]string
}

// ReadJails reads the jails of the fail2ban configuration in dir.
func ReadJails(dir string) ([]Jail, []string, error) {
	files := configFiles(filepath.Join(dir, "jail"))
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("no jail.conf or jail.local in %s", dir)
	}
	c, err := readConfig(files)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for n := range c.sections {
		if n == "INCLUDES" || strings.HasPrefix(n, "KNOWN/") || strings.Contains(n, "?") {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	var jails []Jail
	for _, n := range names {
		j := Jail{Name: n, Options: map[string]string{}, Where: map[string]string{}}
		keys := map[string]bool{}
		for k := range c.defaults {
			keys[k] = true
		}
		for k := range c.sections[n] {
			keys[k] = true
		}
		for k := range keys {
			v, err := c.get(n, k, nil)
			if err != nil {
				v = c.sections[n][k]
				if v == "" {
					v = c.defaults[k]
				}
			}
			j.Options[k] = v
			if _, own := c.sections[n][k]; own {
				j.Where[k] = c.whereOf(n, k)
			}
		}
		if j.Options["filter"] == "" {
			j.Options["filter"] = n
		}
		j.Enabled = isTrue(j.Options["enabled"])
		jails = append(jails, j)
	}
	return jails, c.files, nil
}

func isTrue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "1", "on":
		return true
	}
	return false
}

// JournalMatches returns a filter's journalmatch lines as journalctl's
// match terms: FIELD=VALUE, with "+" between alternatives, the syntax
// fail2ban's systemd backend reads ("_SYSTEMD_UNIT=sshd.service + _COMM=sshd":
// a record of that unit or of that command).
func JournalMatches(journalmatch []string) []string {
	var out []string
	for _, m := range journalmatch {
		out = append(out, strings.Fields(m)...)
	}
	return out
}

// Journalmatch returns a loaded fail2ban filter's journalmatch lines.
func Journalmatch(e any) []string {
	en, ok := e.(*engine)
	if !ok {
		return nil
	}
	en.mu.Lock()
	defer en.mu.Unlock()
	if c := en.byMode[en.def]; c != nil {
		return c.def.Journalmatch
	}
	return nil
}
