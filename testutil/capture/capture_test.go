package capture

import (
	"fmt"
	"sync"
	"testing"
)

func TestBufferConcurrentWritesAndReads(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&b, "writer %d line %d\n", w, i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := b.Count("\n"); n != 400 {
		t.Fatalf("%d lines, want 400", n)
	}
	if n := b.Count("writer 3 line"); n != 100 {
		t.Fatalf("writer 3 wrote %d lines, want 100", n)
	}
}
