package backend

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/influxrotate/influxrotate/internal/lifecycle"
	"github.com/influxrotate/influxrotate/rotation"
)

// Retry bounds the retries of one API call: Attempts tries in all, waiting
// between them a random time in [d/2, d] where d starts at Initial and
// doubles up to Max ("equal jitter": spreads a fleet of controllers out
// while keeping a floor), or the server's Retry-After when longer, capped
// at Max.
type Retry struct {
	Attempts int
	Initial  time.Duration
	Max      time.Duration
	// For, when set, keeps retrying past Attempts until this long after the
	// first attempt: a wait measured in time rather than in tries (a new
	// token that the server needs time to accept). Each wait is still at
	// most Max, so the tries stay bounded.
	For time.Duration
	// OnRetry, when set, is told about each failed attempt that will be retried.
	OnRetry func(op string, attempt int, err error)
}

func (r *Retry) defaults() {
	if r.Attempts <= 0 {
		r.Attempts = 6
	}
	if r.Initial <= 0 {
		r.Initial = 200 * time.Millisecond
	}
	if r.Max < r.Initial {
		r.Max = max(r.Initial, 10*time.Second)
	}
}

// Do runs fn until it succeeds, fails with an error that is not Retryable,
// the attempts are used up (and For has passed) or ctx ends. It returns the
// last error.
func (r Retry) Do(ctx context.Context, log *slog.Logger, op string, fn func(context.Context) error) error {
	r.defaults()
	backoff := rotation.Backoff{Initial: r.Initial, Max: r.Max, Jitter: rotation.EqualJitter}
	until := time.Now().Add(r.For)
	var err error
	for attempt := 1; ; attempt++ {
		// A timeout is retried only when it was not ctx's own deadline.
		if err = fn(ctx); err == nil || !Retryable(err) || ctx.Err() != nil || attempt >= r.Attempts && !time.Now().Before(until) {
			return err
		}
		if r.OnRetry != nil {
			r.OnRetry(op, attempt, err)
		}
		wait := backoff.Delay(attempt - 1)
		var he *HTTPError
		if errors.As(err, &he) && he.RetryAfter > wait {
			// Honour the server's Retry-After, within the configured bound.
			wait = min(he.RetryAfter, r.Max)
		}
		if log != nil {
			log.Warn("API call failed, retrying", "op", op, "attempt", attempt, "of", r.Attempts, "wait", wait, "error", err)
		}
		if lifecycle.Sleep(ctx, wait) != nil {
			return err
		}
	}
}
