package influxv2

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPointsByAuthorizationConcurrent: writers using an old and a new token at once,
// the way a rotation overlaps; every point must be recorded exactly once with the
// authorization that wrote it.
func TestPointsByAuthorizationConcurrent(t *testing.T) {
	s := NewTest(t, Options{})
	old := s.WriteAuthorization("acme", "telemetry")
	next := s.WriteAuthorization("acme", "telemetry")
	const writers, batches, lines = 6, 20, 5

	var wg sync.WaitGroup
	errs := make(chan error, writers*batches)
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				a := old
				if b >= batches/2 {
					a = next
				}
				var body strings.Builder
				for l := 0; l < lines; l++ {
					fmt.Fprintf(&body, "m,writer=w%d,batch=b%d v=%di %d\n", g, b, l, 1700000000000000000+l)
				}
				c := call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(a), body: body.String()}
				got, err := c.send(s)
				if err != nil {
					errs <- err
				} else if got.status != 204 {
					errs <- fmt.Errorf("writer %d batch %d: %d %s", g, b, got.status, masked(got.body))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	pts := s.Points()
	if len(pts) != writers*batches*lines {
		t.Fatalf("%d points, want %d", len(pts), writers*batches*lines)
	}
	seen := map[string]int{}
	for _, p := range pts {
		seen[p.Line]++
	}
	for line, n := range seen {
		if n != 1 {
			t.Errorf("%s stored %d times", line, n)
		}
	}
	half := writers * batches / 2 * lines
	if n := len(s.PointsBy(old.ID)); n != half {
		t.Errorf("%d points by the old token, want %d", n, half)
	}
	for _, p := range s.PointsBy(next.ID) {
		var b int
		if _, err := fmt.Sscanf(p.Tags["batch"], "b%d", &b); err != nil || b < batches/2 {
			t.Errorf("%s attributed to the new token", p.Line)
		}
	}
	if n := len(s.PointsBy(next.ID)); n != half {
		t.Errorf("%d points by the new token, want %d", n, half)
	}
}

// TestTokensNeverRecorded: logs, request records, violations and printed
// authorizations carry fingerprints, never tokens.
func TestTokensNeverRecorded(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Logger: logger, Contract: c})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := s.WriteAuthorization("acme", "telemetry")
	unknown := newToken()
	tokens := []string{w.Token, unknown, s.OperatorToken()}

	s.Inject(Fault{Status: 429})
	for _, c := range []call{
		{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(w), body: aLine},
		{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(w), body: aLine},
		{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry&precision=h", auth: "Token " + unknown},
		{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: "Basic " + unknown},
		{method: "GET", path: "/api/v2/authorizations?token=" + w.Token, auth: "Token " + s.OperatorToken()},
	} {
		c.do(t, s)
	}
	s.Close()

	mu.Lock()
	out := logs.String()
	mu.Unlock()
	out += fmt.Sprintf("%v %+v %#v %s", s.Requests(), s.Requests(), s.Violations(), w)
	out += fmt.Sprintf("%v %+v %#v", w, w, w)
	var direct bytes.Buffer
	slog.New(slog.NewTextHandler(&direct, nil)).Info("x", "auth", w)
	out += direct.String()
	if !strings.Contains(out, fingerprint(w.Token)) {
		t.Fatal("the output does not even name the token by fingerprint; the test would prove nothing")
	}
	for i, tk := range tokens {
		if strings.Contains(out, tk) {
			t.Errorf("token %d (%s) appears in logs or records", i, fingerprint(tk))
		}
	}
	var withAuth int
	for _, r := range s.Requests() {
		if r.Fingerprint != "" {
			withAuth++
		}
	}
	if withAuth != 4 {
		t.Errorf("%d requests carry a fingerprint, want 4 (all but the Basic one)", withAuth)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestWaitPoints(t *testing.T) {
	s := NewTest(t, Options{})
	w := s.WriteAuthorization("acme", "telemetry")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if pts, err := s.WaitPoints(ctx, 1); err == nil || len(pts) != 0 {
		t.Fatalf("WaitPoints on an empty server = %d points, %v; want the deadline", len(pts), err)
	}

	done := make(chan []Point, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pts, err := s.WaitPoints(ctx, 3)
		if err != nil {
			t.Error(err)
		}
		done <- pts
	}()
	for i := 0; i < 3; i++ {
		c := call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(w), body: fmt.Sprintf("m v=%d %d\n", i, i)}
		if a := c.do(t, s); a.status != 204 {
			t.Fatalf("write %d: %d", i, a.status)
		}
	}
	select {
	case pts := <-done:
		if len(pts) != 3 {
			t.Errorf("WaitPoints returned %d points, want 3", len(pts))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitPoints did not return after 3 points")
	}
}
