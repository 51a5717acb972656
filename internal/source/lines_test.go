package source

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader returns its input a few random bytes at a time, as a pipe may.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rng.IntN(3000))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// Lines gives the records ReadLines gives, on any input read in any
// chunks, and every string keeps its text to the end.
func TestLinesAgreesWithReadLines(t *testing.T) {
	const limit = 700
	rng := rand.New(rand.NewPCG(5, 6))
	for round := range 100 {
		var in bytes.Buffer
		for range rng.IntN(600) {
			n := rng.IntN(300)
			switch rng.IntN(40) {
			case 0, 1:
				n = 0
			case 2, 3:
				n = limit + rng.IntN(3) - 1 // at the limit
			case 4:
				n = limit + rng.IntN(3*linesBlock) // far past it, across blocks
			}
			for range n {
				in.WriteByte("abc d:"[rng.IntN(6)])
			}
			in.WriteByte('\n')
		}
		if rng.IntN(2) == 0 {
			in.WriteString("no newline at the end")
		}
		type rec struct {
			text    string
			tooLong bool
		}
		var want []rec
		if err := readRecords(bytes.NewReader(in.Bytes()), limit, func(b []byte, tooLong bool) error {
			want = append(want, rec{string(b), tooLong})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var r io.Reader = &chunkReader{data: bytes.Clone(in.Bytes()), rng: rng}
		switch round % 10 {
		case 0:
			r = iotest.OneByteReader(bytes.NewReader(in.Bytes())) // every record in pieces
		case 1:
			r = iotest.DataErrReader(bytes.NewReader(in.Bytes())) // the end comes with the last bytes
		}
		l := NewLines(r)
		l.limit = limit
		var got []rec
		for {
			s, tooLong, err := l.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rec{s, tooLong})
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: %d records, want %d", round, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("round %d, record %d: %.30q… (too long %v), want %.30q… (%v)", round, i, got[i].text, got[i].tooLong, want[i].text, want[i].tooLong)
			}
		}
	}
}

// A read error ends the records, after those read before it, and stays.
func TestLinesReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	l := NewLines(io.MultiReader(strings.NewReader("one\ntwo\nthr"), iotest.ErrReader(boom)))
	for _, want := range []string{"one", "two", "thr"} {
		if s, _, err := l.Next(); err != nil || s != want {
			t.Fatalf("Next = %q, %v; want %q", s, err, want)
		}
	}
	for range 2 {
		if _, _, err := l.Next(); !errors.Is(err, boom) {
			t.Fatalf("Next after the records: %v, want %v", err, boom)
		}
	}
}

// A reader that returns nothing, forever, ends the records with an error
// rather than a spin.
func TestLinesNoProgress(t *testing.T) {
	l := NewLines(iotest.ErrReader(nil))
	if _, _, err := l.Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("Next = %v, want io.ErrNoProgress", err)
	}
}

// A block whose strings are all dropped is freed: the memory Lines holds
// is that of the lines still referenced, give or take a block.
func TestLinesFreeBlocks(t *testing.T) {
	line := strings.Repeat("a log line of some length, ", 5) + "\n"
	r := strings.NewReader(strings.Repeat(line, 200_000)) // 27 MB of lines
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	l := NewLines(r)
	var keep string
	for {
		s, _, err := l.Next()
		if err != nil {
			break
		}
		keep = s
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grown := int64(ms.HeapAlloc) - int64(before); grown > 1<<20 {
		t.Errorf("heap grew by %d bytes after the strings were dropped", grown)
	}
	if keep+"\n" != line {
		t.Errorf("the last line reads %q", keep)
	}
}
