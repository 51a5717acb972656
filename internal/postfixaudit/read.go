// Package postfixaudit reads Postfix's effective configuration, as
// postconf prints it, and reports what leaves the server open to abuse:
// relaying for anyone, password guessing in plain text or on port 25,
// unlimited connections and errors, recipient enumeration, and Rampart's
// own policy hooks missing, misplaced or failing closed.
package postfixaudit

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Config is Postfix's effective configuration: main.cf's parameters (every
// one, defaults included, with $names expanded) and master.cf's services,
// each with its effective parameters.
type Config struct {
	Main     map[string]string
	Services []Service
}

// Service is one master.cf entry.
type Service struct {
	Name    string // "smtp", "submission", "127.0.0.1:2525", "smtpd"
	Type    string // inet, unix, pass, ...
	Command string // smtpd, postscreen, anvil, ...
	Chroot  string // master.cf's chroot column: "y", "n" or "-"
	Line    string // as postconf -M prints it
	// Overrides are its -o parameters, expanded.
	Overrides map[string]string
}

// Param returns the service's effective value of a parameter: its -o
// override, else main.cf's.
func (c *Config) Param(s *Service, name string) string {
	if s != nil {
		if v, ok := s.Overrides[name]; ok {
			return v
		}
	}
	return c.Main[name]
}

// Runner runs postconf with args and returns its standard output.
type Runner func(ctx context.Context, args ...string) ([]byte, error)

// Postconf runs the postconf on PATH.
func Postconf(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "postconf", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("postconf %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Read asks postconf for the configuration in dir (as postconf -c DIR;
// "" is Postfix's default directory): every main.cf parameter expanded
// (postconf -x), the services (postconf -M) and their overrides
// (postconf -P -x).
func Read(ctx context.Context, dir string, run Runner) (*Config, error) {
	base := []string{}
	if dir != "" {
		base = append(base, "-c", dir)
	}
	mainOut, err := run(ctx, append(base, "-x")...)
	if err != nil {
		return nil, err
	}
	masterOut, err := run(ctx, append(base, "-M")...)
	if err != nil {
		return nil, err
	}
	overOut, err := run(ctx, append(base, "-P", "-x")...)
	if err != nil {
		return nil, err
	}
	return Parse(string(mainOut), string(masterOut), string(overOut))
}

// Parse builds a Config from the output of postconf -x, postconf -M and
// postconf -P -x. The overrides are taken from -M's lines too, so that
// postconf -M -x alone (overOut "") gives them, expanded.
func Parse(mainOut, masterOut, overOut string) (*Config, error) {
	c := &Config{Main: map[string]string{}}
	if err := eachParam(mainOut, func(name, value string) { c.Main[name] = value }); err != nil {
		return nil, fmt.Errorf("postconf -x: %w", err)
	}
	idx := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(masterOut))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		idx[f[0]+"/"+f[1]] = len(c.Services)
		c.Services = append(c.Services, Service{Name: f[0], Type: f[1], Command: f[7], Chroot: f[4], Line: strings.Join(f, " "), Overrides: masterOptions(sc.Text())})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("postconf -M: %w", err)
	}
	err := eachParam(overOut, func(key, value string) {
		// service/type/parameter
		parts := strings.SplitN(key, "/", 3)
		if len(parts) != 3 {
			return
		}
		if i, ok := idx[parts[0]+"/"+parts[1]]; ok {
			c.Services[i].Overrides[parts[2]] = value
		}
	})
	if err != nil {
		return nil, fmt.Errorf("postconf -P: %w", err)
	}
	return c, nil
}

// eachParam calls fn for each "name = value" line.
func eachParam(out string, fn func(name, value string)) error {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " = ")
		if !ok {
			name, ok = strings.CutSuffix(sc.Text(), " =")
			if !ok {
				continue
			}
			value = ""
		}
		fn(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	return sc.Err()
}

// masterOptions returns the -o options of a postconf -M line, among the
// command's arguments after the line's eight fields. postconf writes an
// option whose value has white space as -o {name=value}.
func masterOptions(line string) map[string]string {
	out := map[string]string{}
	rest := line
	for range 8 {
		rest = strings.TrimLeft(rest, " \t")
		end := strings.IndexAny(rest, " \t")
		if end < 0 {
			return out
		}
		rest = rest[end:]
	}
	for {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return out
		}
		arg := argument(rest)
		rest = rest[len(arg):]
		if arg != "-o" {
			continue
		}
		rest = strings.TrimLeft(rest, " \t")
		opt := argument(rest)
		rest = rest[len(opt):]
		if strings.HasPrefix(opt, "{") {
			opt = strings.TrimSuffix(opt[1:], "}")
		}
		if name, value, ok := strings.Cut(opt, "="); ok {
			out[strings.TrimSpace(name)] = strings.TrimSpace(value)
		}
	}
}

// argument returns the argument s starts with: up to white space, or a
// { … } group with the braces nested in it.
func argument(s string) string {
	if !strings.HasPrefix(s, "{") {
		if end := strings.IndexAny(s, " \t"); end >= 0 {
			return s[:end]
		}
		return s
	}
	depth := 0
	for i, r := range s {
		switch r {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return s[:i+1]
			}
		}
	}
	return s
}
