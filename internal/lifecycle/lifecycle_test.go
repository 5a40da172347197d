package lifecycle

import (
	"context"
	"sync"
	"testing"

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
	wg.Wait()
	g.Stop()
}

func TestDoneClosesWhenTheGoroutineEndsByItself(t *testing.T) {
	g := Go(func(context.Context) {})
	<-g.Done()
	g.Stop()
}
