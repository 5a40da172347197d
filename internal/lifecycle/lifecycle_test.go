package lifecycle

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStopCancelsAndWaits(t *testing.T) {
	returned := false
	g := Go(func(ctx context.Context) {
		<-ctx.Done()
		returned = true
	})
	g.Stop()
	// Stop has waited: the write above happens before this read (the race
	// detector would report it otherwise).
	if !returned {
		t.Fatal("Stop returned before the goroutine did")
	}
	select {
	case <-g.Done():
	default:
		t.Fatal("Done is not closed after Stop")
	}
}

func TestStopIsIdempotentAndConcurrent(t *testing.T) {
	g := Go(func(ctx context.Context) { <-ctx.Done() })
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.Stop()
		}()
	}
	within(t, "four concurrent Stops", func() { wg.Wait() })
	within(t, "a fifth Stop after the goroutine ended", g.Stop)
	select {
	case <-g.Done():
	default:
		t.Fatal("Done is not closed after Stop")
	}
}

func TestDoneClosesWhenTheGoroutineEndsByItself(t *testing.T) {
	g := Go(func(context.Context) {})
	within(t, "Done to close after the goroutine returned", func() { <-g.Done() })
	within(t, "Stop of an ended goroutine", g.Stop)
}

// within fails the test when f does not return in time, instead of leaving
// a hang to the test binary's 10-minute timeout: a lifecycle bug shows up
// as a wait that never ends.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("still waiting for %s after 10s", what)
	}
}
