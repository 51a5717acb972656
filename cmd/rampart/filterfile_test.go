package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOwnAndFail2banFilters: a filter of the server's own (TOML and
// fail2ban's format) is listed by 'rampart filters' and testable with
// --filter-file; a name no built-in filter has is read from fail2ban's
// filter.d, with the same --mode and --json output.
func TestOwnAndFail2banFilters(t *testing.T) {
	dir := t.TempDir()
	own := filepath.Join(dir, "filters.d")
	if err := os.Mkdir(own, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(own, "myapp.toml"), `name = "myapp"
description = "My application's login failures"
programs = ["myapp"]
[[rule]]
kind = "auth-failure"
patterns = ["login failed for <USER> from <HOST>"]
`)
	writeTestFile(t, filepath.Join(own, "legacy.conf"), `[Definition]
failregex = ^\s*\S+ legacy\[\d+\]: denied <F-USER>\S+</F-USER> from <HOST>$
`)
	log := filepath.Join(dir, "app.log")
	writeTestFile(t, log, "Jan  2 10:00:00 h myapp[1]: login failed for bob from 192.0.2.1\n"+
		"Jan  2 10:00:01 h legacy[2]: denied eve from 192.0.2.2\n"+
		"Jan  2 10:00:02 h sshd[3]: Failed password for root from 192.0.2.3 port 22 ssh2\n")

	code, out, errs := runCLI("filters", "--filters-dir", own)
	if code != 0 {
		t.Fatalf("filters: exit %d: %s", code, errs)
	}
	for _, want := range []string{"myapp\n  My application's login failures", "file      " + filepath.Join(own, "myapp.toml"), "legacy\n", "file      " + filepath.Join(own, "legacy.conf")} {
		if !strings.Contains(out, want) {
			t.Errorf("filters output lacks %q:\n%s", want, out)
		}
	}

	for _, tc := range []struct {
		args []string
		ip   string
	}{
		{[]string{"--filter-file", filepath.Join(own, "myapp.toml")}, "192.0.2.1"},
		{[]string{"--filter-file", filepath.Join(own, "legacy.conf")}, "192.0.2.2"},
		{[]string{"--filters-dir", own, "--filter", "legacy"}, "192.0.2.2"},
	} {
		args := append([]string{"test", "--json"}, tc.args...)
		code, out, errs := runCLI(append(args, log)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errs)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &m); err != nil || m["ip"] != tc.ip {
			t.Errorf("%v: got %q (%v), want one match of %s", tc.args, out, err, tc.ip)
		}
	}

	// A fail2ban configuration of our own: the name falls back to it.
	f2b := filepath.Join(dir, "fail2ban")
	if err := os.MkdirAll(filepath.Join(f2b, "filter.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(f2b, "filter.d", "shout.conf"), `[Definition]
mode = normal
failregex = <re-<mode>>
re-normal = ^\s*\S+ legacy\[\d+\]: denied eve from <HOST>$
re-loud = ^\s*\S+ legacy\[\d+\]: DENIED from <HOST>$
`)
	code, out, errs = runCLI("test", "--json", "--filters-dir", "", "--fail2ban-dir", f2b, "--filter", "shout", log)
	if code != 0 || !strings.Contains(out, `"ip":"192.0.2.2"`) {
		t.Errorf("fallback: exit %d, out %q, err %s", code, out, errs)
	}
	code, _, errs = runCLI("test", "--fail2ban-dir", f2b, "--filter", "shout", "--mode", "nosuch", log)
	if code != 2 || !strings.Contains(errs, "no mode") {
		t.Errorf("unknown mode: exit %d, %s", code, errs)
	}
	code, _, errs = runCLI("test", "--fail2ban-dir", f2b, "--filter", "nosuch", log)
	if code != 2 || !strings.Contains(errs, `unknown filter "nosuch"`) {
		t.Errorf("unknown filter: exit %d, %s", code, errs)
	}
}

func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
