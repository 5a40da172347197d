package rotation

import (
	"math/rand/v2"
	"time"
)

// Backoff computes the wait before a retry. It is a value with no state:
// the caller counts its attempts and asks Delay for each, so one Backoff may
// be shared by any number of goroutines.
//
// The zero Growth doubles the delay and the zero Jitter is EqualJitter, so
// Backoff{Initial: time.Second, Max: time.Minute} is an exponential backoff
// that spreads a fleet out while keeping a floor.
type Backoff struct {
	// Initial is the delay before the first retry (attempt 0).
	Initial time.Duration
	// Max caps the delay before jitter. A Max below Initial is Initial.
	Max time.Duration
	// Growth is how the delay grows with each attempt.
	Growth Growth
	// Jitter is how the capped delay is randomised.
	Jitter Jitter
	// Rand, when set, replaces the random draw: it returns a value in
	// [0, n) for n > 0. Tests set it to pin the jitter.
	Rand func(n int64) int64
}

// Growth is how a Backoff's delay grows with the attempt number n (0-based).
type Growth int

const (
	// Exponential doubles: Initial·2ⁿ.
	Exponential Growth = iota
	// Quadratic grows as Initial·(n+1)², Telegraf's (count²)/40 seconds
	// with Initial = 25ms.
	Quadratic
)

// Jitter is how a Backoff randomises a delay d.
type Jitter int

const (
	// EqualJitter draws uniformly from [d/2, d]: writers that lost the
	// server together do not come back together, and none retries at once.
	EqualJitter Jitter = iota
	// FullJitter draws uniformly from [0, d).
	FullJitter
	// NoJitter returns d itself.
	NoJitter
)

// Delay returns the wait before retry number attempt, counted from 0.
func (b Backoff) Delay(attempt int) time.Duration {
	if b.Initial <= 0 {
		return 0
	}
	limit := max(b.Max, b.Initial)
	d := b.Initial
	switch b.Growth {
	case Quadratic:
		k := float64(attempt + 1)
		if float64(b.Initial)*k*k >= float64(limit) {
			d = limit
		} else {
			d = b.Initial * time.Duration((attempt+1)*(attempt+1))
		}
	default:
		for i := 0; i < attempt && d < limit; i++ {
			d *= 2
		}
		d = min(d, limit)
	}
	switch b.Jitter {
	case NoJitter:
		return d
	case FullJitter:
		return time.Duration(b.draw(int64(d)))
	default:
		half := d / 2
		return half + time.Duration(b.draw(int64(d-half+1)))
	}
}

func (b Backoff) draw(n int64) int64 {
	if b.Rand != nil {
		return b.Rand(n)
	}
	return rand.Int64N(n)
}
