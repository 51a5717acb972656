// Package logtest holds what tests need to read what was logged.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is a log's destination that the goroutines writing it and a test
// reading it can share.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
