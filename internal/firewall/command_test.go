package firewall

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// fakeClock is a settable clock for the in-memory backends.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// newTouchCommand returns a Command whose templates record every tag in
// dir/ban.log and dir/unban.log and touch dir/start and dir/stop.
func newTouchCommand(t *testing.T, dir string) (*Command, *fakeClock) {
	t.Helper()
	q := shellQuote(dir)
	record := `printf '%s|%s|%s|%s|%s|%s|%s|%s\n' <ip> <cidr> <family> <time> <bantime> <jail> <scenario> <reason> >> ` + q
	c, err := NewCommand(context.Background(), CommandConfig{
		Ban:   record + "/ban.log",
		Unban: record + "/unban.log",
		Start: "touch " + q + "/start",
		Stop:  "touch " + q + "/stop",
	})
	if err != nil {
		t.Fatalf("NewCommand: %v", err)
	}
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c.now = clk.now
	return c, clk
}

func TestCommandTemplates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, clk := newTouchCommand(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "start")); err != nil {
		t.Errorf("start command did not run: %v", err)
	}
	ds := []event.Decision{
		{Target: pfx("192.0.2.1"), Action: event.Ban, Duration: time.Hour, Jail: "sshd", Scenario: "ip-failures", Reason: "5 failures in 10m"},
		{Target: pfx("2001:db8::/48"), Action: event.Ban, Jail: "sshd", Scenario: "prefix", Reason: "many"},
		{Target: netip.PrefixFrom(netip.MustParseAddr("::ffff:198.51.100.7"), 128), Action: event.Ban, Duration: 90 * time.Second},
		{Target: pfx("203.0.113.9"), Action: event.Trap, Duration: time.Hour}, // not a ban: nothing runs
	}
	if err := c.Apply(ctx, ds); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []string{
		"192.0.2.1|192.0.2.1/32|inet|1700000000|3600|sshd|ip-failures|5 failures in 10m",
		"2001:db8::/48|2001:db8::/48|inet6|1700000000|0|sshd|prefix|many",
		"198.51.100.7|198.51.100.7/32|inet|1700000000|90|||",
	}
	if got := readLines(t, filepath.Join(dir, "ban.log")); !slices.Equal(got, want) {
		t.Errorf("ban commands ran with\n%q\nwant\n%q", got, want)
	}

	// Re-applying refreshes the end in memory and runs nothing.
	clk.advance(30 * time.Minute)
	if err := c.Apply(ctx, ds[:1]); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, filepath.Join(dir, "ban.log")); len(got) != 3 {
		t.Errorf("re-apply ran the ban command again: %q", got)
	}
	checkActive(t, c, map[netip.Prefix]time.Duration{pfx("192.0.2.1"): time.Hour, pfx("2001:db8::/48"): 0})
	act, _ := c.Active(ctx)
	for _, d := range act {
		if d.Target == pfx("2001:db8::/48") && (d.Scenario != "prefix" || d.Jail != "sshd" || d.Reason != "many") {
			t.Errorf("Active lost the decision's details: %+v", d)
		}
	}

	// The 90 s ban expired; the next Revoke unbans it, and revokes one.
	if err := c.Revoke(ctx, []netip.Prefix{pfx("192.0.2.1"), pfx("192.0.2.200"), pfx("10.0.0.0/8")}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	unb := readLines(t, filepath.Join(dir, "unban.log"))
	slices.Sort(unb)
	wantUnban := []string{
		"192.0.2.1|192.0.2.1/32|inet|1700001800|3600|sshd|ip-failures|5 failures in 10m",
		"198.51.100.7|198.51.100.7/32|inet|1700000000|90|||",
	}
	if !slices.Equal(unb, wantUnban) {
		t.Errorf("unban commands ran with\n%q\nwant\n%q", unb, wantUnban)
	}
	checkActive(t, c, map[netip.Prefix]time.Duration{pfx("2001:db8::/48"): 0})

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "stop")); err != nil {
		t.Errorf("stop command did not run: %v", err)
	}
	if err := c.Apply(ctx, ds); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v, want ErrClosed", err)
	}
}

// TestCommandHostileValues proves that attacker-influenced values cannot
// escape their quotes and run commands.
func TestCommandHostileValues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	_, literalExisted := os.Stat("/tmp/pwned")
	hostile := []string{
		`x'; touch /tmp/pwned; '`,
		`x'; touch ` + pwned + `; '`,
		`'"'"'; touch ` + pwned + `; echo '`,
		`$(touch ` + pwned + `)`,
		"`touch " + pwned + "`",
		`"; touch ` + pwned + `; "`,
		"a\ntouch " + pwned + "\n",
		`\'; touch ` + pwned + `; #`,
		"x'\x00; touch " + pwned + "; '",
		`<ip>; touch ` + pwned,
	}
	c, err := NewCommand(ctx, CommandConfig{
		Ban: `printf '%s\n' <reason> >> ` + shellQuote(dir) + `/reasons; printf '%s\n' <jail> >> ` + shellQuote(dir) + `/jails`,
	})
	if err != nil {
		t.Fatal(err)
	}
	var ds []event.Decision
	for i, h := range hostile {
		ds = append(ds, event.Decision{
			Target: event.AddrPrefix(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})),
			Action: event.Ban, Duration: time.Hour, Reason: h, Jail: h, Scenario: h,
		})
	}
	if err := c.Apply(ctx, ds); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a hostile value ran a command")
	}
	if literalExisted != nil {
		if _, err := os.Stat("/tmp/pwned"); err == nil {
			os.Remove("/tmp/pwned")
			t.Fatal("the hostile reason created /tmp/pwned")
		}
	}
	// Each value arrived intact as one argument (NUL dropped).
	b, err := os.ReadFile(filepath.Join(dir, "reasons"))
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, h := range hostile {
		want.WriteString(strings.ReplaceAll(h, "\x00", "") + "\n")
	}
	if string(b) != want.String() {
		t.Errorf("reasons arrived as\n%q\nwant\n%q", b, want.String())
	}
}

func TestCommandFailures(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := NewCommand(ctx, CommandConfig{
		Ban:     `case <ip> in 192.0.2.66) echo refused >&2; exit 3;; 192.0.2.77) sleep 30;; esac; touch ` + shellQuote(dir) + `/<ip>`,
		Unban:   `case <ip> in 192.0.2.2) exit 1;; esac; rm ` + shellQuote(dir) + `/<ip>`,
		Timeout: time.Second, // generous for a loaded machine; the sleep is killed
	})
	if err != nil {
		t.Fatal(err)
	}
	ds := []event.Decision{banFor(pfx("192.0.2.1"), time.Hour), banFor(pfx("192.0.2.66"), time.Hour), banFor(pfx("192.0.2.77"), time.Hour), banFor(pfx("192.0.2.2"), time.Hour)}
	start := time.Now()
	err = c.Apply(ctx, ds)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Apply error = %v, want the failing command's stderr", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("a hanging command was not killed after its timeout")
	}
	checkActive(t, c, map[netip.Prefix]time.Duration{pfx("192.0.2.1"): time.Hour, pfx("192.0.2.2"): time.Hour})

	// A failed unban keeps the target; the rest are revoked.
	if err := c.Revoke(ctx, []netip.Prefix{pfx("192.0.2.1"), pfx("192.0.2.2")}); err == nil {
		t.Error("Revoke with a failing unban succeeded")
	}
	checkActive(t, c, map[netip.Prefix]time.Duration{pfx("192.0.2.2"): time.Hour})
	if _, err := os.Stat(filepath.Join(dir, "192.0.2.1")); err == nil {
		t.Error("unban of 192.0.2.1 did not run")
	}

	if _, err := NewCommand(ctx, CommandConfig{}); err == nil {
		t.Error("NewCommand without a ban command succeeded")
	}
	if _, err := NewCommand(ctx, CommandConfig{Ban: "true", Start: "exit 1"}); err == nil {
		t.Error("NewCommand with a failing start command succeeded")
	}
}

func TestCommandAllowlist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, _ := newTouchCommand(t, dir)
	if err := c.Apply(ctx, []event.Decision{banFor(pfx("198.51.100.0/24"), time.Hour), banFor(pfx("203.0.113.5"), time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// The new allowlist touches the /24: it is unbanned.
	if err := c.SetAllow(ctx, []netip.Prefix{pfx("198.51.100.10"), pfx("::ffff:192.0.2.0/120")}); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, filepath.Join(dir, "unban.log")); len(got) != 1 || !strings.HasPrefix(got[0], "198.51.100.0/24|") {
		t.Errorf("unban after SetAllow: %q", got)
	}
	// Bans touching the allowlist are not run.
	if err := c.Apply(ctx, []event.Decision{banFor(pfx("192.0.2.7"), time.Hour), banFor(pfx("198.51.0.0/16"), time.Hour), banFor(pfx("203.0.113.6"), time.Hour)}); err != nil {
		t.Fatal(err)
	}
	checkActive(t, c, map[netip.Prefix]time.Duration{pfx("203.0.113.5"): time.Hour, pfx("203.0.113.6"): time.Hour})
}

// TestCommandCarveOuts checks how the command backend copes without a way
// to carve: a prefix holding a carved-out address is not banned, an active
// prefix ban is lifted when one of its addresses is carved out, and bans
// of the carved-out address itself still run.
func TestCommandCarveOuts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, clk := newTouchCommand(t, dir)
	wide := pfx("198.51.100.0/24")
	if err := c.Apply(ctx, []event.Decision{banFor(wide, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	good := netip.MustParseAddr("198.51.100.7")
	if err := c.Carve(ctx, []CarveOut{{Addr: good, Until: clk.now().Add(10 * time.Minute)}}); err != nil {
		t.Fatalf("Carve: %v", err)
	}
	if got := readLines(t, filepath.Join(dir, "unban.log")); len(got) != 1 || !strings.HasPrefix(got[0], "198.51.100.0/24|") {
		t.Errorf("carving out an address inside an active prefix ban: unban ran %q", got)
	}
	if err := c.Apply(ctx, []event.Decision{banFor(wide, time.Hour), banFor(pfx("198.51.100.0/25"), time.Hour), banFor(event.AddrPrefix(good), time.Hour)}); err != nil {
		t.Fatal(err)
	}
	checkActive(t, c, map[netip.Prefix]time.Duration{event.AddrPrefix(good): time.Hour})
	if cs, err := c.CarveOuts(ctx); err != nil || len(cs) != 1 || cs[0].Addr != good {
		t.Errorf("CarveOuts = %v, %v", cs, err)
	}
	if n := c.Stats().CarvedOut; n != 1 {
		t.Errorf("CarvedOut = %d, want 1", n)
	}
	// Once the carve-out has ended, the prefix can be banned.
	clk.advance(11 * time.Minute)
	if n := c.Stats().CarvedOut; n != 0 {
		t.Errorf("CarvedOut after the end = %d, want 0", n)
	}
	if err := c.Apply(ctx, []event.Decision{banFor(wide, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	checkActive(t, c, map[netip.Prefix]time.Duration{event.AddrPrefix(good): 49 * time.Minute, wide: time.Hour})
	if err := c.Uncarve(ctx, []netip.Addr{good}); err != nil {
		t.Fatal(err)
	}
	if err := c.Carve(ctx, []CarveOut{{Addr: netip.Addr{}}}); err == nil {
		t.Error("Carve of an invalid address succeeded")
	}
}

// TestCommandPerPort checks the port tags and that an address's per-port
// bans and its whole-host ban are separate bans, each run and unbanned.
func TestCommandPerPort(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q := shellQuote(dir)
	record := `printf '%s|%s|%s|%s|%s\n' <ip> <port> <protocol> <ports> <jail> >> ` + q
	c, err := NewCommand(ctx, CommandConfig{Ban: record + "/ban.log", Unban: record + "/unban.log"})
	if err != nil {
		t.Fatal(err)
	}
	ports := func(s string) []event.PortRange {
		ps, err := event.ParsePorts(s)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	ds := []event.Decision{
		{Target: pfx("192.0.2.1"), Action: event.Ban, Duration: time.Hour, Jail: "sshd", Ports: ports("22/tcp")},
		{Target: pfx("192.0.2.1"), Action: event.Ban, Duration: time.Hour, Jail: "postfix", Ports: ports("587/tcp,25/tcp,465/tcp")},
		{Target: pfx("192.0.2.1"), Action: event.Ban, Duration: time.Hour, Jail: "recidive"},
		{Target: pfx("192.0.2.2"), Action: event.Ban, Duration: time.Hour, Jail: "dns", Ports: ports("53/udp,53/tcp,6000-6010/tcp")},
		// A prefix ban is whole-host: its ports are dropped.
		{Target: pfx("198.51.100.0/24"), Action: event.Ban, Duration: time.Hour, Jail: "x", Ports: ports("22/tcp")},
	}
	if err := c.Apply(ctx, ds); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []string{
		"192.0.2.1|22|tcp|22/tcp|sshd",
		"192.0.2.1|25,465,587|tcp|25/tcp,465/tcp,587/tcp|postfix",
		"192.0.2.1||||recidive",
		"192.0.2.2|53,6000:6010|tcp,udp|53/tcp,6000-6010/tcp,53/udp|dns",
		"198.51.100.0/24||||x",
	}
	if got := readLines(t, filepath.Join(dir, "ban.log")); !slices.Equal(got, want) {
		t.Errorf("ban commands ran with\n%q\nwant\n%q", got, want)
	}
	act, err := c.Active(ctx)
	if err != nil || len(act) != 5 {
		t.Errorf("Active = %v, %v; want 5 bans", act, err)
	}
	if err := c.Revoke(ctx, []netip.Prefix{pfx("192.0.2.1")}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	wantUnban := []string{"192.0.2.1||||recidive", "192.0.2.1|22|tcp|22/tcp|sshd", "192.0.2.1|25,465,587|tcp|25/tcp,465/tcp,587/tcp|postfix"}
	if got := readLines(t, filepath.Join(dir, "unban.log")); !slices.Equal(got, wantUnban) {
		t.Errorf("unban commands ran with\n%q\nwant\n%q", got, wantUnban)
	}
	checkActive(t, c, map[netip.Prefix]time.Duration{pfx("192.0.2.2"): time.Hour, pfx("198.51.100.0/24"): time.Hour})
}
