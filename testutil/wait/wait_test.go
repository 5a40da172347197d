package wait

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	For(t, 5*time.Second, "three increments", func() bool { return n.Load() == 3 })
}

// recorder is a testing.TB that records failures instead of failing the
// real test, so the failing path can be checked.
type recorder struct {
	testing.TB
	failed  bool
	message string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.message = format
}

func TestCheckFailsNamingWhatItWaitedFor(t *testing.T) {
	r := &recorder{TB: t}
	start := time.Now()
	if Check(r, 20*time.Millisecond, "a condition that never holds", func() bool { return false }) {
		t.Fatal("Check reported success for a condition that never held")
	}
	if !r.failed {
		t.Fatal("Check did not mark the test failed")
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("gave up after %v, before the deadline", waited)
	}
}
