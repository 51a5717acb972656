package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/allow"
	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/filter"
	"github.com/rampart-dev/rampart/internal/logline"
)

var update = flag.Bool("update", false, "rewrite golden files")

func replayJSON(t *testing.T, cfg *config.Config, files ...string) []byte {
	t.Helper()
	reg, err := filter.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	// Not the daemon's allowlist (NewReplayPipeline): the host's own
	// addresses would make the golden files depend on the host.
	al, err := allow.New(cfg.Allow.Entries, allow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPipeline(cfg, reg, al, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	parser := &logline.Parser{Year: 2026, Location: time.UTC}
	_, err = Replay(context.Background(), p, parser, files, func(d event.Decision) {
		enc.Encode(map[string]any{
			"ip": Target(d.Target), "action": d.Action.String(), "time": d.Start.Format(time.RFC3339), "duration_s": int64(d.Duration / time.Second),
			"scenario": d.Scenario, "reason": d.Reason, "jail": d.Jail,
		})
	}, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestReplayGolden(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		cfg   string // config file under testdata/replay, "" for the defaults
	}{
		{"sshd", []string{"sshd.log"}, ""},
		{"merged", []string{"sshd.log", "mail.log"}, ""},
		{"allowlisted", []string{"sshd.log"}, "allow.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			if tt.cfg != "" {
				var err error
				if cfg, err = config.Load(filepath.Join("testdata", "replay", tt.cfg)); err != nil {
					t.Fatal(err)
				}
			}
			var files []string
			for _, f := range tt.files {
				files = append(files, filepath.Join("testdata", "replay", f))
			}
			got := replayJSON(t, cfg, files...)
			golden := filepath.Join("testdata", "replay", tt.name+".golden.jsonl")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("replay output differs from %s\n got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// Replaying the same logs twice gives the same decisions: the engine reads
// time only from the logs.
func TestReplayDeterministic(t *testing.T) {
	files := []string{filepath.Join("testdata", "replay", "sshd.log"), filepath.Join("testdata", "replay", "mail.log")}
	a := replayJSON(t, config.Default(), files...)
	b := replayJSON(t, config.Default(), files...)
	if !bytes.Equal(a, b) || len(a) == 0 {
		t.Fatalf("replays differ or are empty:\n%s\n---\n%s", a, b)
	}
}
