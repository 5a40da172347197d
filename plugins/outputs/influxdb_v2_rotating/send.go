package influxdb_v2_rotating

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// writeCall is the state the requests of one Write or WriteRaw call share:
// the one credential of the call (replaced only by a successor the Rotator
// hands out after a refusal) and the budget of re-sends with a new token.
type writeCall struct {
	rotator *rotation.Rotator
	mu      sync.Mutex
	cred    *rotation.Credential
	retries int
	// throttled stops further requests once the server asked us to back off.
	throttled atomic.Bool
	// keepBuffers is set when the transport may still read a body: the
	// call's serialisation buffers must then not return to their pool.
	keepBuffers atomic.Bool
}

func (f *writeCall) current() *rotation.Credential {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cred
}

// refused tells the Rotator that used was refused and returns the
// credential to re-send with, if any. When another request of the same flush
// already obtained a successor, that one is used without asking again.
func (f *writeCall) refused(ctx context.Context, used *rotation.Credential, status int) (*rotation.Credential, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.retries >= maxAuthRetries {
		return nil, false
	}
	if f.cred != used {
		f.retries++
		return f.cred, true
	}
	next, retry := f.rotator.Refused(ctx, used, status)
	if !retry || next == nil || next.Equal(used) {
		return nil, false
	}
	f.retries++
	f.cred = next
	return next, true
}

// outcome is the result of sending one batch (or a part of it after 413).
type outcome struct {
	batch *batch
	err   *WriteError // nil: stored
	// reached is whether the server answered; false for transport errors,
	// which let Write try the next URL.
	reached bool
}

// send posts c with the flush's credential and acts on the decision:
// re-send with a newer token after a refusal, halve after a 413, and turn
// everything else into a WriteError carrying the action for the batch.
func (p *InfluxDB) send(ctx context.Context, f *writeCall, w *httpWriter, c *batch, out []outcome) []outcome {
	for {
		if f.throttled.Load() {
			return append(out, outcome{batch: c, reached: true, err: &WriteError{
				Action:  rotation.ActionThrottle,
				Message: fmt.Sprintf("not sent to bucket %q: the server asked to back off", c.bucket),
			}})
		}
		cred := f.current()
		d, reusable, err := w.post(ctx, c.bucket, c.body, cred)
		if !reusable {
			f.keepBuffers.Store(true)
		}
		if err != nil {
			if te := (*transportError)(nil); errors.As(err, &te) {
				p.writeTransportErrors.Add(1)
			}
			// The transport's error as it is, as the stock plugin reports it.
			return append(out, outcome{batch: c, err: &WriteError{Action: rotation.ActionRetry, Message: err.Error(), Err: err}})
		}
		switch d.Action {
		case rotation.ActionAccept:
			p.throttleCount.Store(0)
			return append(out, outcome{batch: c, reached: true})
		case rotation.ActionAuth:
			if _, ok := f.refused(ctx, cred, d.Status); ok {
				continue
			}
			return append(out, outcome{batch: c, reached: true, err: newDecisionError(c.bucket, d, cred)})
		case rotation.ActionSplit:
			first, second, ok := c.split()
			if !ok {
				d.Action = rotation.ActionDrop
				we := newDecisionError(c.bucket, d, cred)
				we.Message = fmt.Sprintf("failed to write metrics to %s (will be dropped: %s): a single line of %d bytes is larger than the server accepts",
					c.bucket, statusText(d.Status), len(c.body))
				return append(out, outcome{batch: c, reached: true, err: we})
			}
			p.log().Errorf("Failed to write metrics with size %d bytes to %s, request was too large (413)", len(c.body), c.bucket)
			out = p.send(ctx, f, w, first, out)
			return p.send(ctx, f, w, second, out)
		case rotation.ActionThrottle:
			p.writeThrottled.Add(1)
			d.RetryAfter = p.throttle(d.RetryAfter)
			f.throttled.Store(true)
			return append(out, outcome{batch: c, reached: true, err: newDecisionError(c.bucket, d, cred)})
		default: // ActionRetry, ActionDrop
			return append(out, outcome{batch: c, reached: true, err: newDecisionError(c.bucket, d, cred)})
		}
	}
}

// throttleBackoff applies when the server gives no Retry-After: the stock
// plugin's (count²)/40 seconds, capped at a minute, without jitter.
var throttleBackoff = rotation.Backoff{Initial: 25 * time.Millisecond, Max: time.Minute,
	Growth: rotation.Quadratic, Jitter: rotation.NoJitter}

// throttle records that the server asked to slow down and returns how long
// to wait: the server's Retry-After or our own back-off, whichever is longer.
func (p *InfluxDB) throttle(retryAfter time.Duration) time.Duration {
	n := p.throttleCount.Add(1)
	wait := max(retryAfter, throttleBackoff.Delay(int(n-1)))
	until := time.Now().Add(wait).UnixNano()
	for {
		cur := p.retryAt.Load()
		if cur >= until || p.retryAt.CompareAndSwap(cur, until) {
			break
		}
	}
	return wait
}

// retryWait is how long the server's last back-off request still runs.
func (p *InfluxDB) retryWait() time.Duration {
	at := p.retryAt.Load()
	if at == 0 {
		return 0
	}
	return time.Until(time.Unix(0, at))
}

var errNoAnswer = errors.New("no server answered")

// errNoServer is the stock plugin's error when no server took the flush.
const errNoServer = "failed to send metrics to any configured server(s)"
