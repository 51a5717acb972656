package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/action"
	"github.com/rampart-dev/rampart/internal/policy/dovecot"
	"github.com/rampart-dev/rampart/internal/policy/postfix"
)

// fullStatus has every field set, so that the golden file shows every key.
func fullStatus() Status {
	t := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	return Status{
		Version: "v1.2.3", Started: t,
		Health: []Health{
			{Component: "store", State: HealthOK, Since: t},
			{Component: "source /var/log/auth.log", State: HealthDegraded, Detail: "missing", Since: t.Add(time.Minute)},
		},
		Reload:   ReloadStatus{Loaded: t, Reloads: 2, Failures: 1, LastError: "rampart.toml:3: unknown key", LastErrorAt: t.Add(time.Hour)},
		Firewall: FirewallStatus{Backend: "nftables", Applied: 10, Failed: 1, CarvedOut: 2, Repairs: 3, Restored: 4, Backlog: 5},
		Engine: EngineStatus{Tracked: 1, TrackedCap: 2, Evicted: 3, Offenders: 4, ActiveBans: 5, ActiveEvicted: 6, Events: 7, Ignored: 8,
			Allowlisted: 9, WhileBanned: 10, Successes: 11, KnownGood: 12, HotUsers: 13, Prefixes: 14, Surges: 15, Surge: true, Decisions: 16, Pending: 17},
		Insight: InsightStatus{Dropped: 18},
		Jails: []JailStatus{{Name: "sshd", MaxRetry: 5, FindTime: "10m0s", BanTime: "1h0m0s", Banned: 1, Ports: "22/tcp",
			Failing: 2, FailedTotal: 12, BannedTotal: 3}},
		Sources: []SourceState{{Source: "/var/log/auth.log", Jails: []string{"sshd"}, Lines: 100, Skipped: 2, Stale: 3}},
		Policy: &PolicyStatus{
			Postfix:       &postfix.Stats{Requests: 1, Delayed: 2, Rejected: 8, Blinded: 9, Parked: 3, Open: 4, Malformed: 5, Dropped: 6, Failed: 7},
			Dovecot:       &dovecot.Stats{Requests: 1, Rejected: 2, Delayed: 3, Reports: 4, Bad: 5, Unauthorized: 6},
			LogDuplicates: 8,
		},
		Evidence: &EvidenceStatus{Messages: 1, Indicators: 2, Problems: 3, Failed: 4},
		Reporting: &ReportingStatus{Dropped: 9, Reporters: []ReporterStatus{{Name: "abuseipdb", Mode: "review", Queued: 1, Duplicates: 2,
			Sent: 3, Failed: 4, Retried: 5, Limited: 6, Review: 7, Pending: 8, PausedUntil: t.Add(time.Minute)}}},
		Actions:     []action.Stats{{Name: "notify", Type: "webhook", Queued: 1, Done: 2, Failed: 3, Dropped: 4, Waiting: 5}},
		Active:      []Ban{{IP: "192.0.2.1", Action: "ban", Ports: "22/tcp", Jail: "sshd", Scenario: "ip-failures", Reason: "5 failures", Start: t, End: t.Add(time.Hour), Origin: "local"}},
		ActiveTotal: 1,
		Goroutines:  42,
	}
}

// TestStatusJSONGolden keeps the status JSON's keys, documented in
// docs/configuration.md, from drifting; all are snake_case.
func TestStatusJSONGolden(t *testing.T) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(fullStatus()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "status.golden.json")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("status JSON differs from %s (run with -update if intended, and update docs/configuration.md):\n%s", golden, buf.String())
	}
	var v any
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if !snake.MatchString(k) {
					t.Errorf("key %s.%s is not snake_case", path, k)
				}
				walk(path+"."+k, c)
			}
		case []any:
			for _, c := range x {
				walk(path+"[]", c)
			}
		}
	}
	walk("", v)
}

func TestStatusOfJail(t *testing.T) {
	h := startHarness(t, t.TempDir(), 3, "[jail.other]\nfilter = \"sshd\"\nfiles = [\""+filepath.Join(t.TempDir(), "other.log")+"\"]")
	h.fail(3, "198.51.100.7")
	h.waitFor("ban", func(st Status) bool { return banned(st, "198.51.100.7") })
	ctx := context.Background()
	if _, err := h.client.Ban(ctx, BanRequest{IP: "203.0.113.9", Jail: "other"}); err != nil {
		t.Fatal(err)
	}
	st, err := h.client.StatusOf(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Jails) != 1 || st.Jails[0].Name != "other" || len(st.Active) != 1 || st.Active[0].IP != "203.0.113.9" ||
		len(st.Sources) != 1 || st.Sources[0].Jails[0] != "other" {
		t.Fatalf("status of jail other: jails %+v, active %+v, sources %+v", st.Jails, st.Active, st.Sources)
	}
	if _, err := h.client.StatusOf(ctx, "nope"); !errors.Is(err, ErrUnknownJail) {
		t.Fatalf("unknown jail: %v", err)
	}
}

// TestStatusListsRecentBans: a status lists the most recent bans, as many
// as asked for, with their reasons, and counts them all; the jails' lines
// count them all too.
func TestStatusListsRecentBans(t *testing.T) {
	h := startHarness(t, t.TempDir(), 3, "")
	ctx := context.Background()
	ips := []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"}
	for i, ip := range ips {
		if _, err := h.client.Ban(ctx, BanRequest{IP: ip, Jail: "sshd", Reason: "by hand " + ip}); err != nil {
			t.Fatal(err)
		}
		if i < len(ips)-1 { // distinct start times, the engine's order
			time.Sleep(2 * time.Millisecond)
		}
	}
	for _, tc := range []struct {
		bans int
		want []string
	}{
		{-1, ips},
		{2, ips[1:]},
		{0, nil},
	} {
		st, err := h.client.StatusFor(ctx, StatusQuery{Bans: tc.bans})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, b := range st.Active {
			got = append(got, b.IP)
			if b.Reason != "by hand "+b.IP {
				t.Errorf("bans=%d: %s listed with reason %q", tc.bans, b.IP, b.Reason)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || st.ActiveTotal != len(ips) {
			t.Errorf("bans=%d: listed %v of %d, want %v of %d", tc.bans, got, st.ActiveTotal, tc.want, len(ips))
		}
		if len(st.Jails) != 1 || st.Jails[0].Banned != len(ips) {
			t.Errorf("bans=%d: jails %+v, want sshd with %d banned", tc.bans, st.Jails, len(ips))
		}
	}
	resp, err := h.client.StatusFor(ctx, StatusQuery{Jail: "sshd", Bans: 1})
	if err != nil || len(resp.Active) != 1 || resp.Active[0].IP != ips[2] || resp.ActiveTotal != 3 {
		t.Errorf("sshd, bans=1: %+v of %d, %v", resp.Active, resp.ActiveTotal, err)
	}
}
