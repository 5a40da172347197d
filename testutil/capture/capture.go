// Package capture collects the output of goroutines and child processes for
// tests that read it while it is still being written: log handlers, a
// binary's stderr, a controller's stdout. Tests then scan it for messages
// and, above all, for tokens that must not be there.
package capture

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is an io.Writer whose content can be read at any time, from any
// goroutine. The zero value is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count returns how many times substr has been written so far.
func (b *Buffer) Count(substr string) int { return strings.Count(b.String(), substr) }
