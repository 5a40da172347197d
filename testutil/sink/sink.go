// Package sink is a loopback HTTP server that accepts any write and only
// counts what it received: requests, bytes on the wire and line-protocol
// lines (after gunzipping when Content-Encoding is gzip).
//
// Benchmarks use it so that every writer under test (our plugin, Telegraf's
// stock outputs.influxdb_v2, a raw POST of pre-serialised bytes, the execd
// binary) pays for the same, cheapest possible server; the numbers then
// compare the writers, not the server. It checks no token and stores no
// point: use testutil/influxv2 for correctness.
package sink

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Sink is the server. All methods are safe for concurrent use.
type Sink struct {
	srv      *http.Server
	ln       net.Listener
	url      string
	done     chan struct{}
	requests atomic.Int64
	lines    atomic.Int64
	wire     atomic.Int64 // body bytes as sent (compressed when gzip)
	raw      atomic.Int64 // body bytes after gunzip
	errors   atomic.Int64 // bodies that could not be read or gunzipped
}

// New starts a sink on 127.0.0.1 with a random port.
func New() (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Sink{ln: ln, url: "http://" + ln.Addr().String(), done: make(chan struct{})}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// NewTest starts a sink closed when tb ends.
func NewTest(tb testing.TB) *Sink {
	tb.Helper()
	s, err := New()
	if err != nil {
		tb.Fatalf("sink: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// URL is the base URL, e.g. "http://127.0.0.1:41234".
func (s *Sink) URL() string { return s.url }

// Close stops the server and waits for it.
func (s *Sink) Close() {
	_ = s.srv.Close()
	<-s.done
}

// Requests, Lines, WireBytes, RawBytes and Errors are the totals so far.
func (s *Sink) Requests() int64  { return s.requests.Load() }
func (s *Sink) Lines() int64     { return s.lines.Load() }
func (s *Sink) WireBytes() int64 { return s.wire.Load() }
func (s *Sink) RawBytes() int64  { return s.raw.Load() }
func (s *Sink) Errors() int64    { return s.errors.Load() }

// Reset sets every total to zero (between benchmark runs).
func (s *Sink) Reset() {
	s.requests.Store(0)
	s.lines.Store(0)
	s.wire.Store(0)
	s.raw.Store(0)
	s.errors.Store(0)
}

// WaitLines waits until at least n lines arrived or timeout passed, and
// reports whether they did. It polls: the sink has no per-line signal, and
// a channel per request would cost more than the writers being measured.
func (s *Sink) WaitLines(n int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for s.lines.Load() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

var gzPool sync.Pool // *gzip.Reader

// countingReader counts the bytes read from the wire.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ServeHTTP counts the request and answers 204 like InfluxDB's write
// endpoint; GET /health and /ping answer too, for clients that check.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	cr := &countingReader{r: r.Body}
	var body io.Reader = cr
	var gz *gzip.Reader
	if r.Header.Get("Content-Encoding") == "gzip" {
		var err error
		if v := gzPool.Get(); v != nil {
			gz = v.(*gzip.Reader)
			err = gz.Reset(cr)
		} else {
			gz, err = gzip.NewReader(cr)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) { // an empty gzip body is an empty write
				s.errors.Add(1)
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = bytes.NewReader(nil)
			gz = nil
		} else {
			body = gz
			defer gzPool.Put(gz)
		}
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var lines, raw int64
	var last byte = '\n'
	for {
		n, err := body.Read(buf)
		if n > 0 {
			lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
			raw += int64(n)
			last = buf[n-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			s.errors.Add(1)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	if last != '\n' { // a last line without its newline still counts
		lines++
	}
	s.requests.Add(1)
	s.lines.Add(lines)
	s.raw.Add(raw)
	s.wire.Add(cr.n)
	w.WriteHeader(http.StatusNoContent)
}
