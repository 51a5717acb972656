package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// TestPerPortJail runs a jail with ports next to a whole-host one on the
// same log: its ban carries the ports through the engine, the enforcer,
// the store and a restart; the address is still counted, and banned, by
// the other jail; status JAIL has fail2ban's counts.
func TestPerPortJail(t *testing.T) {
	dir := t.TempDir()
	other := fmt.Sprintf("[jail.other]\nfilter = \"sshd\"\nfiles = [%q]\nmaxretry = 2\nbantime = \"1h\"\nports = [\"ssh\", 2222]", filepath.Join(dir, "auth.log"))
	h := startHarness(t, dir, 3, other)
	h.fail(2, "198.51.100.7")
	h.fail(1, "198.51.100.8")
	h.waitFor("per-port ban", func(st Status) bool { return banned(st, "198.51.100.7") })
	ctx := context.Background()
	st, err := h.client.StatusOf(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	j := st.Jails[0]
	if len(st.Active) != 1 || st.Active[0].Ports != "22/tcp,2222/tcp" || j.Ports != "22/tcp,2222/tcp" ||
		j.Failing != 1 || j.FailedTotal != 3 || j.BannedTotal != 1 {
		t.Fatalf("status of jail other: %+v, active %+v", j, st.Active)
	}
	// sshd counts the address all the same, and bans the whole host.
	h.fail(1, "198.51.100.7")
	st = h.waitFor("whole-host ban", func(st Status) bool {
		n := 0
		for _, b := range st.Active {
			if b.IP == "198.51.100.7" {
				n++
			}
		}
		return n == 2
	})
	for _, b := range st.Active {
		if b.IP == "198.51.100.7" && (b.Jail == "sshd") != (b.Ports == "") {
			t.Errorf("ban %+v: sshd's is whole-host, other's per-port", b)
		}
	}
	h.stop()
	h2 := startHarness(t, dir, 3, other)
	st, err = h2.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, b := range st.Active {
		got[b.IP+" "+b.Jail+" "+b.Ports] = true
	}
	if len(got) != 2 || !got["198.51.100.7 other 22/tcp,2222/tcp"] || !got["198.51.100.7 sshd "] {
		t.Errorf("bans after restart = %v", got)
	}
	// Unban lifts both.
	if removed, err := h2.client.Unban(ctx, "198.51.100.7"); err != nil || !removed {
		t.Fatalf("Unban = %v, %v", removed, err)
	}
	if st, _ := h2.client.Status(ctx); banned(st, "198.51.100.7") {
		t.Errorf("still banned after unban: %+v", st.Active)
	}
}
