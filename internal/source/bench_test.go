package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/journaltest"
	"github.com/rampart-dev/rampart/internal/logline"
)

func benchInput(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "Nov 22 14:03:07 web1 sshd[%d]: Failed password for root from 192.0.2.%d port 22 ssh2\n", i, i%256)
	}
	return b.Bytes()
}

func BenchmarkReader(b *testing.B) {
	data := benchInput(10000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := &Reader{R: bytes.NewReader(data), Name: "bench"}
		if err := r.Run(b.Context(), func(logline.Line) {}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSyslogFrame(b *testing.B) {
	var data bytes.Buffer
	for i := range 10000 {
		msg := fmt.Sprintf("<38>Nov 22 14:03:07 web1 sshd[%d]: Failed password for root", i)
		if i%2 == 0 {
			fmt.Fprintf(&data, "%d %s", len(msg), msg)
		} else {
			fmt.Fprintf(&data, "%s\n", msg)
		}
	}
	b.SetBytes(int64(data.Len()))
	b.ReportAllocs()
	for b.Loop() {
		f := newFramer(bytes.NewReader(data.Bytes()), logline.MaxLen)
		for {
			if _, err := f.next(); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				break
			}
		}
	}
}

// BenchmarkJournalFlood reads a flood of sshd entries through the journal
// source, as the daemon does where journald collects the logs: the real
// journalctl (--output=export) over a journal file written by
// systemd-journal-remote. It reports the CPU of each side per entry: the
// source's (decoding and dating, the lines going nowhere) and journalctl's.
func BenchmarkJournalFlood(b *testing.B) {
	const n = 100_000
	jf := journaltest.New(b)
	jf.Append(journaltest.Entry{Msg: "start"})
	after := jf.LastCursor()
	es := make([]journaltest.Entry, n)
	t0 := time.Now().Add(-time.Hour)
	for i := range es {
		es[i] = journaltest.Entry{Msg: fmt.Sprintf("Failed password for invalid user u%d from 192.0.%d.%d port %d ssh2", i%500, i/256%256, i%256, 1024+i%60000),
			PID: 1000 + i, Host: "mail", Time: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	jf.Append(es...)
	var self, child time.Duration
	for b.Loop() {
		s0, c0 := rusage(b, syscall.RUSAGE_SELF), rusage(b, syscall.RUSAGE_CHILDREN)
		var got atomic.Int64
		all := make(chan struct{})
		j := &Journal{Args: []string{"--directory=" + jf.Dir()}, AfterCursor: after}
		ctx, cancel := context.WithCancel(b.Context())
		done := make(chan error, 1)
		go func() {
			done <- j.Run(ctx, func(logline.Line) {
				if got.Add(1) == n {
					close(all)
				}
			})
		}()
		select {
		case <-all:
		case <-time.After(time.Minute):
			b.Fatalf("%d of %d entries read in a minute", got.Load(), n)
		}
		self += rusage(b, syscall.RUSAGE_SELF) - s0
		cancel()
		if err := <-done; err != nil { // journalctl waited for: its CPU is counted
			b.Fatal(err)
		}
		child += rusage(b, syscall.RUSAGE_CHILDREN) - c0
	}
	entries := float64(b.N * n)
	b.ReportMetric(float64(self.Nanoseconds())/1e3/entries, "source-cpu-µs/entry")
	b.ReportMetric(float64(child.Nanoseconds())/1e3/entries, "journalctl-cpu-µs/entry")
}

// rusage returns the user and system CPU time of who (RUSAGE_SELF or
// RUSAGE_CHILDREN, the children waited for).
func rusage(b *testing.B, who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
