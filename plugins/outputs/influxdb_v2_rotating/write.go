package influxdb_v2_rotating

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/influxrotate/influxrotate/rotation"
)

// errNotConnected is returned by writes before Connect (or after a failed one).
var errNotConnected = &WriteError{Action: rotation.ActionRetry, Message: "influxdb_v2_rotating: not connected"}

// noToken is the error of a flush before any valid token exists.
func (p *InfluxDB) noToken() *WriteError {
	name := "token"
	if p.source != nil {
		name = p.source.Name()
	}
	return &WriteError{
		Action:  rotation.ActionAuth,
		Message: fmt.Sprintf("waiting for %s: no valid token yet; metrics stay buffered", strings.Replace(name, "file ", "token_file ", 1)),
	}
}

// trackWrite counts a write in write_queue_depth until the returned func
// runs, which also refreshes the internal statistics.
func (p *InfluxDB) trackWrite() (done func()) {
	p.queue.Add(1)
	return func() {
		p.queue.Add(-1)
		p.updateStats()
	}
}

// writeCredential picks the one credential a write uses, or says why the
// write cannot be sent now: the server asked to wait, the plugin is not
// connected, or no valid token exists yet. Every such error keeps the batch.
func (p *InfluxDB) writeCredential() (*rotation.Credential, error) {
	if wait := p.retryWait(); wait > 0 {
		return nil, &WriteError{Action: rotation.ActionThrottle, RetryAfter: wait, Message: "retry time has not elapsed"}
	}
	if p.rotator == nil {
		return nil, errNotConnected
	}
	cred := p.rotator.Current()
	if cred == nil {
		return nil, p.noToken()
	}
	return cred, nil
}

// Write sends metrics to one of the configured servers, chosen at random
// per flush; the next one is tried only when no server answered. It uses one
// credential for the whole flush. The error tells the agent which metrics
// were stored, which must be dropped and which to keep.
func (p *InfluxDB) Write(metrics []telegraf.Metric) error {
	defer p.trackWrite()()
	if len(metrics) == 0 {
		return nil
	}
	cred, err := p.writeCredential()
	if err != nil {
		var we *WriteError
		if errors.As(err, &we) && we.Action == rotation.ActionThrottle {
			// Worded as the stock plugin's clients, each of which waits.
			for _, w := range p.writers {
				p.log().Errorf("When writing to [%s]: %v", w, err)
			}
			return &WriteError{Action: rotation.ActionThrottle, RetryAfter: we.RetryAfter, Message: errNoServer}
		}
		return err
	}

	workers := int(max(p.ConcurrentWrites, 1))
	size := (len(metrics) + workers - 1) / workers
	var batches []*batch
	if p.BucketTag == "" {
		batches = createBatches(metrics, p.Bucket, size)
	} else {
		batches = createBatchesFromTag(metrics, p.BucketTag, p.Bucket, size)
	}

	// Serialise within the rate limit. Metrics past the limit are neither
	// accepted nor rejected, so the agent keeps them for the next flush.
	now := time.Now()
	defer p.limiter.Release()
	var rejected []int
	var rejectErrs []error
	serialized := make([]*batch, 0, len(batches))
	bufs := make([]*[]byte, 0, len(batches))
	var keepBuffers bool
	defer func() {
		if keepBuffers {
			return
		}
		for _, b := range bufs {
			bufPool.Put(b)
		}
	}()
	for _, b := range batches {
		remaining := p.limiter.Remaining(now)
		if remaining <= 0 {
			break
		}
		buf := bufPool.Get().(*[]byte)
		bufs = append(bufs, buf)
		c, rej, rerr, err := p.ser.serialize(*buf, b, remaining)
		*buf = c.body[:0]
		rejected = append(rejected, rej...)
		rejectErrs = append(rejectErrs, rerr...)
		if c.count > 0 {
			p.limiter.Reserve(int64(len(c.body)))
			serialized = append(serialized, c)
		}
		if errors.Is(err, errLimit) {
			break
		}
	}
	if len(rejectErrs) > 0 {
		// The stock plugin says only that serialization failed; which
		// metric and why is what the operator needs to fix it. One line
		// per flush, however many.
		p.log().Errorf("Dropping %d metric(s) that cannot be serialized; the first: %v", len(rejectErrs), rejectErrs[0])
	}

	results, reached, lastErr := p.sendToFirstAnswering(p.ctx, cred, func(f *writeCall, w *httpWriter) []outcome {
		results := p.sendAll(f, w, serialized, now)
		keepBuffers = keepBuffers || f.keepBuffers.Load()
		if !reachedAny(results) {
			// Each batch's error, as the stock plugin logs them.
			for _, r := range results {
				if r.err != nil {
					p.log().Error(r.err)
				}
			}
		}
		return results
	})
	err = p.settle(len(metrics), results, rejected, rejectErrs, lastErr)
	if err != nil && reached != nil {
		// The stock plugin's summary line of a flush that failed in part.
		p.log().Errorf("When writing to [%s]: %v", reached, err)
	}
	return err
}

// sendToFirstAnswering sends with the writers in random order, as the
// stock plugin picks a server, until one answers (or send sends nothing);
// it reports adoption through that one and returns its outcomes. A writer
// that does not answer is logged as the stock plugin logs it, and the last
// such error returned when none answers (reached is then nil).
func (p *InfluxDB) sendToFirstAnswering(ctx context.Context, cred *rotation.Credential,
	send func(*writeCall, *httpWriter) []outcome) (results []outcome, reached *httpWriter, lastErr error) {
	for _, n := range rand.Perm(len(p.writers)) {
		w := p.writers[n]
		f := &writeCall{rotator: p.rotator, cred: cred}
		results := send(f, w)
		if reachedAny(results) || len(results) == 0 {
			p.reportAdoption(ctx, f, w, results)
			return results, w, nil
		}
		lastErr = firstErr(results)
		p.log().Errorf("When writing to [%s]: %v", w, lastErr)
	}
	return nil, nil, lastErr
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// sendAll sends the serialized batches with up to concurrent_writes requests at once.
func (p *InfluxDB) sendAll(f *writeCall, w *httpWriter, serialized []*batch, now time.Time) []outcome {
	if len(serialized) == 1 {
		p.limiter.Accept(now, int64(len(serialized[0].body)))
		return p.send(p.ctx, f, w, serialized[0], nil)
	}
	per := make([][]outcome, len(serialized))
	sem := make(chan struct{}, max(p.ConcurrentWrites, 1))
	var wg sync.WaitGroup
	for i, c := range serialized {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p.limiter.Accept(now, int64(len(c.body)))
			per[i] = p.send(p.ctx, f, w, c, nil)
		}()
	}
	wg.Wait()
	var all []outcome
	for _, o := range per {
		all = append(all, o...)
	}
	return all
}

func reachedAny(results []outcome) bool {
	for _, r := range results {
		if r.reached {
			return true
		}
	}
	return false
}

func firstErr(results []outcome) error {
	for _, r := range results {
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

// settle turns the outcomes of a flush into what the agent understands:
// nil when everything was stored, a plain error to keep the whole batch,
// or a batchError listing stored and dropped metrics (the rest is kept).
func (p *InfluxDB) settle(total int, results []outcome, rejected []int, rejectErrs []error, lastErr error) error {
	var accepted []int
	var keepErr, dropErr error
	for _, r := range results {
		switch {
		case r.err == nil:
			accepted = append(accepted, r.batch.indices...)
		case r.err.Retryable():
			if keepErr == nil {
				keepErr = r.err
			}
			p.log().Error(r.err)
		default:
			if dropErr == nil {
				dropErr = r.err
			}
			p.log().Error(r.err)
			rejected = append(rejected, r.batch.indices...)
			for range r.batch.indices {
				rejectErrs = append(rejectErrs, r.err)
			}
		}
	}
	if len(accepted) == total {
		return nil
	}
	err := cmp.Or(keepErr, dropErr, lastErr)
	switch {
	case err != nil:
	case len(accepted)+len(rejected) < total:
		// Only the rate limit held metrics back.
		err = errSizeLimitReached
	default:
		// Everything was sent except metrics that cannot be serialised.
		err = errSerialization
	}
	// Always a partial write, as the stock plugin's, even when nothing
	// was sent: the agent keeps what is neither accepted nor rejected.
	return &batchError{err: err, accept: accepted, reject: rejected, rejectErrs: rejectErrs}
}

// WriteRaw posts already-serialised line protocol (newline-terminated lines,
// count of them; count <= 0 counts the newlines) to bucket ("" means the
// bucket option) with the same rotation, retry and split rules as Write.
// It returns nil when every line was stored, otherwise a *WriteError whose
// Retryable (or IsRetryable) says whether the caller must keep the batch
// (true) or drop it (false). When part of a split batch was stored and
// another part must be kept, the error is retryable and re-sending the
// whole batch is safe: InfluxDB stores a point with the same series and
// timestamp once. It is safe for concurrent use once Connect has returned.
func (p *InfluxDB) WriteRaw(ctx context.Context, bucket string, lines []byte, count int) error {
	defer p.trackWrite()()
	if len(lines) == 0 {
		return nil
	}
	cred, err := p.writeCredential()
	if err != nil {
		return err
	}
	bucket = cmp.Or(bucket, p.Bucket)
	if count <= 0 {
		count = bytes.Count(lines, newline)
		if lines[len(lines)-1] != '\n' {
			count++
		}
	}
	c := &batch{bucket: bucket, body: lines, count: count}
	results, reached, lastErr := p.sendToFirstAnswering(ctx, cred, func(f *writeCall, w *httpWriter) []outcome {
		return p.send(ctx, f, w, c, nil)
	})
	if reached != nil {
		var keep, drop *WriteError
		for _, r := range results {
			switch {
			case r.err == nil:
			case r.err.Retryable():
				if keep == nil {
					keep = r.err
				}
			default:
				if drop == nil {
					drop = r.err
				}
			}
		}
		if keep != nil {
			return keep
		}
		if drop != nil {
			return drop
		}
		return nil
	}
	var we *WriteError
	if errors.As(lastErr, &we) {
		return we
	}
	return &WriteError{Action: rotation.ActionRetry, Message: fmt.Sprintf("%v: %v", errNoAnswer, lastErr), Err: lastErr}
}

var newline = []byte{'\n'}

// reportAdoption writes the adoption report when one is due, after a flush
// that stored metrics on w, with the credential that stored them. It is
// posted on its own so that it can neither hold back nor fail the metrics,
// and without the refusal handling of send: a report the server refuses
// (no write permission on adoption_bucket) says nothing about the token's
// right to write metrics and must not make the Rotator fall back. A report
// that fails stays due and goes out after the next flush.
func (p *InfluxDB) reportAdoption(ctx context.Context, f *writeCall, w *httpWriter, results []outcome) {
	if p.adoption == nil || f.throttled.Load() || !storedAny(results) {
		return
	}
	cred := f.current()
	rep, line, ok := p.adoption.Due(cred, p.stats.Rotations.Load())
	if !ok {
		return
	}
	d, _, err := w.post(ctx, p.AdoptionBucket, line, cred)
	switch {
	case err != nil:
		if te := (*transportError)(nil); errors.As(err, &te) {
			p.writeTransportErrors.Add(1)
		}
	case d.Action == rotation.ActionAccept:
	case d.Action == rotation.ActionThrottle:
		p.writeThrottled.Add(1)
		p.throttle(d.RetryAfter)
		err = newDecisionError(p.AdoptionBucket, d, cred)
	default:
		err = newDecisionError(p.AdoptionBucket, d, cred)
	}
	if err != nil {
		p.adoptionReportFailures.Add(1)
	} else {
		p.adoptionReports.Add(1)
	}
	p.adoption.Done(rep, err)
}

func storedAny(results []outcome) bool {
	for _, r := range results {
		if r.err == nil {
			return true
		}
	}
	return false
}
