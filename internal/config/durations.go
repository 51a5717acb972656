package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Duration is a time.Duration in the configuration file: a string of
// numbers with units ("90s", "10m", "1h30m", "1d12h", "2w"), or a bare
// number of seconds (bantime = 3600, as in fail2ban). -1 (a number or
// "-1") is Permanent: a ban until revoked, allowed only where the key's
// range says so.
type Duration time.Duration

// Permanent is a ban time meaning "until revoked" (fail2ban's -1).
const Permanent = Duration(-1)

// D returns the value as a time.Duration; Permanent is negative.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Permanent reports whether d means a ban until revoked.
func (d Duration) Permanent() bool { return d < 0 }

// UnmarshalTOML reads a duration from its TOML text: an integer (seconds)
// or a string. Errors point at the value, so they carry the file's line
// and the key.
func (d *Duration) UnmarshalTOML(raw []byte) error {
	var v struct{ V any }
	if err := toml.Unmarshal(append([]byte("V = "), raw...), &v); err != nil {
		return &unstable.ParserError{Highlight: raw, Message: fmt.Sprintf("bad duration %s (want e.g. 3600, \"90s\", \"10m\", \"1d12h\")", raw)}
	}
	var (
		n   time.Duration
		err error
	)
	switch x := v.V.(type) {
	case int64:
		if x == -1 {
			n = Permanent.D()
			break
		}
		n, err = seconds(x, string(raw))
	case string:
		n, err = parseDuration(x, true)
	default:
		err = fmt.Errorf("bad duration %s: want a whole number of seconds or a string such as \"90s\" or \"1d12h\"", raw)
	}
	if err != nil {
		return &unstable.ParserError{Highlight: raw, Message: err.Error()}
	}
	*d = Duration(n)
	return nil
}

// MarshalText writes the duration as ParseDuration reads it back ("1d12h",
// "90s"; "-1" for Permanent).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String formats the duration with the units of the configuration file.
func (d Duration) String() string {
	if d.Permanent() {
		return "-1"
	}
	return FormatDuration(time.Duration(d))
}

// FormatDuration writes a non-negative duration as the configuration file
// reads it, in the largest units that fit: "7d", "1d12h", "1h30m", "90s";
// below whole seconds as Go writes it ("1.5s", "500ms").
func FormatDuration(d time.Duration) string { return string(AppendDuration(nil, d)) }

// AppendDuration appends d to b as FormatDuration writes it.
func AppendDuration(b []byte, d time.Duration) []byte {
	switch {
	case d <= 0:
		return append(b, "0s"...)
	case d%time.Second != 0:
		return append(b, d.String()...)
	}
	for _, u := range units[1:] { // days and below: "14d" reads better than "2w"
		if n := d / u.size; n > 0 {
			b = append(strconv.AppendInt(b, int64(n), 10), u.name...)
			d -= n * u.size
		}
	}
	return b
}

// units are the suffixes ParseDuration knows, largest first.
var units = []struct {
	name string
	size time.Duration
	long []string // fail2ban's spellings, also accepted
}{
	{"w", 7 * 24 * time.Hour, []string{"week", "weeks"}},
	{"d", 24 * time.Hour, []string{"day", "days"}},
	{"h", time.Hour, []string{"hour", "hours"}},
	{"m", time.Minute, []string{"min", "mins", "minute", "minutes"}},
	{"s", time.Second, []string{"sec", "secs", "second", "seconds"}},
	{"ms", time.Millisecond, nil},
}

// ParseDuration parses a non-negative duration: numbers with units (w, d,
// h, m, s, ms, or spelt out: "2 days"), each optionally with a fraction
// ("1d12h", "1h 30m", "1.5d", "500ms"), or a bare number of seconds
// ("3600").
// Values past about 290 years are an error, never a wrap-around.
func ParseDuration(s string) (time.Duration, error) { return parseDuration(s, false) }

// parseDuration is ParseDuration; with permanent, "-1" is Permanent.
func parseDuration(s string, permanent bool) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n == -1 && permanent {
			return Permanent.D(), nil
		}
		return seconds(n, strconv.Quote(s))
	}
	bad := func(why string) error {
		return fmt.Errorf("bad duration %q: %s (want e.g. \"90s\", \"10m\", \"1d12h\", or a number of seconds)", s, why)
	}
	if s == "" {
		return 0, bad("empty")
	}
	if s[0] == '-' {
		return 0, bad("negative")
	}
	var total float64
	for rest := s; rest != ""; rest = strings.TrimLeft(rest, " ") {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, bad("expected a number at " + strconv.Quote(rest))
		}
		num, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, bad(strconv.Quote(rest[:i]) + " is not a number")
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := 0
		for j < len(rest) && rest[j] >= 'a' && rest[j] <= 'z' {
			j++
		}
		size, ok := unitSize(rest[:j])
		if !ok {
			if j == 0 {
				return 0, bad("a unit must follow " + strconv.FormatFloat(num, 'f', -1, 64))
			}
			return 0, bad("unknown unit " + strconv.Quote(rest[:j]))
		}
		rest = rest[j:]
		total += num * float64(size)
		if total >= math.MaxInt64 {
			return 0, bad("too long")
		}
	}
	return time.Duration(total), nil
}

func unitSize(name string) (time.Duration, bool) {
	for _, u := range units {
		if u.name == name || slices.Contains(u.long, name) {
			return u.size, true
		}
	}
	return 0, false
}

// seconds converts a bare number of seconds; text names it in errors.
func seconds(n int64, text string) (time.Duration, error) {
	switch {
	case n < 0:
		return 0, fmt.Errorf("bad duration %s: negative (-1 alone means permanent, where a key allows it)", text)
	case n > math.MaxInt64/int64(time.Second):
		return 0, fmt.Errorf("bad duration %s: too long", text)
	}
	return time.Duration(n) * time.Second, nil
}
