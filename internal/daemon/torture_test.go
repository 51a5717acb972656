package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReloadTorture reloads 1,000 times, alternating a good configuration
// (with and without an allowlist entry, in turn), a broken one and one that
// validates but cannot start (a syslog address the host does not have),
// while lines stream into the followed log. No line may be lost (every
// failure written is an event), no ban dropped, and each allowlist change
// must be in force as soon as its reload returns.
func TestReloadTorture(t *testing.T) {
	reloads := 1000
	if testing.Short() {
		reloads = 90
	}
	dir := t.TempDir()
	quiet := "[surge]\nenabled = false\n[spray]\nenabled = false\n[slow]\nenabled = false"
	h := startHarness(t, dir, 3, quiet)
	ctx := context.Background()

	// The writer: singles (one failure each, never banned) and, every 50
	// lines, an address failing three times (banned).
	var (
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		written int
		bans    []string
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		f, err := os.OpenFile(h.logPath, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var b strings.Builder
			stamp := time.Now().Format(time.Stamp)
			single := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
			fmt.Fprintf(&b, "%s srv sshd[%d]: Failed password for u%d from %s port 4000 ssh2\n", stamp, i, i, single)
			n := 1
			if i%50 == 0 {
				bad := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
				for k := range 3 {
					fmt.Fprintf(&b, "%s srv sshd[%d]: Failed password for root from %s port %d ssh2\n", stamp, i, bad, 5000+k)
				}
				n += 3
				bans = append(bans, bad.String())
			}
			if _, err := f.WriteString(b.String()); err != nil {
				t.Error(err)
				return
			}
			written += n
			time.Sleep(200 * time.Microsecond)
		}
	}()

	good := func(allowed bool) []string {
		x := []string{quiet}
		if allowed {
			x = append(x, "[allow]\nentries = [\"203.0.113.0/24\"]")
		}
		return x
	}
	probe := netip.MustParseAddr("203.0.113.5")
	allowed, ok, refused := false, 0, 0
	for i := range reloads {
		switch i % 3 {
		case 0:
			allowed = !allowed
			writeConfig(t, dir, h.logPath, 3, good(allowed)...)
		case 1:
			os.WriteFile(h.cfgPath, []byte("[jail.sshd]\nmaxretries = 1\n"), 0o644)
		case 2:
			writeConfig(t, dir, h.logPath, 1, append(good(!allowed), "[syslog]\nudp = \"192.0.2.1:5514\"\n[jail.sys]\nfilter = \"sshd\"\nsyslog = true")...)
		}
		_, err := h.client.Reload(ctx)
		if (err == nil) != (i%3 == 0) {
			t.Fatalf("reload %d (kind %d): %v", i, i%3, err)
		}
		if err == nil {
			ok++
		} else {
			refused++
		}
		// The allowlist in force is the last good configuration's.
		_, err = h.client.Ban(ctx, BanRequest{IP: probe.String(), DurationS: 60})
		if allowed != (err != nil && strings.Contains(err.Error(), "allowlisted")) {
			t.Fatalf("reload %d: allowlisted %v, ban of %s: %v", i, allowed, probe, err)
		}
		if err == nil {
			if _, err := h.client.Unban(ctx, probe.String()); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	st := h.waitFor("every line counted", func(st Status) bool { return st.Engine.Events >= uint64(written) })
	if st.Engine.Events != uint64(written) {
		t.Errorf("%d events from %d failures written", st.Engine.Events, written)
	}
	active := map[string]bool{}
	for _, b := range st.Active {
		active[b.IP] = true
	}
	missing := 0
	for _, b := range bans {
		if !active[b] {
			missing++
		}
	}
	if missing > 0 || len(st.Active) != len(bans) {
		t.Errorf("%d of %d bans missing; %d active", missing, len(bans), len(st.Active))
	}
	if st.Reload.Reloads != uint64(ok) || st.Reload.Failures != uint64(refused) || len(st.Jails) != 1 || st.Jails[0].MaxRetry != 3 {
		t.Errorf("reload status %+v, jails %+v", st.Reload, st.Jails)
	}
	t.Logf("%d reloads (%d refused), %d failures written, %d bans", reloads, refused, written, len(bans))
}
