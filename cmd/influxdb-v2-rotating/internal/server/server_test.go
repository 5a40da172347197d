package server

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/execdtest"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

func writeLines(t *testing.T, w io.Writer, from, to int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(execdtest.Line(i))
		b.WriteByte('\n')
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		t.Errorf("writing stdin: %v", err)
	}
}

func wantAll(t *testing.T, got []string, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("stored %d lines, want %d", len(got), to-from)
	}
	for i, l := range got {
		if l != execdtest.Line(from+i) {
			t.Fatalf("line %d = %q, want %q (order or content changed)", i, l, execdtest.Line(from+i))
		}
	}
}

func TestServeWritesEverythingInBatches(t *testing.T) {
	be := newFake()
	var sizes []int
	be.fail = func(_ int, _ string, lines []byte) error {
		sizes = append(sizes, strings.Count(string(lines), "\n"))
		return nil
	}
	r := start(t, testSettings(), be)
	writeLines(t, r.stdin, 0, 95)
	r.stdin.Close()
	if code := r.exit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	wantAll(t, be.storedLines(), 0, 95)
	for _, n := range sizes {
		if n > 10 {
			t.Fatalf("a batch of %d metrics exceeds batch-size 10", n)
		}
	}
	if !be.closed.Load() {
		t.Fatal("plugin not closed")
	}
	if !strings.Contains(r.logs.String(), "all metrics written") {
		t.Fatalf("logs:\n%s", r.logs)
	}
}

func TestServeKeepsFailedBatchesUntilTheServerRecovers(t *testing.T) {
	be := newFake()
	// The first five attempts fail the way a 401 without a new token, a
	// 503 and a network error do.
	be.fail = func(n int, _ string, _ []byte) error {
		if n <= 5 {
			return &fakeErr{retry: true, wait: 10 * time.Millisecond, msg: fmt.Sprintf("503 attempt %d", n)}
		}
		return nil
	}
	set := testSettings()
	r := start(t, set, be)
	writeLines(t, r.stdin, 0, 50)
	wait.For(t, 10*time.Second, "all lines stored", func() bool { return len(be.storedLines()) == 50 })
	wantAll(t, be.storedLines(), 0, 50)
	if got := r.srv.flusher.Counters.WriteFailures.Load(); got != 5 {
		t.Fatalf("write failures = %d, want 5", got)
	}
	wait.For(t, 5*time.Second, "the recovery logged", func() bool {
		return strings.Contains(r.logs.String(), "writes succeed again")
	})
	// Telegraf shows every stderr line as an error: five failures in a row
	// are three lines, not five.
	if n := strings.Count(r.logs.String(), "keeping the batch"); n != 3 {
		t.Fatalf("%d retry lines logged for 5 failures, want 3:\n%s", n, r.logs)
	}
}

func TestServeBackpressureStopsReadingStdin(t *testing.T) {
	be := newFake()
	be.gate = make(chan struct{})
	set := testSettings()
	set.BufferLimit = 40
	r := start(t, set, be)

	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		// Far more than the buffer and the pipe hold together.
		for i := 0; i < 400; i += 20 {
			writeLines(t, r.stdin, i, i+20)
		}
	}()
	wait.For(t, 10*time.Second, "a full buffer", func() bool {
		m, _ := r.srv.buf.Len()
		return m >= set.BufferLimit
	})
	select {
	case <-wrote:
		t.Fatal("stdin was read past the buffer limit")
	case <-time.After(100 * time.Millisecond):
	}
	if m, _ := r.srv.buf.Len(); m > set.BufferLimit {
		t.Fatalf("buffer holds %d metrics, limit %d", m, set.BufferLimit)
	}
	close(be.gate) // the server is back
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer stayed blocked after the server recovered")
	}
	wait.For(t, 10*time.Second, "all lines stored", func() bool { return len(be.storedLines()) == 400 })
	wantAll(t, be.storedLines(), 0, 400)
}

func TestServeDropsOnlyWhatTheServerRefuses(t *testing.T) {
	be := newFake()
	be.fail = func(_ int, _ string, lines []byte) error {
		if strings.Contains(string(lines), "v=13i") {
			return &fakeErr{retry: false, msg: "422 Unprocessable Entity: unprocessable entity: field type conflict"}
		}
		return nil
	}
	r := start(t, testSettings(), be)
	writeLines(t, r.stdin, 0, 30)
	r.stdin.Close()
	r.exit(t, 10*time.Second)
	got := be.storedLines()
	// The batch holding metric 13 (10..19) is dropped, nothing else.
	if len(got) != 20 || got[9] != execdtest.Line(9) || got[10] != execdtest.Line(20) {
		t.Fatalf("stored %d: %q", len(got), got)
	}
	if r.srv.flusher.Counters.Dropped.Load() != 10 {
		t.Fatalf("dropped = %d, want 10", r.srv.flusher.Counters.Dropped.Load())
	}
	if !strings.Contains(r.logs.String(), "field type conflict") {
		t.Fatalf("server message not logged:\n%s", r.logs)
	}
}

func TestServeShutdownDeadline(t *testing.T) {
	be := newFake()
	be.gate = make(chan struct{}) // the server never answers
	set := testSettings()
	set.ShutdownTimeout = 300 * time.Millisecond
	r := start(t, set, be)
	writeLines(t, r.stdin, 0, 25)
	wait.For(t, 5*time.Second, "25 buffered", func() bool { m, _ := r.srv.buf.Len(); return m == 25 })
	begin := time.Now()
	r.stop() // SIGTERM
	if code := r.exit(t, 5*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("shutdown took %s with a 300ms deadline", d)
	}
	if !strings.Contains(r.logs.String(), "unsent metrics are lost") || !strings.Contains(r.logs.String(), "metrics=25") {
		t.Fatalf("lost count not logged:\n%s", r.logs)
	}
}

func TestServeSpoolKeepsWhatCouldNotBeSent(t *testing.T) {
	dir := t.TempDir()
	be := newFake()
	be.gate = make(chan struct{})
	set := testSettings()
	set.SpoolDir = dir
	set.ShutdownTimeout = 200 * time.Millisecond
	r := start(t, set, be)
	writeLines(t, r.stdin, 0, 35)
	wait.For(t, 5*time.Second, "35 buffered", func() bool { m, _ := r.srv.buf.Len(); return m == 35 })
	r.stdin.Close() // EOF
	r.exit(t, 5*time.Second)
	if !strings.Contains(r.logs.String(), "stay in the spool") {
		t.Fatalf("logs:\n%s", r.logs)
	}

	// The next start replays them before reading stdin.
	be2 := newFake()
	r2 := start(t, set, be2)
	writeLines(t, r2.stdin, 35, 40)
	r2.stdin.Close()
	r2.exit(t, 10*time.Second)
	wantAll(t, be2.storedLines(), 0, 40)
	if r2.srv.pipe.Replayed.Load() != 35 {
		t.Fatalf("replayed %d", r2.srv.pipe.Replayed.Load())
	}
	// Everything written: the spool is empty.
	paths, _ := execdtest.SpoolSegments(dir)
	for _, path := range paths {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			t.Fatalf("segment %s still holds %d bytes", path, fi.Size())
		}
	}
}

func TestServeSIGHUPReloads(t *testing.T) {
	be := newFake()
	r := start(t, testSettings(), be)
	r.hup <- struct{}{}
	wait.For(t, 5*time.Second, "a reload", func() bool { return be.reloads.Load() == 1 })
}

func TestServeWritesItsStatistics(t *testing.T) {
	be := newFake()
	set := testSettings()
	set.StatsInterval = 20 * time.Millisecond
	r := start(t, set, be)
	writeLines(t, r.stdin, 0, 3)
	r.stdin.Write([]byte("garbage\n"))
	wait.For(t, 5*time.Second, "a statistics point counting the input", func() bool {
		for _, l := range be.statsLines() {
			if strings.Contains(l, "execd_lines_read=3i") && strings.Contains(l, "execd_lines_malformed=1i") {
				return true
			}
		}
		return false
	})
	l := be.statsLines()[0]
	for _, want := range []string{"internal_token_rotation,", "client_id=test-client", "rotations=3i", "auth_failures=1i"} {
		if !strings.Contains(l, want) {
			t.Fatalf("statistics line %q lacks %q", l, want)
		}
	}
}
