// Package lifecycle owns the one goroutine that a source, a watcher or a
// rotator runs: start it with the context that ends it, stop it, wait for
// it. Close methods built on it are idempotent and safe to call from any
// goroutine.
package lifecycle

import "context"

// Goroutine is a running goroutine and the means to end it.
type Goroutine struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Go runs fn in a new goroutine. Its ctx is cancelled by Stop; fn returns
// when ctx is done.
func Go(fn func(ctx context.Context)) *Goroutine {
	ctx, cancel := context.WithCancel(context.Background())
	g := &Goroutine{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		fn(ctx)
	}()
	return g
}

// Stop cancels the goroutine's context and waits for it to return. Calling
// it again, or from several goroutines at once, waits the same way.
func (g *Goroutine) Stop() {
	g.cancel()
	<-g.done
}

// Done is closed when the goroutine has returned.
func (g *Goroutine) Done() <-chan struct{} { return g.done }
