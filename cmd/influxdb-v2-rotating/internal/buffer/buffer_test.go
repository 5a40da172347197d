package buffer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/lines"
)

func blockOf(text ...string) *lines.Block {
	blk := &lines.Block{}
	for _, l := range text {
		off := len(blk.Raw)
		blk.Raw = append(blk.Raw, l+"\n"...)
		blk.Lines = append(blk.Lines, lines.Line{Bucket: "b", Off: off, End: len(blk.Raw)})
	}
	blk.Finish()
	return blk
}

func TestBufferBoundInMetrics(t *testing.T) {
	b := New(3, 1<<20, 2, nil)
	ctx := context.Background()
	if !b.WaitRoom(ctx, 2, 10) {
		t.Fatal("empty buffer refused")
	}
	b.Put(blockOf("a v=1", "a v=2"), 0)
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if b.WaitRoom(short, 2, 10) {
		t.Fatal("4 metrics fit in a buffer of 3")
	}
	if !b.WaitRoom(ctx, 1, 10) {
		t.Fatal("3 metrics do not fit in a buffer of 3")
	}
	b.Put(blockOf("a v=3"), 0)
	if !b.Full() {
		t.Fatal("buffer at its limit is not full")
	}

	// A reader waiting for room is woken when a batch is written.
	got := make(chan bool, 1)
	go func() { got <- b.WaitRoom(ctx, 2, 10) }()
	select {
	case <-got:
		t.Fatal("waitRoom returned while the buffer is full")
	case <-time.After(20 * time.Millisecond):
	}
	ps := b.Next(2)
	if len(ps) != 2 || string(ps[0].Bytes) != "a v=1\n" {
		t.Fatalf("next = %+v", ps)
	}
	b.Done(ps)
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("waitRoom failed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waitRoom not woken after done")
	}
	if m, _ := b.Len(); m != 1 {
		t.Fatalf("len = %d, want 1", m)
	}
}

func TestBufferBoundInBytes(t *testing.T) {
	b := New(1000, 20, 10, nil)
	b.Put(blockOf("a v=1", "a v=2"), 0) // 12 bytes
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if b.WaitRoom(short, 1, 9) {
		t.Fatal("21 bytes fit in 20")
	}
	if !b.WaitRoom(context.Background(), 1, 8) {
		t.Fatal("20 bytes do not fit in 20")
	}
	// An empty buffer takes a block larger than its limits, or a huge read
	// could never make progress.
	e := New(1, 1, 1, nil)
	if !e.WaitRoom(context.Background(), 5, 500) {
		t.Fatal("empty buffer refused an oversize block")
	}
}

func TestBufferKeepsFailedAndOrder(t *testing.T) {
	b := New(100, 1<<20, 3, nil)
	b.Put(blockOf("a v=1", "a v=2", "a v=3", "a v=4"), 0)
	first := b.Next(3)
	// Only the middle entry was written (another bucket, say).
	b.Done(first[1:2])
	if m, _ := b.Len(); m != 4 {
		t.Fatalf("an entry behind an unwritten one left the queue: len %d", m)
	}
	again := b.Next(3)
	var lines []string
	for _, p := range again {
		lines = append(lines, strings.TrimSpace(string(p.Bytes)))
	}
	if strings.Join(lines, ",") != "a v=1,a v=3,a v=4" {
		t.Fatalf("retry batch = %v", lines)
	}
	b.Done(again)
	if m, by := b.Len(); m != 0 || by != 0 {
		t.Fatalf("len = %d/%d after all done", m, by)
	}
}

func TestBufferPopAcknowledgesSegments(t *testing.T) {
	b := New(100, 1<<20, 10, nil)
	var acked map[int64]int
	b.onPop = func(s map[int64]int) { acked = s }
	b.Put(blockOf("a v=1", "a v=2"), 7)
	b.Put(blockOf("a v=3"), 8)
	b.Done(b.Next(10))
	if acked[7] != 2 || acked[8] != 1 {
		t.Fatalf("acked = %v", acked)
	}
}
