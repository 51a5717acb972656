package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// decodeError turns the decoder's error into file:line: [jail "x": ]message,
// with a "did you mean" hint for an unknown key.
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
		if s := Closest(last, keysAt(key[:len(key)-1])); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return fmt.Errorf("%s:%d: %s%s", file, row, where, msg)
	}
	if len(key) > 0 {
		return fmt.Errorf("%s:%d: %skey %q: %s", file, row, where, strings.Join(key, "."), msg)
	}
	return fmt.Errorf("%s:%d: %s", file, row, msg)
}

// Errorf formats an error about the dotted key ("dovecot_policy.auth_file",
// "jail.sshd.files") as configuration errors are: file:line: [jail "x": ]
// message, at the line of the key or of its nearest written parent. For
// the checks done outside this package (rampart check-config's).
func (c *Config) Errorf(key, format string, args ...any) error { return c.errorf(key, format, args...) }

// errorf is Errorf.
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
		file = defaultFile
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
