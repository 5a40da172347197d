package rotation_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// A writer wired to the library: a FileSource watches the token file, a
// Rotator holds the token in use, every flush starts with Current, and a
// write refused with 401 or 403 goes to Refused, which finds the new token
// so the same batch is retried with it and nothing is lost.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rotation-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("token-one\n"), 0o600); err != nil {
		fmt.Println(err)
		return
	}

	// InfluxDB, reduced to a write endpoint that accepts the one token it
	// holds.
	var (
		mu    sync.Mutex
		valid = "token-one"
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != "Token "+valid {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second}

	// A long debounce leaves the change below to Refused, so that this
	// example prints the same thing every time; a writer keeps the default.
	src, err := rotation.NewFileSource(rotation.FileSourceConfig{Path: path, Debounce: time.Hour, Reread: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	rot, err := rotation.NewRotator(ctx, rotation.Config{
		Source: src,
		// Prober: rotation.NewHTTPProber(...) validates a new token before
		// use; without one, tokens are taken unchecked.
		OnPromote: transport.CloseIdleConnections, // no connection outlives its token
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rot.Close()

	post := func(c *rotation.Credential, batch string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/v2/write", strings.NewReader(batch))
		if err != nil {
			return 0
		}
		req.Header.Set("Authorization", c.AuthorizationHeader())
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	flush := func(batch string) {
		c := rot.Current() // once per flush: one flush never mixes tokens
		status := post(c, batch)
		if rotation.Classify(status, nil, nil).Action == rotation.ActionAuth {
			next, retry := rot.Refused(ctx, c, status)
			if !retry {
				fmt.Println(batch, "kept buffered")
				return
			}
			status = post(next, batch)
			c = next
		}
		fmt.Println(batch, status, c.Fingerprint() == rotation.Fingerprint("token-two"))
	}

	flush("m v=1")
	// The controller rotates: the server now holds the new token only, and
	// the file says so.
	mu.Lock()
	valid = "token-two"
	mu.Unlock()
	if err := os.WriteFile(path, []byte("token-two\n"), 0o600); err != nil {
		fmt.Println(err)
		return
	}
	flush("m v=2")
	flush("m v=3")
	fmt.Println("rotations:", rot.Stats().Rotations.Load(), "refusals:", rot.Stats().AuthFailures.Load())
	// Output:
	// m v=1 204 false
	// m v=2 204 true
	// m v=3 204 true
	// rotations: 1 refusals: 1
}
