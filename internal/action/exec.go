package action

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"text/template"
	"time"
)

// Exec runs a program for each event. Without a shell, Argv are the
// program and its arguments, each a template given the event's fields as
// they are: one argument stays one argument whatever it holds. With
// Shell, Argv is one template run by /bin/sh -c, its fields shell-quoted
// (in single quotes, a quote in a value closed, escaped and reopened),
// so that nothing an attacker chose (a user name in a reason) is read as
// shell syntax. The program runs in a process group of its own with a
// minimal environment (PATH, LANG and RAMPART_* variables
// holding the fields), standard input from /dev/null; at the timeout the
// whole group is killed. Its output (the first 4 KiB) goes to the log
// when it fails.
type Exec struct {
	Argv  []*template.Template
	Shell bool
}

// Command returns the argument vector run for ev.
func (x *Exec) Command(ev Event) ([]string, error) {
	fields := ev.Fields()
	if x.Shell {
		for k, v := range fields {
			fields[k] = shellQuote(v)
		}
	}
	var argv []string
	for _, t := range x.Argv {
		var b bytes.Buffer
		if err := t.Execute(&b, fields); err != nil {
			return nil, err
		}
		argv = append(argv, b.String())
	}
	if x.Shell {
		return []string{"/bin/sh", "-c", argv[0]}, nil
	}
	return argv, nil
}

func (x *Exec) Handle(ctx context.Context, ev Event) error {
	argv, err := x.Command(ev)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	for k, v := range ev.Fields() {
		cmd.Env = append(cmd.Env, "RAMPART_"+envName(k)+"="+strings.ReplaceAll(v, "\x00", ""))
	}
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	ownGroup(cmd)
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: killed at the timeout: %w", argv[0], ctx.Err())
		}
		return fmt.Errorf("%s: %w: %s", argv[0], err, strings.TrimSpace(out.String()))
	}
	return nil
}

// envName turns a field name into an environment variable's: DurationS
// is DURATION_S, IP is IP.
func envName(k string) string {
	var b strings.Builder
	prev := rune(0)
	for _, r := range k {
		if r >= 'A' && r <= 'Z' && prev >= 'a' && prev <= 'z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
		prev = r
	}
	return strings.ToUpper(b.String())
}

// shellQuote quotes s for /bin/sh: in single quotes, each single quote
// in s closing the quotes, escaped with a backslash, and reopening them.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct{ b bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return l.b.String() }
