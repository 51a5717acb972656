package daemon

import (
	"context"
	"os"
	"strings"
	"testing"
)

// reloadWith rewrites the configuration and sends SIGHUP, then waits until
// the daemon logged the outcome of that reload.
func (h *harness) reloadWith(maxretry int, extra ...string) {
	h.t.Helper()
	before := strings.Count(h.logs.String(), "reload")
	writeConfig(h.t, h.dir, h.logPath, maxretry, extra...)
	h.hup <- os.Interrupt
	h.waitFor("reload", func(Status) bool { return strings.Count(h.logs.String(), "reload") > before })
}

func TestReloadAppliesAllowlist(t *testing.T) {
	h := startHarness(t, t.TempDir(), 3)
	h.fail(3, "198.51.100.7")
	h.waitFor("ban", func(st Status) bool { return banned(st, "198.51.100.7") })
	h.reloadWith(3, "[allow]\nentries = [\"198.51.100.0/24\"]")
	h.waitFor("allowlisted ban revoked", func(st Status) bool { return !banned(st, "198.51.100.7") })
	h.fail(3, "198.51.100.9")
	st := h.waitFor("allowlisted failures", func(st Status) bool { return st.Engine.Allowlisted >= 3 })
	if banned(st, "198.51.100.9") {
		t.Fatalf("an address allowlisted by the reload was banned:\n%s", h.logs)
	}
}

func TestReloadKeepsFailuresInProgress(t *testing.T) {
	h := startHarness(t, t.TempDir(), 5)
	h.fail(4, "198.51.100.7")
	before := h.waitFor("4 failures", func(st Status) bool { return st.Engine.Events == 4 })
	h.reloadWith(5)
	h.fail(1, "198.51.100.7")
	st := h.waitFor("5th failure", func(st Status) bool { return st.Engine.Events >= 5 || len(st.Active) > 0 })
	st = h.waitFor("ban on the 5th failure", func(st Status) bool { return banned(st, "198.51.100.7") })
	if st.Engine.Events != 5 || st.Sources[0].Lines < before.Sources[0].Lines+1 {
		t.Fatalf("counters reset by reload: before %+v %+v, after %+v %+v", before.Engine, before.Sources, st.Engine, st.Sources)
	}
}

func TestReloadUnstartableSourceKeepsOld(t *testing.T) {
	h := startHarness(t, t.TempDir(), 3)
	// 192.0.2.1 is on no interface of the test host: the listener cannot bind.
	h.reloadWith(2, "[syslog]\nudp = \"192.0.2.1:5514\"\n[jail.sys]\nfilter = \"sshd\"\nsyslog = true")
	h.fail(3, "198.51.100.7")
	st := h.waitFor("ban from the old source", func(st Status) bool { return banned(st, "198.51.100.7") })
	if len(st.Jails) != 1 || st.Jails[0].MaxRetry != 3 {
		t.Fatalf("part of the refused configuration applied: %+v", st.Jails)
	}
	// Status says so, and so does a reload asked over the control socket.
	if st.Reload.Failures != 1 || !strings.Contains(st.Reload.LastError, "192.0.2.1:5514") {
		t.Fatalf("reload status %+v", st.Reload)
	}
	if h := healthOf(st, "config"); h.State != HealthDegraded || !strings.Contains(h.Detail, "192.0.2.1:5514") {
		t.Fatalf("config health %+v", h)
	}
	if _, err := h.client.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "192.0.2.1:5514") {
		t.Fatalf("reload over the control socket: %v", err)
	}
	writeConfig(t, h.dir, h.logPath, 2)
	jails, err := h.client.Reload(context.Background())
	if err != nil || len(jails) != 1 {
		t.Fatalf("good reload: %v, %v", jails, err)
	}
	st = h.waitFor("status", func(Status) bool { return true })
	if h := healthOf(st, "config"); h.State != HealthOK || st.Reload.Reloads != 1 || st.Reload.Failures != 2 || st.Jails[0].MaxRetry != 2 {
		t.Fatalf("after a good reload: config %+v, reload %+v, jails %+v", h, st.Reload, st.Jails)
	}
}

func healthOf(st Status, component string) Health {
	for _, h := range st.Health {
		if h.Component == component {
			return h
		}
	}
	return Health{}
}
