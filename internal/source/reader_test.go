package source

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/logline"
)

func TestReader(t *testing.T) {
	replay, err := os.ReadFile("testdata/replay.log")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		input string
		want  []string
		stats Stats
	}{
		{
			name:  "replay file",
			input: string(replay),
			want: []string{
				"Failed password for root from 192.0.2.1 port 22 ssh2",
				"Invalid user bob from 192.0.2.2",
				`192.0.2.3 - - [22/Nov/2026:14:03:09 +0000] "GET /wp-login.php HTTP/1.1" 404 153`,
				"Connection closed by 192.0.2.4 [preauth]", // the last line needs no newline
			},
			stats: Stats{Lines: 4, Empty: 1, Binary: 1, Future: 1},
		},
		{
			name:  "long lines",
			input: strings.Repeat("a", logline.MaxLen+1) + "\nok\n" + strings.Repeat("b", logline.MaxLen) + "\n" + strings.Repeat("c", 100000),
			want:  []string{"ok", strings.Repeat("b", logline.MaxLen)},
			stats: Stats{Lines: 2, TooLong: 2},
		},
		{
			name:  "empty input",
			input: "",
			stats: Stats{},
		},
		{
			name:  "CRLF",
			input: "one\r\ntwo\r\n",
			want:  []string{"one", "two"},
			stats: Stats{Lines: 2},
		},
	}
	p := &logline.Parser{Location: time.UTC, Now: func() time.Time { return time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reader{R: strings.NewReader(tt.input), Name: "replay.log", Parser: p}
			col := newCollector()
			if err := r.Run(t.Context(), col.emit); err != nil {
				t.Fatal(err)
			}
			ls, _ := col.snapshot()
			if got := messagesOf(ls); !slices.Equal(got, tt.want) {
				t.Errorf("got %.60q, want %.60q", got, tt.want)
			}
			for _, l := range ls {
				if l.Origin != "replay.log" {
					t.Errorf("origin %q, want replay.log", l.Origin)
				}
			}
			if s := r.Stats(); s != tt.stats {
				t.Errorf("stats %+v, want %+v", s, tt.stats)
			}
		})
	}
}

// TestReaderCancel: a Reader blocked on a pipe (stdin, say) returns when
// cancelled.
func TestReaderCancel(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	r := &Reader{R: pr, Name: "stdin"}
	col := newCollector()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, col.emit) }()
	if _, err := pw.WriteString("one\n"); err != nil {
		t.Fatal(err)
	}
	col.waitCount(t, 1) // Run is reading, and now blocks for more
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run still blocked after cancel")
	}
}

func TestReaderFuncAdapter(t *testing.T) {
	var s Source = Func(func(ctx context.Context, emit func(logline.Line)) error {
		emit(logline.Line{Message: "x"})
		return nil
	})
	col := newCollector()
	if err := s.Run(t.Context(), col.emit); err != nil || len(col.messages()) != 1 {
		t.Errorf("Func adapter: err %v, lines %q", err, col.messages())
	}
}
