package daemon

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/logline"
)

// TestEngineDefaultsAgree: the configuration's defaults (default.toml, their
// one source) are what the engine falls back to for values left zero, so
// a daemon and a test building an engine from engine.DefaultConfig decide
// alike.
func TestEngineDefaultsAgree(t *testing.T) {
	cfg := config.Default()
	got := EngineConfig(cfg)
	want := engine.DefaultConfig()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("engine configuration from config.Default():\n%+v\nengine.DefaultConfig():\n%+v", got, want)
	}
	for _, j := range newTestPipeline(t, cfg).Engine.Jails() {
		if j.MaxRetry != engine.DefaultMaxRetry || j.FindTime != engine.DefaultFindTime || j.BanTime != engine.DefaultBanTime {
			t.Errorf("jail %s: maxretry %d, findtime %v, bantime %v; the engine's defaults are %d, %v, %v",
				j.Name, j.MaxRetry, j.FindTime, j.BanTime, engine.DefaultMaxRetry, engine.DefaultFindTime, engine.DefaultBanTime)
		}
	}
}

// TestPermanentJail: bantime = -1 in the file bans until revoked, through
// the pipeline, repeat bans included.
func TestPermanentJail(t *testing.T) {
	p := newTestPipeline(t, parseConfig(t, "[jail.sshd]\nfiles = [\"/var/log/auth.log\"]\nmaxretry = 2\nbantime = -1\n"))
	lr, err := p.Matchers(nil)
	if err != nil {
		t.Fatal(err)
	}
	parser := &logline.Parser{Year: 2026}
	var bans []event.Decision
	for i, stamp := range []string{"10:00:00", "10:00:01", "12:00:00", "12:00:01"} {
		l, err := parser.Parse("Nov 22 " + stamp + " host sshd[1]: Failed password for root from 192.0.2.7 port 22 ssh2")
		if err != nil {
			t.Fatal(err)
		}
		_, _, ds := lr.Observe(&l)
		bans = append(bans, ds...)
		if i == 1 && len(bans) == 1 {
			p.Engine.Unban(bans[0].Target) // lifted by hand: the next ban is a repeat
		}
	}
	if len(bans) != 2 {
		t.Fatalf("decisions %v, want two bans", bans)
	}
	for _, d := range bans {
		if d.Duration != 0 || !d.End().IsZero() {
			t.Errorf("ban %s for %v, want permanent", Describe(d), d.Duration)
		}
	}
	if got := Describe(bans[0]); !strings.Contains(got, "192.0.2.7 until revoked") {
		t.Errorf("described as %q", got)
	}
}

// parseConfig parses a configuration text named r.toml.
func parseConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("r.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newTestPipeline builds cfg's pipeline with the built-in filters, no
// allowlist and no ASN database.
func newTestPipeline(t *testing.T, cfg *config.Config) *Pipeline {
	t.Helper()
	reg, err := filter.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPipeline(cfg, reg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
