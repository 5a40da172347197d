package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/flusher"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/lines"
	"github.com/influxrotate/influxrotate/testutil/capture"
)

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fakeErr is a write failure with the plugin's two outcomes.
type fakeErr struct {
	retry bool
	wait  time.Duration
	msg   string
}

func (e *fakeErr) Error() string { return e.msg }

// fakeBackend records what is written; fail decides each attempt's fate.
type fakeBackend struct {
	opts lines.Options

	mu       sync.Mutex
	attempts int
	stored   []string          // lines, in the order stored
	buckets  map[string]int    // lines stored per bucket
	bodies   map[string]string // last body per bucket
	fail     func(attempt int, bucket string, lines []byte) error

	// gate, when set, makes every write wait for it (or ctx).
	gate    chan struct{}
	reloads atomic.Int32
	closed  atomic.Bool
	stats   []string // statistics lines
}

func newFake() *fakeBackend {
	return &fakeBackend{buckets: map[string]int{}, bodies: map[string]string{}, opts: lines.Options{DefaultBucket: "b"}}
}

func (f *fakeBackend) WriteRaw(ctx context.Context, bucket string, lines []byte, count int) error {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return &fakeErr{retry: true, msg: "cancelled: " + ctx.Err().Error()}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(string(lines), "internal_token_rotation") {
		f.stats = append(f.stats, string(lines))
		return nil
	}
	f.attempts++
	if f.fail != nil {
		if err := f.fail(f.attempts, bucket, lines); err != nil {
			return err
		}
	}
	got := strings.Split(strings.TrimSuffix(string(lines), "\n"), "\n")
	if len(got) != count {
		return &fakeErr{retry: false, msg: "count does not match the lines"}
	}
	f.stored = append(f.stored, got...)
	f.buckets[bucket] += count
	f.bodies[bucket] = string(lines)
	return nil
}

func (f *fakeBackend) advise(err error) flusher.Advice {
	var fe *fakeErr
	if errors.As(err, &fe) {
		return flusher.Advice{Retry: fe.retry, Wait: fe.wait}
	}
	return flusher.Advice{Retry: true}
}

func (f *fakeBackend) lineOptions() lines.Options { return f.opts }

func (f *fakeBackend) statsFields() map[string]int64 {
	return map[string]int64{"rotations": 3, "auth_failures": 1}
}

func (f *fakeBackend) statsBucket() string { return "b" }

func (f *fakeBackend) reload(context.Context) { f.reloads.Add(1) }

func (f *fakeBackend) close() error {
	f.closed.Store(true)
	return nil
}

func (f *fakeBackend) storedLines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.stored...)
}

func (f *fakeBackend) statsLines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.stats...)
}

// testSettings flush quickly.
func testSettings() Settings {
	s := DefaultSettings()
	s.BatchSize = 10
	s.FlushInterval = 50 * time.Millisecond
	s.BufferLimit = 100
	s.StatsInterval = 0
	s.ShutdownTimeout = 2 * time.Second
	s.ClientID = "test-client"
	return s
}

// running is a server started on a pipe.
type running struct {
	srv   *Server
	stdin *io.PipeWriter
	logs  *capture.Buffer
	hup   chan struct{}
	stop  context.CancelFunc
	code  chan int
}

func start(t *testing.T, set Settings, be backend) *running {
	t.Helper()
	pr, pw := io.Pipe()
	logs := &capture.Buffer{}
	srv, err := New(set, be, pr, testLogger(logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, stdin: pw, logs: logs, hup: make(chan struct{}, 1), stop: cancel, code: make(chan int, 1)}
	go func() { r.code <- srv.Run(ctx, r.hup) }()
	t.Cleanup(func() {
		cancel()
		_ = pw.Close()
		select {
		case <-r.code:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return r
}

// exit waits for the server's exit code.
func (r *running) exit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case c := <-r.code:
		r.code <- c // for Cleanup
		return c
	case <-time.After(d):
		t.Fatalf("server did not exit within %s", d)
		return -1
	}
}
