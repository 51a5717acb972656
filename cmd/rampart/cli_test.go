package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/daemon"
	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/firewall"
)

// hostileLog writes a log mixing good lines with the input the parsers must
// survive: binary garbage, a truncated stamp, invalid UTF-8, a future date,
// a 1 MiB line and an empty line.
func hostileLog(t *testing.T) string {
	lines := []string{
		"Nov 22 14:03:07 host sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2",
		"\x00\x01\x02binary\x00garbage",
		"Nov 22 14:03:0",
		"Nov 22 14:03:07 host sshd[2]: Failed password for r\xc3\x28oot from 192.0.2.2 port 22 ssh2",
		"2099-01-01T00:00:00Z host sshd[3]: Failed password for root from 192.0.2.3 port 22 ssh2",
		strings.Repeat("x", 1<<20),
		"Nov 22 14:03:09 host sshd[4]: Invalid user admin from 2001:db8::7 port 22",
		"",
	}
	p := filepath.Join(t.TempDir(), "hostile.log")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestTestCommandContract checks `rampart test` as DESIGN.md promises it.
func TestTestCommandContract(t *testing.T) {
	hostile := hostileLog(t)
	code, out, errs := runCLI("test", "--filter", "sshd", "--json", "--year", "2026", hostile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	got := jsonLines(t, out)
	// Lines 1, 4 (invalid UTF-8 in the user name) and 7 match; the binary,
	// truncated, future-dated, 1 MiB and empty lines do not, and nothing crashes.
	if len(got) != 3 || got[0]["line"] != 1.0 || got[1]["line"] != 4.0 || got[2]["line"] != 7.0 {
		t.Fatalf("matches = %v", got)
	}
	if got[0]["ip"] != "192.0.2.1" || got[0]["user"] != "root" || got[0]["kind"] != "auth-failure" || got[0]["time"] != "2026-11-22T14:03:07Z" && !strings.HasPrefix(got[0]["time"].(string), "2026-11-22T14:03:07") {
		t.Fatalf("first match = %v", got[0])
	}
	if got[2]["ip"] != "2001:db8::7" || got[2]["kind"] != "unknown-user" {
		t.Fatalf("IPv6 match = %v", got[2])
	}

	code, out, _ = runCLI("test", "--filter", "sshd", hostile)
	if code != 0 || !strings.Contains(out, "8 read, 3 matched, 3 skipped") {
		t.Fatalf("summary (exit %d):\n%s", code, out)
	}
	for _, reason := range []string{"record holds binary data", "time stamp more than a day in the future", "record longer than 16 KiB"} {
		if !strings.Contains(out, reason) {
			t.Errorf("summary does not count %q:\n%s", reason, out)
		}
	}

	code, _, errs = runCLI("test", "--filter", "sshdd", hostile)
	if code != 2 || !strings.Contains(errs, `unknown filter "sshdd"`) || !strings.Contains(errs, `did you mean "sshd"`) {
		t.Fatalf("unknown filter: exit %d, %q", code, errs)
	}
	if code, _, _ := runCLI("test", "--filter", "postfix", "--mode", "nonsense", hostile); code != 2 {
		t.Fatalf("unknown mode: exit %d", code)
	}
	if code, _, _ := runCLI("test", "--filter", "sshd", filepath.Join(t.TempDir(), "missing.log")); code != 1 {
		t.Fatalf("missing file: exit %d", code)
	}
}

// jsonLines decodes output of one JSON object per line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		objs = append(objs, m)
	}
	return objs
}

func TestCheckConfigAndHelp(t *testing.T) {
	if code, out, errs := runCLI("check-config"); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("check-config of the defaults: %d %s %s", code, out, errs)
	}
	if code, out, _ := runCLI("check-config", "--print-defaults"); code != 0 || !strings.Contains(out, "[jail.sshd]") {
		t.Fatalf("print-defaults: %d", code)
	}
	if code, out, _ := runCLI("--help"); code != 0 || !strings.Contains(out, "replay") {
		t.Fatalf("help: %d %s", code, out)
	}
	if code, _, errs := runCLI("replya"); code != 2 || !strings.Contains(errs, "did you mean 'rampart replay'") {
		t.Fatalf("typo: %d %s", code, errs)
	}
	if code, _, errs := runCLI("ban"); code != 2 || !strings.Contains(errs, "which address") {
		t.Fatalf("ban without address: %d %s", code, errs)
	}
}

// TestShowMissedBounded: --show-missed counts every suspicious line no rule
// matched but keeps only the first maxMissed for printing.
func TestShowMissedBounded(t *testing.T) {
	var b strings.Builder
	for i := range maxMissed + 5 {
		fmt.Fprintf(&b, "Nov 22 14:03:07 host sshd[%d]: error: kex_exchange_identification: banner line contains invalid characters\n", i)
	}
	b.WriteString("Nov 22 14:03:08 host sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2\n")
	p := filepath.Join(t.TempDir(), "missed.log")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("test", "--filter", "sshd", "--show-missed", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, fmt.Sprintf("Missed:   %d lines", maxMissed+5)) || !strings.Contains(out, "... and 5 more") {
		t.Fatalf("summary:\n%s", out[max(0, len(out)-2000):])
	}
	if n := strings.Count(out, "kex_exchange_identification"); n != maxMissed {
		t.Fatalf("%d missed lines printed, want %d", n, maxMissed)
	}
}

// TestCheckConfigHost: check-config fails on what run would fail on or do
// without, and warns (exit 0) where run waits.
func TestCheckConfigHost(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing.log")
	tests := []struct {
		name, toml string
		code       int
		stderr     []string
		stdout     string
	}{
		{"no jail", "[daemon]\nlog_level = \"debug\"\n", 1,
			[]string{"error: " + filepath.Join(dir, "no jail.toml") + ": no enabled jail: nothing would be watched", "rampart check-config: " + filepath.Join(dir, "no jail.toml") + ": 1 error"}, ""},
		{"missing log", "[jail.sshd]\nfiles = [\"" + missing + "\"]\n", 0,
			[]string{"warning: " + filepath.Join(dir, "missing log.toml") + `:2: jail "sshd": ` + missing + " does not exist (yet)"}, "OK (1 enabled jail, 1 warning)"},
		{"missing ASN database", "[jail.sshd]\nfiles = [\"" + missing + "\"]\n[asn]\ndatabase = \"/nonexistent/GeoLite2-ASN.mmdb\"\n", 1,
			[]string{"error: " + filepath.Join(dir, "missing ASN database.toml") + ":4: geo: ASN database /nonexistent/GeoLite2-ASN.mmdb", ": 1 error"}, ""},
		{"unreadable auth_file", "[jail.dovecot]\nfiles = [\"" + missing + "\"]\n[dovecot_policy]\nlisten = \"127.0.0.1:10024\"\nauth_file = \"" + dir + "\"\n", 1,
			[]string{":5: dovecot policy server: auth_file: read " + dir + ": is a directory"}, ""},
		{"listen address elsewhere", "[jail.sshd]\nsyslog = true\n[syslog]\nudp = \"198.51.100.9:514\"\n", 1,
			[]string{":4: 198.51.100.9 is not an address of this host", "warning: ", "syslog has no authentication"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if os.Getenv("RAMPART_DOVECOT_AUTH") != "" {
				t.Skip("RAMPART_DOVECOT_AUTH replaces auth_file")
			}
			p := write(tt.name+".toml", tt.toml)
			code, out, errs := runCLI("check-config", p)
			if code != tt.code || !strings.Contains(out, tt.stdout) {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(errs, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errs)
				}
			}
		})
	}
}

// TestReplayOwnAddresses: replay's allowlist is the daemon's, the host's
// own addresses included, so it bans exactly what the daemon would: with
// loopback = false, failures from 127.0.0.1 (this host) are not banned,
// those from 127.0.0.2 are. (replay used to build its own allowlist
// without the host's addresses and banned both.)
func TestReplayOwnAddresses(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "r.toml")
	log := filepath.Join(dir, "auth.log")
	var b strings.Builder
	for i := range 5 {
		for _, a := range []string{"127.0.0.1", "127.0.0.2"} {
			fmt.Fprintf(&b, "Nov 22 14:03:%02d host sshd[1]: Failed password for root from %s port 22 ssh2\n", i, a)
		}
	}
	if err := os.WriteFile(log, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("[allow]\nloopback = false\n[jail.sshd]\nfiles = [\""+log+"\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("replay", "--json", "--year", "2026", "--config", cfg, log)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.Contains(out, `"ip":"127.0.0.1"`) || !strings.Contains(out, `"ip":"127.0.0.2"`) {
		t.Fatalf("decisions:\n%s", out)
	}
}

// TestReplayErrors: one "replay:" in an error, said by the command.
func TestReplayErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.log")
	code, _, errs := runCLI("replay", missing)
	if want := "rampart replay: open " + missing + ": no such file or directory\n"; code != 1 || errs != want {
		t.Fatalf("exit %d, stderr %q; want %q", code, errs, want)
	}
}

// TestReplayProgress: a long replay shows its progress on standard error
// when that is a terminal (a pseudo-terminal here), and never otherwise.
func TestReplayProgress(t *testing.T) {
	log := filepath.Join(t.TempDir(), "auth.log")
	var b strings.Builder
	for i := range 3 * 8192 {
		fmt.Fprintf(&b, "Nov 22 14:%02d:%02d host sshd[1]: Connection closed by 192.0.2.%d port 22\n", i/60%60, i%60, i%250+1)
	}
	if err := os.WriteFile(log, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("replay", "--year", "2026", log)
	if code != 0 || errs != "" || !strings.HasPrefix(out, "24576 lines") {
		t.Fatalf("not a terminal: exit %d, stderr %q, stdout %q", code, errs, out)
	}

	master, tty := openPTY(t)
	got := make(chan string)
	go func() {
		all, _ := io.ReadAll(master) // until the terminal is closed (EIO)
		got <- string(all)
	}()
	var stdout bytes.Buffer
	code = run([]string{"replay", "--year", "2026", log}, &stdout, tty)
	tty.Close()
	screen := <-got
	if code != 0 || !strings.Contains(screen, "\rreplay: 8192 lines, 0 skipped, 0 events, 0 decisions") || !strings.HasSuffix(screen, "\r\x1b[K") {
		t.Fatalf("exit %d, terminal showed %q", code, screen)
	}
	if !strings.HasPrefix(stdout.String(), "24576 lines") {
		t.Fatalf("stdout %q", stdout.String())
	}
}

// openPTY opens a pseudo-terminal: its master side and its terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

// TestShowMissedJSON: with --json, --show-missed prints each missed line as
// an object marked "missed", in line order with the matches (it used to
// print nothing).
func TestShowMissedJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "auth.log")
	lines := "Nov 22 14:03:07 host sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2\n" +
		"Nov 22 14:03:08 host sshd[2]: error: kex_exchange_identification: banner line contains invalid characters\n" +
		"Nov 22 14:03:09 host sshd[3]: Accepted publickey for alice from 192.0.2.2 port 22 ssh2\n"
	if err := os.WriteFile(p, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("test", "--filter", "sshd", "--json", "--show-missed", "--year", "2026", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	got := jsonLines(t, out)
	if len(got) != 2 || got[0]["ip"] != "192.0.2.1" || got[0]["missed"] != nil {
		t.Fatalf("objects %v", got)
	}
	m := got[1]
	if m["line"] != 2.0 || m["missed"] != true || !strings.HasPrefix(m["time"].(string), "2026-11-22T14:03:08") ||
		m["text"] != strings.Split(lines, "\n")[1] {
		t.Fatalf("missed line as %v", m)
	}
}

// TestFiltersList: `rampart filters` shows every filter's programs and
// aliases (it used to show neither).
func TestFiltersList(t *testing.T) {
	code, out, errs := runCLI("filters")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	reg, err := filter.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	for _, b := range strings.Split(out, "\n\n") {
		name, _, _ := strings.Cut(b, "\n")
		blocks[name] = strings.TrimSuffix(b, "\n") + "\n"
	}
	for _, f := range reg.Filters() {
		b, ok := blocks[f.Name]
		if !ok {
			t.Errorf("filter %s not listed", f.Name)
			continue
		}
		programs := "any"
		if len(f.Programs) > 0 {
			programs = strings.Join(f.Programs, ", ")
		}
		if !strings.Contains(b, "\n  programs  "+programs+"\n") || !strings.Contains(b, f.Description) {
			t.Errorf("filter %s:\n%s", f.Name, b)
		}
	}
	if len(reg.Aliases()) == 0 {
		t.Fatal("no aliases to list")
	}
	for _, a := range reg.Aliases() {
		if !strings.Contains(blocks[a.Filter], fmt.Sprintf("%s (mode %s)", a.Name, a.Mode)) {
			t.Errorf("alias %s not listed under %s:\n%s", a.Name, a.Filter, blocks[a.Filter])
		}
	}
	if !strings.Contains(blocks["sshd"], "  modes     normal (default), ddos") {
		t.Errorf("sshd modes:\n%s", blocks["sshd"])
	}
}

// runDaemonInProcess runs a daemon for the configuration file (see
// dryRunConfig), its options changed by opts, until the test ends, and
// returns once it answers on its control socket.
func runDaemonInProcess(t *testing.T, cfgPath string, opts ...func(*daemon.Options)) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	o := daemon.Options{Config: cfg, Logger: log, Enforcer: firewall.NewLog(log), EnforcerName: "log"}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	// Closed before done is told: the test's end waits for all of it.
	go func() { err := d.Run(ctx, nil); d.Close(); done <- err }()
	t.Cleanup(func() { cancel(); <-done })
	c := daemon.NewClient(cfg.Daemon.Socket)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Status(ctx); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon does not answer on its socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClientSystemConfig: without --socket or --config, the client
// commands read the socket's path from /etc/rampart/rampart.toml when it
// exists (systemConfig here), as the systemd unit's daemon uses it; they
// used to try the embedded default socket. And a ban in a jail with
// bantime = -1 is said to be permanent.
func TestClientSystemConfig(t *testing.T) {
	cfgPath, _, _ := dryRunConfig(t, t.TempDir())
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("bantime = -1\n") // in [jail.sshd], the last table
	f.Close()
	runDaemonInProcess(t, cfgPath)
	old := systemConfig
	systemConfig = cfgPath
	t.Cleanup(func() { systemConfig = old })

	if code, out, errs := runCLI("status"); code == 1 || !strings.Contains(out, "sshd") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := runCLI("ban", "192.0.2.9", "--jail", "sshd")
	if code != 0 || out != "banned 192.0.2.9 until revoked (a permanent ban)\n" {
		t.Fatalf("ban: exit %d, %q %s", code, out, errs)
	}
	if code, out, errs := runCLI("unban", "192.0.2.9"); code != 0 || out != "unbanned 192.0.2.9\n" {
		t.Fatalf("unban: exit %d, %q %s", code, out, errs)
	}

	systemConfig = filepath.Join(t.TempDir(), "absent.toml")
	def := config.Default().Daemon.Socket
	if code, _, errs := runCLI("status"); code != 1 || !strings.Contains(errs, def) {
		t.Fatalf("without the system configuration: exit %d, want the default socket %s in %q", code, def, errs)
	}
	broken := filepath.Join(t.TempDir(), "broken.toml")
	os.WriteFile(broken, []byte("[daemon]\nsockt = \"/x\"\n"), 0o644)
	systemConfig = broken
	if code, _, errs := runCLI("unban", "192.0.2.9"); code != 1 || !strings.Contains(errs, `unknown key "sockt" (did you mean "socket"?)`) || !strings.Contains(errs, "--socket gives it instead") {
		t.Fatalf("broken system configuration: exit %d, %q", code, errs)
	}
}

// TestFlagsAnywhere: flags may come before, between and after the other
// arguments, as people type them; "--" ends the flags.
func TestFlagsAnywhere(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		json      bool
		filter    string
		rest      string
		wantError string
	}{
		{args: []string{"a.log", "--json"}, json: true, rest: "a.log"},
		{args: []string{"--json", "a.log", "b.log"}, json: true, rest: "a.log b.log"},
		{args: []string{"a.log", "--filter", "sshd", "b.log", "--json"}, json: true, filter: "sshd", rest: "a.log b.log"},
		{args: []string{"a.log", "-", "--filter=sshd"}, filter: "sshd", rest: "a.log -"},
		{args: []string{"a.log", "--", "--json", "-x"}, rest: "a.log --json -x"},
		{args: []string{"--", "a.log"}, rest: "a.log"},
		{args: nil, rest: ""},
		{args: []string{"a.log", "--nope"}, wantError: "flag provided but not defined: -nope"},
		{args: []string{"a.log", "--filter"}, wantError: "flag needs an argument: -filter"},
	} {
		fs := newFlags("x", "", "", io.Discard)
		asJSON := fs.Bool("json", false, "")
		filter := fs.String("filter", "", "")
		err := parseFlags(fs, tc.args)
		if tc.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Errorf("%q: error %v, want %q", tc.args, err, tc.wantError)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if *asJSON != tc.json || *filter != tc.filter || strings.Join(fs.Args(), " ") != tc.rest {
			t.Errorf("%q: json %v, filter %q, arguments %q; want %v, %q, %q", tc.args, *asJSON, *filter, fs.Args(), tc.json, tc.filter, tc.rest)
		}
	}
	// The commands read them so: an address after its flags, a log after
	// --json, and a stray second address refused.
	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--json", "testdata/none.log", "--nope"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "-nope") {
		t.Errorf("replay with an unknown flag after the file: exit %d, %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"ban", "--for", "1h", "192.0.2.7", "192.0.2.8"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unexpected argument "192.0.2.8"`) {
		t.Errorf("ban with two addresses: exit %d, %s", code, errb.String())
	}
}
