// Package wait is how tests here wait for something another goroutine or
// process does, when no channel says it happened: poll a condition with a
// short tick, bounded by a deadline, so a broken test fails with a message
// instead of hanging.
package wait

import (
	"testing"
	"time"
)

// Tick is how often a condition is polled: short enough to add no
// noticeable latency, long enough not to busy a core.
const Tick = 2 * time.Millisecond

// For polls cond until it holds, and fails t with a message naming what it
// waited for when d passes first.
func For(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Check(t, d, what, cond) {
		t.FailNow()
	}
}

// Check polls cond until it holds and reports whether it did within d; when
// not, it marks t failed (without stopping it, so it is safe to call from any
// goroutine) with a message naming what it waited for.
func Check(t testing.TB, d time.Duration, what string, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out after %v waiting for %s", d, what)
			return false
		}
		time.Sleep(Tick)
	}
	return true
}
