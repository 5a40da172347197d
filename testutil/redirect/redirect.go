// Package redirect is a hostile server for tests: every request to it is
// answered with a redirect to a second loopback listener, which records what
// reaches it. A client that follows the redirect sends its Authorization
// header there (Go keeps it for the same host name on another port).
package redirect

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Trap is the redirecting server and the listener it points to.
type Trap struct {
	// From answers every request with the redirect status, its Location
	// the same path and query on To.
	From *httptest.Server
	// To answers 204 to anything and records it.
	To *httptest.Server

	mu      sync.Mutex
	reached int
	authed  int
	asked   int
}

// New starts a Trap answering status (a 3xx) and closes it when t ends.
func New(t testing.TB, status int) *Trap {
	t.Helper()
	tr := &Trap{}
	tr.To = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.reached++
		if r.Header.Get("Authorization") != "" {
			tr.authed++
		}
		tr.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(tr.To.Close)
	tr.From = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.asked++
		tr.mu.Unlock()
		w.Header().Set("Location", tr.To.URL+r.URL.RequestURI())
		w.WriteHeader(status)
	}))
	t.Cleanup(tr.From.Close)
	return tr
}

// URL is the redirecting server's address.
func (tr *Trap) URL() string { return tr.From.URL }

// Asked is the number of requests the redirecting server answered.
func (tr *Trap) Asked() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.asked
}

// Reached is the number of requests that followed the redirect.
func (tr *Trap) Reached() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.reached
}

// CheckNothingFollowed fails t when any request followed the redirect,
// naming how many carried an Authorization header. It also fails when the
// redirecting server was never asked, since then the test proved nothing.
func (tr *Trap) CheckNothingFollowed(t testing.TB) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.asked == 0 {
		t.Error("no request reached the redirecting server: the test proves nothing")
	}
	if tr.reached > 0 {
		t.Errorf("%d request(s) followed the redirect to %s, %d of them with an Authorization header", tr.reached, tr.To.URL, tr.authed)
	}
}
