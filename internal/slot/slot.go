// Package slot is the "newest value wins" hand-off: a channel of capacity
// one that a sender overwrites, so a slow receiver gets the latest value,
// never a stale one, and the sender never blocks.
package slot

// Replace puts v in ch, a channel of capacity one, dropping a value not
// received yet. It never blocks. With one sender (the usual case) v is
// always delivered; with several, one of the newest values is.
func Replace[T any](ch chan T, v T) {
	select {
	case ch <- v:
		return
	default:
	}
	Clear(ch)
	select {
	case ch <- v:
	default:
	}
}

// Clear drops a value not received yet, if any. It never blocks.
func Clear[T any](ch chan T) {
	select {
	case <-ch:
	default:
	}
}
