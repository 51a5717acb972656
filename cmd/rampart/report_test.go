package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/store"
)

// seedReportStore writes a store whose aggregates say: n failures of root
// from country cc in jail sshd, and one ban, in the hour at.
func seedReportStore(t *testing.T, dir, cc string, n int64, at time.Time) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rampart.db")
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows := []store.HourlyRow{
		{Hour: at, Jail: "sshd", Dim: store.DimTotal, Failures: n, Bans: 1},
		{Hour: at, Jail: "sshd", Dim: store.DimCountry, Key: cc, Failures: n, Bans: 1},
		{Hour: at, Jail: "sshd", Dim: store.DimUser, Key: "root", Failures: n},
		{Hour: at, Jail: "sshd", Dim: store.DimScenario, Key: "ip-failures", Bans: 1},
	}
	if err := st.AddHourly(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnqueueReport(context.Background(), store.Report{Reporter: "abuseipdb", Kind: "attack", Target: "192.0.2.1",
		State: store.ReportSent, Subject: []byte("{}"), Created: at}, time.Hour); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReportCommand(t *testing.T) {
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	a := seedReportStore(t, filepath.Join(dir, "a"), "NL", 5, at)
	b := seedReportStore(t, filepath.Join(dir, "b"), "CN", 7, at.Add(time.Hour))
	noConfig := filepath.Join(dir, "none.toml")
	os.WriteFile(noConfig, []byte("[jail.sshd]\nfiles = [\"/var/log/auth.log\"]\n"), 0o644)

	code, out, errs := runCLI("report", "--config", noConfig, "--state-dir", filepath.Join(dir, "a"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"failures 5, bans 1", "NL", "root", "ip-failures", "2026-03-02 08:00", "Reports queued", "abuseipdb        1     1"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}

	code, out, errs = runCLI("report", "--config", noConfig, "--json", "--merge", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Failures  int64 `json:"failures"`
		Bans      int64 `json:"bans"`
		Countries []struct {
			Key      string `json:"key"`
			Failures int64  `json:"failures"`
		} `json:"countries"`
		Stores  []string `json:"stores"`
		Reports []struct {
			Reporter string `json:"reporter"`
			Sent     int    `json:"sent"`
		} `json:"reports"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if r.Failures != 12 || r.Bans != 2 || len(r.Countries) != 2 || r.Countries[0].Key != "CN" || len(r.Stores) != 2 ||
		len(r.Reports) != 1 || r.Reports[0].Reporter != "abuseipdb" || r.Reports[0].Sent != 2 {
		t.Fatalf("merged report = %+v", r)
	}

	code, out, errs = runCLI("report", "--config", noConfig, "--csv", "--since", "2026-03-02T09:00:00Z", "--jail", "sshd", "--merge", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("--csv: %v\n%s", err, out)
	}
	if strings.Join(recs[0], ",") != "section,key,label,failures,bans,share" || strings.Join(recs[1], ",") != "total,,,7,1," {
		t.Fatalf("csv since 09:00:\n%s", out)
	}

	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--json", "--csv"}, 2, "cannot be combined"},
		{[]string{"--since", "yesterday"}, 2, "neither a time"},
		{[]string{"--since", "2026-03-02", "--until", "2026-03-01"}, 2, "is not after"},
		{[]string{a, b}, 2, "add --merge"},
		{[]string{"--merge"}, 2, "needs the stores"},
		{[]string{"--merge", filepath.Join(dir, "missing.db")}, 1, "no such file"},
		{[]string{"--state-dir", filepath.Join(dir, "never-ran")}, 1, "rampart run has not kept its state there"},
	} {
		code, _, errs := runCLI(append([]string{"report", "--config", noConfig}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.err) {
			t.Errorf("report %v: exit %d, %q; want %d and %q", c.args, code, errs, c.code, c.err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); err == nil {
		t.Error("a report created the store it was asked to read")
	}
}

func TestPlaceText(t *testing.T) {
	for _, c := range []struct {
		p    store.Place
		want string
	}{
		{store.Place{Country: "NL", ASN: 64500, Org: "Example Hosting"}, `NL, AS64500 "Example Hosting"`},
		{store.Place{ASN: 64501}, "AS64501"},
		{store.Place{Country: "CN"}, "CN"},
		{store.Place{Country: "CN", ASN: 1, Org: "Evil\x1b[2J"}, `CN, AS1 "Evil\x1b[2J"`},
	} {
		if got := placeText(c.p); got != c.want {
			t.Errorf("placeText(%+v) = %q, want %q", c.p, got, c.want)
		}
	}
}
