package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

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
