package engine

import (
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// banOnce fails addr three times (the test jail's maxretry) and returns the
// ban it caused.
func banOnce(t *testing.T, e *Engine, at time.Duration, addr string) event.Decision {
	t.Helper()
	var ds []event.Decision
	for i := range 3 {
		ds = append(ds, e.Observe(fail(at+time.Duration(i)*time.Second, addr))...)
	}
	if len(ds) != 1 {
		t.Fatalf("decisions at %v: %v", at, ds)
	}
	return ds[0]
}

// TestPermanentBanTime: a jail's negative BanTime (fail2ban's bantime = -1)
// bans until revoked; escalation does not multiply it and recidive does not
// shorten it. A permanent recidive ban time makes the recidive ban
// permanent.
func TestPermanentBanTime(t *testing.T) {
	jail := Jail{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: Permanent}
	e := newTestEngine(t, Config{Jails: []Jail{jail}, Recidive: Recidive{Bans: 2, Window: 24 * time.Hour, BanTime: 7 * 24 * time.Hour}})
	for i := range 3 {
		d := banOnce(t, e, time.Duration(i)*time.Hour, "192.0.2.1")
		if d.Duration != 0 || !d.End().IsZero() || !d.Active(t0.Add(1000*24*time.Hour)) {
			t.Fatalf("ban %d: duration %v, end %v; want permanent", i+1, d.Duration, d.End())
		}
		if !e.Unban(d.Target) {
			t.Fatalf("ban %d not active", i+1)
		}
	}

	jail.BanTime = time.Hour
	e = newTestEngine(t, Config{Jails: []Jail{jail}, Recidive: Recidive{Bans: 2, Window: 24 * time.Hour, BanTime: Permanent}})
	if d := banOnce(t, e, 0, "192.0.2.2"); d.Duration != time.Hour {
		t.Fatalf("first ban %v, want 1h", d.Duration)
	}
	d := banOnce(t, e, 2*time.Hour, "192.0.2.2")
	if d.Duration != 0 || d.Scenario != "recidive" {
		t.Fatalf("second ban %v (%s), want a permanent recidive ban", d.Duration, d.Scenario)
	}
}

// TestPermanentSlowBan: a ban of another scenario in a permanent jail takes
// the jail's ban time when it is longer, and permanent is longest.
func TestPermanentSlowBan(t *testing.T) {
	jail := Jail{Name: "sshd", Services: []string{"sshd"}, MaxRetry: 5, FindTime: 10 * time.Minute, BanTime: Permanent}
	e := newTestEngine(t, Config{Jails: []Jail{jail}, Slow: Slow{Failures: 3, Window: 12 * time.Hour, BanTime: 24 * time.Hour}})
	var ds []event.Decision
	for i := range 3 {
		ds = append(ds, e.Observe(fail(time.Duration(i)*time.Hour, "192.0.2.3"))...)
	}
	if len(ds) != 1 || ds[0].Scenario != "slow" || ds[0].Duration != 0 {
		t.Fatalf("decisions %v, want one permanent slow ban", ds)
	}
}
