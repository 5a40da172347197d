// Package flusher writes the execd binary's buffer to InfluxDB in
// batches, keeping a failed batch (and the order of those behind it) until
// it is written or refused for good.
package flusher

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/buffer"
	"github.com/influxrotate/influxrotate/rotation"
)

// Sender posts serialised line protocol. The plugin's *InfluxDB satisfies
// it; tests use a fake.
type Sender interface {
	WriteRaw(ctx context.Context, bucket string, lines []byte, count int) error
}

// Advice says what to do with a batch after a failed write.
type Advice struct {
	// Retry keeps the batch; otherwise it is dropped (400/422).
	Retry bool
	// Wait is the server's or the plugin's delay before the next attempt,
	// 0 when it gave none.
	Wait time.Duration
}

// Counters are the flusher's statistics, reported with the plugin's.
type Counters struct {
	Written       atomic.Int64
	Dropped       atomic.Int64
	WriteFailures atomic.Int64
}

// Config is what a Flusher writes, where, and how often.
type Config struct {
	Buffer *buffer.Buffer
	Sender Sender
	// Advise decides whether a failed batch is kept or dropped.
	Advise    func(error) Advice
	BatchSize int
	// Interval is the flush interval: what is buffered is written at
	// least this often.
	Interval time.Duration
	// MaxBackoff caps the wait between attempts when the plugin gives no
	// delay of its own.
	MaxBackoff time.Duration
	Log        *slog.Logger
	// StatsEvery writes the statistics point StatsPoint returns this often
	// (0: never).
	StatsEvery time.Duration
	StatsPoint func(now time.Time) (bucket string, line []byte, err error)
}

// Flusher writes the buffer in batches: when a batch is full, and every
// flush interval for what is there.
type Flusher struct {
	buf        *buffer.Buffer
	send       Sender
	advise     func(error) Advice
	batchSize  int
	interval   time.Duration
	maxBackoff time.Duration
	log        *slog.Logger
	statsEvery time.Duration
	statsPoint func(now time.Time) (bucket string, line []byte, err error)

	// Counters count what was written, dropped and retried.
	Counters Counters

	attempt      int
	failingSince time.Time
	lastFailLog  time.Time
	// wake interrupts a backoff wait (shutdown starting).
	wake <-chan struct{}
}

// New returns a Flusher for cfg; Run starts it.
func New(cfg Config) *Flusher {
	return &Flusher{
		buf:        cfg.Buffer,
		send:       cfg.Sender,
		advise:     cfg.Advise,
		batchSize:  cfg.BatchSize,
		interval:   cfg.Interval,
		maxBackoff: cfg.MaxBackoff,
		log:        cfg.Log,
		statsEvery: cfg.StatsEvery,
		statsPoint: cfg.StatsPoint,
	}
}

// Run flushes until stop is closed, then drains the buffer until it is
// empty or ctx ends (the shutdown deadline), and returns how many metrics
// are left unsent.
func (f *Flusher) Run(ctx context.Context, stop <-chan struct{}) int {
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
		case <-f.buf.Ready():
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
	return f.buf.Unsent()
}

// flush writes full batches, and with all the last partial one too. A
// failed batch is retried, after a backoff, until it is written or ctx
// ends: later batches wait behind it, so the order is kept.
func (f *Flusher) flush(ctx context.Context, all bool) {
	for ctx.Err() == nil {
		ps := f.buf.Next(f.batchSize)
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
func (f *Flusher) writeBatch(ctx context.Context, ps []buffer.Line) (time.Duration, bool) {
	order, groups := groupByBucket(ps)
	for _, bucket := range order {
		g := groups[bucket]
		// Sized once: growing a buffer per batch showed in the profile
		// (docs/benchmarks.md, "execd pipeline"). A new one per
		// request, because the HTTP transport may still read a body
		// after the response is in.
		size := 0
		for _, p := range g {
			size += len(p.Bytes)
		}
		body := make([]byte, 0, size)
		for _, p := range g {
			body = append(body, p.Bytes...)
		}
		err := f.send.WriteRaw(ctx, bucket, body, len(g))
		if err == nil {
			if f.attempt > 0 {
				f.log.Info("writes succeed again; nothing was lost", "failed_attempts", f.attempt,
					"outage", time.Since(f.failingSince).Round(time.Millisecond).String())
			}
			f.attempt = 0
			f.Counters.Written.Add(int64(len(g)))
			f.buf.Done(g)
			continue
		}
		v := f.advise(err)
		if ctx.Err() != nil {
			// Cut short by the deadline: nothing was decided about the batch.
			v.Retry = true
		}
		if !v.Retry {
			f.Counters.Dropped.Add(int64(len(g)))
			f.log.Error("dropped a batch the server refused", "metrics", len(g), "bucket", bucket, "error", err.Error())
			f.buf.Done(g)
			continue
		}
		f.Counters.WriteFailures.Add(1)
		f.attempt++
		now := time.Now()
		if f.attempt == 1 {
			f.failingSince = now
		}
		wait := max(v.Wait, f.backoff())
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
func groupByBucket(ps []buffer.Line) ([]string, map[string][]buffer.Line) {
	if len(ps) == 0 {
		return nil, nil
	}
	single := true
	for _, p := range ps[1:] {
		if p.Bucket != ps[0].Bucket {
			single = false
			break
		}
	}
	if single {
		return []string{ps[0].Bucket}, map[string][]buffer.Line{ps[0].Bucket: ps}
	}
	var order []string
	groups := make(map[string][]buffer.Line)
	for _, p := range ps {
		if _, ok := groups[p.Bucket]; !ok {
			order = append(order, p.Bucket)
		}
		groups[p.Bucket] = append(groups[p.Bucket], p)
	}
	return order, groups
}

// backoff doubles from 250ms up to maxBackoff: quick recovery from a blip,
// no hammering of a server that is down.
func (f *Flusher) backoff() time.Duration {
	b := rotation.Backoff{Initial: 250 * time.Millisecond, Max: f.maxBackoff, Jitter: rotation.NoJitter}
	return b.Delay(f.attempt - 1)
}

func (f *Flusher) writeStats(ctx context.Context) {
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
