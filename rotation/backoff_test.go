package rotation

import (
	"testing"
	"time"
)

// TestBackoffDelay pins the formula of every backoff the deliverables use,
// at both ends of the jitter.
func TestBackoffDelay(t *testing.T) {
	lowest := func(int64) int64 { return 0 }
	highest := func(n int64) int64 { return n - 1 }
	ms := time.Millisecond
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		want    time.Duration
	}{
		{"zero backoff waits nothing", Backoff{}, 3, 0},
		{"exponential first", Backoff{Initial: 250 * ms, Max: 4 * time.Second, Jitter: NoJitter}, 0, 250 * ms},
		{"exponential doubles", Backoff{Initial: 250 * ms, Max: 4 * time.Second, Jitter: NoJitter}, 3, 2 * time.Second},
		{"exponential capped", Backoff{Initial: 250 * ms, Max: 3 * time.Second, Jitter: NoJitter}, 4, 3 * time.Second},
		{"exponential huge attempt stays capped", Backoff{Initial: time.Second, Max: time.Hour, Jitter: NoJitter}, 1 << 30, time.Hour},
		{"max below initial is initial", Backoff{Initial: time.Second, Max: time.Millisecond, Jitter: NoJitter}, 5, time.Second},
		{"quadratic is telegraf's count²/40 s", Backoff{Initial: 25 * ms, Max: time.Minute, Growth: Quadratic, Jitter: NoJitter}, 2, 225 * ms},
		{"quadratic first", Backoff{Initial: 25 * ms, Max: time.Minute, Growth: Quadratic, Jitter: NoJitter}, 0, 25 * ms},
		{"quadratic capped", Backoff{Initial: 25 * ms, Max: time.Minute, Growth: Quadratic, Jitter: NoJitter}, 49, time.Minute},
		{"quadratic huge attempt stays capped", Backoff{Initial: 25 * ms, Max: time.Minute, Growth: Quadratic, Jitter: NoJitter}, 1 << 40, time.Minute},
		{"equal jitter floor", Backoff{Initial: time.Second, Max: time.Minute, Rand: lowest}, 2, 2 * time.Second},
		{"equal jitter ceiling", Backoff{Initial: time.Second, Max: time.Minute, Rand: highest}, 2, 4 * time.Second},
		{"equal jitter capped ceiling", Backoff{Initial: time.Second, Max: time.Minute, Rand: highest}, 10, time.Minute},
		{"full jitter floor", Backoff{Initial: time.Second, Max: time.Second, Jitter: FullJitter, Rand: lowest}, 0, 0},
		{"full jitter ceiling", Backoff{Initial: time.Second, Max: time.Second, Jitter: FullJitter, Rand: highest}, 0, time.Second - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Delay(tt.attempt); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

// TestBackoffDelayRandomStaysInRange draws with the real source: every
// delay lies in the documented interval.
func TestBackoffDelayRandomStaysInRange(t *testing.T) {
	equal := Backoff{Initial: 10 * time.Millisecond, Max: time.Second}
	full := Backoff{Initial: time.Second, Jitter: FullJitter}
	for i := range 1000 {
		n := i % 12
		d := equal.Delay(n)
		ceiling := min(10*time.Millisecond<<n, time.Second)
		if d < ceiling/2 || d > ceiling {
			t.Fatalf("equal jitter Delay(%d) = %v, want within [%v, %v]", n, d, ceiling/2, ceiling)
		}
		if d := full.Delay(n); d < 0 || d >= time.Second {
			t.Fatalf("full jitter Delay(%d) = %v, want within [0, 1s)", n, d)
		}
	}
}
