package influxdb_v2_rotating

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/influxdata/telegraf"
	"github.com/influxrotate/influxrotate/internal/lineproto"
)

// batch is what goes to one bucket in one request: first the metrics of a
// write, then, serialised, their lines (a whole batch or, after a 413,
// half of one).
type batch struct {
	bucket  string
	metrics []telegraf.Metric // nil once serialised, and for raw input
	// indices[i] is the position in the write of metric i or, once
	// serialised, of the metric on line i; nil for raw input.
	indices []int
	body    []byte // newline-terminated lines, uncompressed
	// ends[i] is the offset just past line i in body; nil for raw input,
	// where lines are found by scanning for newlines.
	ends  []int
	count int // number of lines
}

// createBatches cuts metrics into batches of at most size for one bucket,
// as the stock plugin does when bucket_tag is unset.
func createBatches(metrics []telegraf.Metric, bucket string, size int) []*batch {
	if len(metrics) == 0 {
		return nil
	}
	size = max(size, 1)
	number := (len(metrics) + size - 1) / size
	batches := make([]*batch, 0, number)
	// One allocation for every batch's indices.
	all := make([]int, len(metrics))
	for i := range all {
		all[i] = i
	}
	for begin := 0; begin < len(metrics); begin += size {
		end := min(begin+size, len(metrics))
		batches = append(batches, &batch{bucket: bucket, metrics: metrics[begin:end], indices: all[begin:end]})
	}
	return batches
}

// createBatchesFromTag groups metrics by the value of tag (fallback when the
// tag is absent) and cuts each group into batches of at most size. The order
// of buckets follows their first appearance so that writes are reproducible.
// With exclude the tag is left out when serialising, without copying the
// metric as the stock plugin does.
func createBatchesFromTag(metrics []telegraf.Metric, tag, fallback string, size int) []*batch {
	size = max(size, 1)
	var order []string
	groups := make(map[string]*batch)
	for i, m := range metrics {
		bucket, ok := m.GetTag(tag)
		if !ok || bucket == "" {
			bucket = fallback
		}
		b, found := groups[bucket]
		if !found {
			b = &batch{bucket: bucket}
			groups[bucket] = b
			order = append(order, bucket)
		}
		b.metrics = append(b.metrics, m)
		b.indices = append(b.indices, i)
	}
	batches := make([]*batch, 0, len(groups))
	for _, name := range order {
		b := groups[name]
		for begin := 0; begin < len(b.metrics); begin += size {
			end := min(begin+size, len(b.metrics))
			batches = append(batches, &batch{bucket: b.bucket, metrics: b.metrics[begin:end], indices: b.indices[begin:end]})
		}
	}
	return batches
}

// split halves a serialised batch at a line boundary. It returns ok=false
// for a batch
// of one line, which cannot be split.
func (c *batch) split() (first, second *batch, ok bool) {
	if c.count < 2 {
		return nil, nil, false
	}
	half := c.count / 2
	if c.ends != nil {
		cut := c.ends[half-1]
		ends2 := make([]int, len(c.ends)-half)
		for i, e := range c.ends[half:] {
			ends2[i] = e - cut
		}
		return &batch{bucket: c.bucket, body: c.body[:cut], ends: c.ends[:half], indices: c.indices[:half], count: half},
			&batch{bucket: c.bucket, body: c.body[cut:], ends: ends2, indices: c.indices[half:], count: c.count - half}, true
	}
	// Raw line protocol: cut after the half-th newline.
	cut, n := 0, 0
	for n < half {
		i := bytes.IndexByte(c.body[cut:], '\n')
		if i < 0 {
			break
		}
		cut += i + 1
		n++
	}
	if cut == 0 || cut >= len(c.body) {
		return nil, nil, false
	}
	return &batch{bucket: c.bucket, body: c.body[:cut], count: n},
		&batch{bucket: c.bucket, body: c.body[cut:], count: c.count - n}, true
}

// errLimit marks the end of what the rate limit allows in this flush.
var errLimit = errors.New("rate limit reached")

// serializer serialises batches within the rate limit, writing each
// metric with the shared line-protocol serializer.
type serializer struct {
	lines *lineproto.Serializer
}

// serialize appends b's metrics to buf. Metrics that cannot be encoded are
// reported in rejected (flush indices) with their errors. It stops before
// the metric that would take the body past limit bytes and then returns
// errLimit; the metrics not serialised are left for a later flush.
func (s serializer) serialize(buf []byte, b *batch, limit int64) (c *batch, rejected []int, rejectErrs []error, err error) {
	var ts lineproto.TimeCache
	buf = buf[:0]
	c = &batch{bucket: b.bucket, ends: make([]int, 0, len(b.metrics)), indices: make([]int, 0, len(b.metrics))}
	for i, m := range b.metrics {
		start := len(buf)
		var merr error
		if buf, merr = s.lines.Append(buf, m, &ts); merr != nil {
			rejected = append(rejected, b.indices[i])
			rejectErrs = append(rejectErrs, fmt.Errorf("metric %q: %w", m.Name(), merr))
			continue
		}
		if int64(len(buf)) > limit {
			buf = buf[:start]
			err = errLimit
			break
		}
		c.ends = append(c.ends, len(buf))
		c.indices = append(c.indices, b.indices[i])
	}
	c.body = buf
	c.count = len(c.ends)
	return c, rejected, rejectErrs, err
}
