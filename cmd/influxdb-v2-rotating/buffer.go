package main

import (
	"context"
	"sync"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/lines"
)

// entry is one line waiting to be written.
type entry struct {
	bucket string
	line   []byte
	// seg is the spool segment holding the line, 0 without a spool.
	seg  int64
	sent bool
}

// pending is an entry handed to the flusher, with its place in the queue.
type pending struct {
	idx    int
	bucket string
	line   []byte
}

// buffer is the bounded queue between the stdin reader and the flusher.
// Its limits are what turns a slow or refusing server into backpressure:
// when it is full the reader stops reading stdin, the pipe fills, and
// Telegraf's own buffer takes over.
//
// Entries leave the queue only from the head and only once written (or
// dropped after a 400/422), so a failed batch stays where it was.
type buffer struct {
	maxMetrics int
	maxBytes   int
	batchSize  int
	// onPop is called (under no lock) with the segments of popped entries,
	// so the spool can acknowledge them.
	onPop func(segs map[int64]int)

	mu     sync.Mutex
	q      []entry
	head   int
	bytes  int
	unsent int
	// space is closed and replaced whenever entries leave, waking a
	// reader waiting for room.
	space chan struct{}
	// ready receives a token when a full batch is waiting.
	ready chan struct{}
}

func newBuffer(maxMetrics, maxBytes, batchSize int) *buffer {
	return &buffer{
		maxMetrics: maxMetrics,
		maxBytes:   maxBytes,
		batchSize:  batchSize,
		space:      make(chan struct{}),
		ready:      make(chan struct{}, 1),
	}
}

// waitRoom blocks until n more metrics of size bytes fit, or the buffer is
// empty (a single read larger than the limits must still make progress).
// It returns false when ctx ends first.
func (b *buffer) waitRoom(ctx context.Context, n, size int) bool {
	for {
		b.mu.Lock()
		count := len(b.q) - b.head
		fits := count == 0 || (count+n <= b.maxMetrics && b.bytes+size <= b.maxBytes)
		space := b.space
		b.mu.Unlock()
		if fits {
			return true
		}
		select {
		case <-space:
		case <-ctx.Done():
			return false
		}
	}
}

// full reports whether the buffer is at one of its limits.
func (b *buffer) full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.q)-b.head >= b.maxMetrics || b.bytes >= b.maxBytes
}

// put appends the lines of blk, held in spool segment seg.
func (b *buffer) put(blk *lines.Block, seg int64) {
	if blk.Count() == 0 {
		return
	}
	b.mu.Lock()
	for _, l := range blk.Lines {
		line := blk.Out[l.Off:l.End:l.End]
		b.q = append(b.q, entry{bucket: l.Bucket, line: line, seg: seg})
		b.bytes += len(line)
	}
	b.unsent += blk.Count()
	isReady := b.unsent >= b.batchSize
	b.mu.Unlock()
	if isReady {
		select {
		case b.ready <- struct{}{}:
		default:
		}
	}
}

// len returns the number of metrics in the buffer and their size.
func (b *buffer) len() (metrics, bytes int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.q) - b.head, b.bytes
}

// unsentLen returns the number of metrics not yet written.
func (b *buffer) unsentLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.unsent
}

// next returns up to max entries not yet written, oldest first.
func (b *buffer) next(max int) []pending {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]pending, 0, min(max, len(b.q)-b.head))
	for i := b.head; i < len(b.q) && len(out) < max; i++ {
		if !b.q[i].sent {
			out = append(out, pending{idx: i, bucket: b.q[i].bucket, line: b.q[i].line})
		}
	}
	return out
}

// done marks entries written (or dropped) and removes the written head of
// the queue. Only the flusher calls next and done, so the indices next
// returned are still valid.
func (b *buffer) done(ps []pending) {
	b.mu.Lock()
	for _, p := range ps {
		if !b.q[p.idx].sent {
			b.q[p.idx].sent = true
			b.unsent--
		}
	}
	var segs map[int64]int
	popped := false
	for b.head < len(b.q) && b.q[b.head].sent {
		e := &b.q[b.head]
		b.bytes -= len(e.line)
		if e.seg != 0 {
			if segs == nil {
				segs = make(map[int64]int)
			}
			segs[e.seg]++
		}
		*e = entry{}
		b.head++
		popped = true
	}
	if b.head == len(b.q) {
		b.q, b.head = b.q[:0], 0
	} else if b.head > 4096 && b.head > len(b.q)/2 {
		n := copy(b.q, b.q[b.head:])
		clear(b.q[n:])
		b.q, b.head = b.q[:n], 0
	}
	if popped {
		close(b.space)
		b.space = make(chan struct{})
	}
	b.mu.Unlock()
	if segs != nil && b.onPop != nil {
		b.onPop(segs)
	}
}
