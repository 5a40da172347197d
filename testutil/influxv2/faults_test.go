package influxv2

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFaultsForcedAnswers(t *testing.T) {
	s := NewTest(t, Options{})
	w := s.WriteAuthorization("acme", "telemetry")
	write := call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(w), body: aLine}

	s.Inject(
		Fault{Status: 429, RetryAfter: "7"},
		Fault{Status: 502},
		Fault{Status: 503, RetryAfter: "1", Body: `{"code":"unavailable","message":"maintenance"}`},
		Fault{Status: 504, Body: "upstream timed out"},
		Fault{Path: "/api/v2/authorizations", Status: 500},
	)
	if n := s.PendingFaults(); n != 5 {
		t.Fatalf("PendingFaults = %d, want 5", n)
	}

	a := write.do(t, s)
	a.wantError(t, 429, "too many requests", "org 0000000000000000 has exceeded limited_write plan limit")
	if a.header.Get("Retry-After") != "7" {
		t.Errorf("Retry-After = %q, want 7", a.header.Get("Retry-After"))
	}

	a = write.do(t, s)
	if a.status != 502 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(a.body, "<h1>502 Bad Gateway</h1>") || a.header.Get("X-Platform-Error-Code") != "" {
		t.Errorf("502 = %d %q %q, want an nginx HTML page", a.status, a.header.Get("Content-Type"), masked(a.body))
	}

	a = write.do(t, s)
	a.wantError(t, 503, "unavailable", "maintenance")
	if a.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1", a.header.Get("Retry-After"))
	}

	a = write.do(t, s)
	if a.status != 504 || a.body != "upstream timed out" || !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
		t.Errorf("504 = %d %q %q", a.status, a.header.Get("Content-Type"), masked(a.body))
	}

	// The fault for another path waits for its path: the write goes through.
	if a = write.do(t, s); a.status != 204 {
		t.Errorf("write after the write faults: %d %s", a.status, masked(a.body))
	}
	if n := s.PendingFaults(); n != 1 {
		t.Errorf("PendingFaults = %d, want the authorizations fault left", n)
	}
	call{method: "GET", path: "/api/v2/authorizations", auth: "Token " + s.OperatorToken()}.do(t, s).
		wantError(t, 500, "internal error", "internal server error")

	if pts := s.Points(); len(pts) != 1 {
		t.Errorf("%d points, want only the one written after the faults", len(pts))
	}
	var faulted int
	for _, r := range s.Requests() {
		if r.Faulted {
			faulted++
		}
	}
	if faulted != 5 {
		t.Errorf("%d requests recorded as faulted, want 5", faulted)
	}
}

func TestFaultDelay(t *testing.T) {
	s := NewTest(t, Options{})
	w := s.WriteAuthorization("acme", "telemetry")
	post := func(ctx context.Context) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", s.URL()+"/api/v2/write?org=acme&bucket=telemetry", strings.NewReader(aLine))
		req.Header.Set("Authorization", tok(w))
		return client.Do(req)
	}

	// A delayed normal answer: a client with a short deadline gives up, nothing stored.
	s.Inject(Fault{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := post(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the client's deadline", err)
	}

	// A short delay, then the normal answer.
	s.Inject(Fault{Delay: 20 * time.Millisecond})
	start := time.Now()
	resp, err := post(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || time.Since(start) < 20*time.Millisecond {
		t.Errorf("delayed write: %d after %v", resp.StatusCode, time.Since(start))
	}
	// The abandoned write must not have been stored; the delayed one must.
	if n := len(s.Points()); n != 1 {
		t.Errorf("%d points, want 1", n)
	}
}

func TestFaultResetConnection(t *testing.T) {
	s := NewTest(t, Options{})
	w := s.WriteAuthorization("acme", "telemetry")
	s.Inject(Fault{ResetConnection: true})
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("POST", s.URL()+"/api/v2/write?org=acme&bucket=telemetry", strings.NewReader(aLine))
	req.Header.Set("Authorization", tok(w))
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("status %d, want a connection error", resp.StatusCode)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Errorf("err = %v, want a connection reset", err)
	}
	if n := len(s.Points()); n != 0 {
		t.Errorf("%d points stored from a reset request", n)
	}
}

func TestFaultSlowBody(t *testing.T) {
	s := NewTest(t, Options{})
	w := s.WriteAuthorization("acme", "telemetry")
	s.Inject(Fault{Status: 503, SlowBody: true})
	c := &http.Client{Timeout: 200 * time.Millisecond}
	req, _ := http.NewRequest("POST", s.URL()+"/api/v2/write?org=acme&bucket=telemetry", strings.NewReader(aLine))
	req.Header.Set("Authorization", tok(w))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("headers should arrive at once: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("reading a 64-byte body at 20 bytes/s finished within 200ms")
	}
}

// TestCloseEndsDelayedAnswers: Close must not wait for an injected delay.
func TestCloseEndsDelayedAnswers(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := s.WriteAuthorization("acme", "telemetry")
	s.Inject(Fault{Delay: time.Hour})
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.URL()+"/api/v2/write?org=acme&bucket=telemetry", strings.NewReader(aLine))
		req.Header.Set("Authorization", tok(w))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	// Wait until the request is inside the server (the fault was taken).
	deadline := time.Now().Add(5 * time.Second)
	for s.PendingFaults() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("request never reached the server")
		}
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a delayed answer")
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("the client got an answer to a request cut by Close, want a connection error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client still waiting after Close")
	}
}
