package source

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// Strings from an Arena keep their text while the buffer they were read
// from is reused, whatever their size, across blocks.
func TestArenaStrings(t *testing.T) {
	var a Arena
	buf := make([]byte, 0, arenaBlock)
	var got, want []string
	for i := range 5000 {
		line := fmt.Sprintf("line %d %s", i, strings.Repeat("x", i%300))
		if i%997 == 0 {
			line = strings.Repeat("long ", arenaBlock/4) // a string of its own
		}
		if i%500 == 0 {
			line = ""
		}
		buf = append(buf[:0], line...)
		got = append(got, a.String(buf))
		want = append(want, line)
		for j := range buf {
			buf[j] = '#' // the reader reuses its buffer
		}
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("string %d = %.40q…, want %.40q…", i, got[i], want[i])
		}
	}
}

// A block whose strings are all dropped is freed: an Arena's memory is
// that of the lines still referenced, give or take a block.
func TestArenaFreesBlocks(t *testing.T) {
	var a Arena
	rec := bytes.Repeat([]byte("a log line of some length, "), 5)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	for range 200_000 { // 27 MB of lines
		a.String(rec)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grown := int64(ms.HeapAlloc) - int64(before); grown > 1<<20 {
		t.Errorf("heap grew by %d bytes after the strings were dropped", grown)
	}
}
