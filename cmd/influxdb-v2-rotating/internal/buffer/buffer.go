// Package buffer is the execd binary's bounded queue of lines between the
// stdin reader and the writer.
package buffer

import (
	"context"
	"sync"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/lines"
)

// Line is a line in the buffer: its bucket and bytes, and where it is.
type Line struct {
	Bucket string
	Bytes  []byte
	// idx is the line's place in the queue, for Done.
	idx int
	// seg is the spool segment holding the line, 0 without a spool.
	seg  int64
	sent bool
}

// Buffer is the bounded queue between the stdin reader and the flusher.
// Its limits are what turns a slow or refusing server into backpressure:
// when it is full the reader stops reading stdin, the pipe fills, and
// Telegraf's own buffer takes over.
//
// Lines leave the queue only from the head and only once written (or
// dropped after a 400/422), so a failed batch stays where it was.
type Buffer struct {
	maxMetrics int
	maxBytes   int
	batchSize  int
	// onPop is called (under no lock) with the segments of popped lines,
	// so the spool can acknowledge them.
	onPop func(segs map[int64]int)

	mu     sync.Mutex
	q      []Line
	head   int
	bytes  int
	unsent int
	// space is closed and replaced whenever lines leave, waking a
	// reader waiting for room.
	space chan struct{}
	// ready receives a token when a full batch is waiting.
	ready chan struct{}
}

// New returns an empty Buffer holding at most maxMetrics lines and maxBytes
// bytes, which signals Ready when batchSize lines are waiting. onPop (may be
// nil) is called with the spool segments of the lines that leave it.
func New(maxMetrics, maxBytes, batchSize int, onPop func(segs map[int64]int)) *Buffer {
	return &Buffer{
		maxMetrics: maxMetrics,
		maxBytes:   maxBytes,
		batchSize:  batchSize,
		onPop:      onPop,
		space:      make(chan struct{}),
		ready:      make(chan struct{}, 1),
	}
}

// WaitRoom blocks until n more metrics of size bytes fit, or the buffer is
// empty (a single read larger than the limits must still make progress).
// It returns false when ctx ends first.
func (b *Buffer) WaitRoom(ctx context.Context, n, size int) bool {
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

// Put appends the lines of blk, held in spool segment seg.
func (b *Buffer) Put(blk *lines.Block, seg int64) {
	if blk.Count() == 0 {
		return
	}
	b.mu.Lock()
	for _, l := range blk.Lines {
		line := blk.Out[l.Off:l.End:l.End]
		b.q = append(b.q, Line{Bucket: l.Bucket, Bytes: line, seg: seg})
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

// Len returns the number of metrics in the buffer and their size.
func (b *Buffer) Len() (metrics, bytes int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.q) - b.head, b.bytes
}

// Unsent returns the number of metrics not yet written.
func (b *Buffer) Unsent() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.unsent
}

// Next returns up to max lines not yet written, oldest first.
func (b *Buffer) Next(max int) []Line {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Line, 0, min(max, len(b.q)-b.head))
	for i := b.head; i < len(b.q) && len(out) < max; i++ {
		if !b.q[i].sent {
			out = append(out, Line{Bucket: b.q[i].Bucket, Bytes: b.q[i].Bytes, idx: i})
		}
	}
	return out
}

// Done marks lines written (or dropped) and removes the written head of
// the queue. Only the writer calls Next and Done, so the indices Next
// returned are still valid.
func (b *Buffer) Done(ps []Line) {
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
		b.bytes -= len(e.Bytes)
		if e.seg != 0 {
			if segs == nil {
				segs = make(map[int64]int)
			}
			segs[e.seg]++
		}
		*e = Line{}
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

// Ready receives a token when a full batch is waiting.
func (b *Buffer) Ready() <-chan struct{} { return b.ready }
