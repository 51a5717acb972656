package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
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
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	parser := &logline.Parser{Year: 2026, Location: time.UTC}
	_, err := Replay(context.Background(), replayPipeline(t, cfg), parser, files, func(d event.Decision) {
		encodeDecision(enc, d)
	}, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// replayPipeline is the pipeline of cfg, with the built-in filters.
func replayPipeline(t *testing.T, cfg *config.Config) *Pipeline {
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
	return p
}

// encodeDecision writes d as a line of the golden files.
func encodeDecision(enc *json.Encoder, d event.Decision) {
	enc.Encode(map[string]any{
		"ip": Target(d.Target), "action": d.Action.String(), "time": d.Start.Format(time.RFC3339), "duration_s": int64(d.Duration / time.Second),
		"scenario": d.Scenario, "reason": d.Reason, "jail": d.Jail,
	})
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

// Replay runs lines through the filters a batch at a time before their
// events go to the engine (replayBatch). That must decide exactly what
// running each line through both at once decides, in the same order: the
// reference here is the daemon's own path, LineRouter.Observe, line by
// line with the clock ticked as replay ticks it. The two logs interleave
// (sshd at even seconds, postfix at odd ones) and hold, each, 400
// attackers, 8 in each of 50 /24 networks, 5 of those in each of 10 /16
// ones, with logins and lines without events, over enough time for ticks,
// deferred bans and prefix bans.
func TestReplayBatchesDecideAsLines(t *testing.T) {
	dir := t.TempDir()
	rnd := rand.New(rand.NewPCG(7, 19))
	start := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	var sshd, mail []string
	for i := range 3000 {
		at := start.Add(time.Duration(2*i) * time.Second).Format(time.Stamp)
		k := rnd.IntN(400)
		a := fmt.Sprintf("20.%d.%d.%d", k%50/5, k%5, 1+k/50)
		switch r := rnd.IntN(10); {
		case r < 5:
			sshd = append(sshd, fmt.Sprintf("%s mx sshd[%d]: Failed password for %s from %s port %d ssh2", at, 5000+i, []string{"root", "admin", "oracle"}[rnd.IntN(3)], a, 40000+i))
		case r < 6:
			sshd = append(sshd, fmt.Sprintf("%s mx sshd[%d]: Accepted password for alice from 192.0.2.%d port %d ssh2", at, 5000+i, 1+rnd.IntN(20), 40000+i))
		default:
			sshd = append(sshd, fmt.Sprintf("%s mx sshd[%d]: Connection closed by %s port %d [preauth]", at, 5000+i, a, 40000+i))
		}
		at = start.Add(time.Duration(2*i+1) * time.Second).Format(time.Stamp)
		k = rnd.IntN(400)
		a = fmt.Sprintf("60.%d.%d.%d", k%50/5, k%5, 1+k/50)
		if rnd.IntN(2) == 0 {
			mail = append(mail, fmt.Sprintf("%s mx postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", at, 3000+i, a))
		} else {
			mail = append(mail, fmt.Sprintf("%s mx postfix/smtpd[%d]: connect from unknown[%s]", at, 3000+i, a))
		}
	}
	files := []string{filepath.Join(dir, "auth.log"), filepath.Join(dir, "mail.log")}
	for i, lines := range [][]string{sshd, mail} {
		if err := os.WriteFile(files[i], []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := replayJSON(t, config.Default(), files...)

	p := replayPipeline(t, config.Default())
	lr, err := p.Matchers(nil)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	emit := func(ds []event.Decision) {
		for _, d := range ds {
			encodeDecision(enc, d)
		}
	}
	parser := &logline.Parser{Year: 2026, Location: time.UTC}
	var last, nextTick time.Time
	for i := range sshd {
		for f, rec := range []string{sshd[i], mail[i]} {
			l, err := parser.Parse(rec)
			if err != nil {
				t.Fatal(err)
			}
			l.Origin = files[f]
			if !l.Time.Before(nextTick) {
				emit(p.Engine.Tick(l.Time))
				last, nextTick = l.Time, l.Time.Add(replayTick)
			}
			_, _, ds := lr.Observe(&l)
			emit(ds)
		}
	}
	emit(p.Engine.Tick(last.Add(time.Hour)))

	if n := bytes.Count(got, []byte("\n")); n < 100 || !bytes.Contains(got, []byte(`"scenario":"prefix"`)) {
		t.Fatalf("the logs decided too little to test with (%d decisions):\n%s", n, got)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("replay decided otherwise than line by line:\n got:\n%s\nwant:\n%s", got, want.Bytes())
	}
}
