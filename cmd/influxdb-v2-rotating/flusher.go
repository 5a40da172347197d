package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// sender posts serialised line protocol. The plugin's *InfluxDB satisfies
// it; tests use a fake.
type sender interface {
	WriteRaw(ctx context.Context, bucket string, lines []byte, count int) error
}

// verdict says what to do with a batch after a failed write.
type verdict struct {
	// retry keeps the batch; otherwise it is dropped (400/422).
	retry bool
	// wait is the server's or the plugin's delay before the next attempt,
	// 0 when it gave none.
	wait time.Duration
}

// counters are the binary's own statistics, reported with the plugin's.
type counters struct {
	linesRead     atomic.Int64
	written       atomic.Int64
	dropped       atomic.Int64
	writeFailures atomic.Int64
	replayed      atomic.Int64
}

// flusher writes the buffer in batches: when a batch is full, and every
// flush interval for what is there.
type flusher struct {
	buf       *buffer
	send      sender
	judge     func(error) verdict
	batchSize int
	interval  time.Duration
	// maxBackoff caps the wait between attempts when the plugin gives no
	// delay of its own.
	maxBackoff time.Duration
	log        *slog.Logger
	counters   *counters

	// statsEvery writes the statistics point this often (0: never).
	statsEvery time.Duration
	statsPoint func(now time.Time) (bucket string, line []byte, err error)

	attempt      int
	failingSince time.Time
	lastFailLog  time.Time
	// wake interrupts a backoff wait (shutdown starting).
	wake <-chan struct{}
}

// run flushes until stop is closed, then drains the buffer until it is
// empty or ctx ends (the shutdown deadline), and returns how many metrics
// are left unsent.
func (f *flusher) run(ctx context.Context, stop <-chan struct{}) int {
	ticker := time.NewTicker(f.interval)
	defer ticker.Stop()
	var statsC <-chan time.Time
	if f.statsEvery > 0 && f.statsPoint != nil {
		st := time.NewTicker(f.statsEvery)
		defer st.Stop()
		statsC = st.C
	}
	f.wake = stop
loop:
	for {
		select {
		case <-stop:
			break loop
		case <-ctx.Done():
			break loop
		case <-f.buf.ready:
			f.flush(ctx, false)
		case <-ticker.C:
			f.flush(ctx, true)
		case <-statsC:
			f.writeStats(ctx)
		}
	}
	// Draining: backoff waits are bounded by the deadline alone.
	f.wake = nil
	f.flush(ctx, true)
	if statsC != nil && ctx.Err() == nil {
		// The final counts, so a restart does not hide the last interval.
		f.writeStats(ctx)
	}
	return f.buf.unsentLen()
}

// flush writes full batches, and with all the last partial one too. A
// failed batch is retried, after a backoff, until it is written or ctx
// ends: later batches wait behind it, so the order is kept.
func (f *flusher) flush(ctx context.Context, all bool) {
	for ctx.Err() == nil {
		ps := f.buf.next(f.batchSize)
		if len(ps) == 0 || (!all && len(ps) < f.batchSize) {
			return
		}
		if wait, failed := f.writeBatch(ctx, ps); failed {
			if !sleep(ctx, f.wake, wait) {
				return
			}
		}
	}
}

// writeBatch writes ps, one request per bucket. It reports whether a
// retryable failure stopped it and how long to wait.
func (f *flusher) writeBatch(ctx context.Context, ps []pending) (time.Duration, bool) {
	order, groups := groupByBucket(ps)
	for _, bucket := range order {
		g := groups[bucket]
		// Sized once: growing a buffer per batch was a tenth of the
		// pipeline's CPU. A new one per request, because the HTTP
		// transport may still read a body after the response is in.
		size := 0
		for _, p := range g {
			size += len(p.line)
		}
		body := make([]byte, 0, size)
		for _, p := range g {
			body = append(body, p.line...)
		}
		err := f.send.WriteRaw(ctx, bucket, body, len(g))
		if err == nil {
			if f.attempt > 0 {
				f.log.Info("writes succeed again; nothing was lost", "failed_attempts", f.attempt,
					"outage", time.Since(f.failingSince).Round(time.Millisecond).String())
			}
			f.attempt = 0
			f.counters.written.Add(int64(len(g)))
			f.buf.done(g)
			continue
		}
		v := f.judge(err)
		if ctx.Err() != nil {
			// Cut short by the deadline: nothing was decided about the batch.
			v.retry = true
		}
		if !v.retry {
			f.counters.dropped.Add(int64(len(g)))
			f.log.Error("dropped a batch the server refused", "metrics", len(g), "bucket", bucket, "error", err.Error())
			f.buf.done(g)
			continue
		}
		f.counters.writeFailures.Add(1)
		f.attempt++
		now := time.Now()
		if f.attempt == 1 {
			f.failingSince = now
		}
		wait := max(v.wait, f.backoff())
		// Every stderr line shows up as an error in Telegraf's log: the
		// first failures are logged, then one line a minute.
		if ctx.Err() == nil && (f.attempt <= 3 || now.Sub(f.lastFailLog) >= time.Minute) {
			f.lastFailLog = now
			f.log.Warn("write failed; keeping the batch and retrying",
				"metrics", len(g), "bucket", bucket, "attempt", f.attempt, "retry_in", wait.String(), "error", err.Error())
		}
		return wait, true
	}
	return 0, false
}

// groupByBucket splits ps into one group per bucket, in order of first
// appearance. Almost every batch has a single bucket: it is returned as is.
func groupByBucket(ps []pending) ([]string, map[string][]pending) {
	if len(ps) == 0 {
		return nil, nil
	}
	single := true
	for _, p := range ps[1:] {
		if p.bucket != ps[0].bucket {
			single = false
			break
		}
	}
	if single {
		return []string{ps[0].bucket}, map[string][]pending{ps[0].bucket: ps}
	}
	var order []string
	groups := make(map[string][]pending)
	for _, p := range ps {
		if _, ok := groups[p.bucket]; !ok {
			order = append(order, p.bucket)
		}
		groups[p.bucket] = append(groups[p.bucket], p)
	}
	return order, groups
}

// backoff doubles from 250ms up to maxBackoff: quick recovery from a blip,
// no hammering of a server that is down.
func (f *flusher) backoff() time.Duration {
	b := rotation.Backoff{Initial: 250 * time.Millisecond, Max: f.maxBackoff, Jitter: rotation.NoJitter}
	return b.Delay(f.attempt - 1)
}

func (f *flusher) writeStats(ctx context.Context) {
	bucket, line, err := f.statsPoint(time.Now())
	if err == nil {
		err = f.send.WriteRaw(ctx, bucket, line, 1)
	}
	if err != nil {
		// Statistics are not worth buffering: the next ones supersede them.
		f.log.Warn("could not write internal statistics", "error", err.Error())
	}
}

// sleep waits d; it returns false when ctx ends or wake is closed first.
func sleep(ctx context.Context, wake <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-wake:
		return false
	}
}
