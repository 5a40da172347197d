package influxv2

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestCloseLeavesNoGoroutines: Close stops everything New started, including
// answers held by a delay or a slow body, so goleak-checked tests can use the server.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Contract: c})
	if err != nil {
		t.Fatal(err)
	}
	w := s.WriteAuthorization("acme", "telemetry")
	tr := &http.Transport{}
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	defer tr.CloseIdleConnections()

	post := func() {
		req, _ := http.NewRequest("POST", s.URL()+"/api/v2/write?org=acme&bucket=telemetry", strings.NewReader(aLine))
		req.Header.Set("Authorization", tok(w))
		if resp, err := cl.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	post()
	s.Inject(Fault{ResetConnection: true})
	post()
	// Left pending: a slow answer the client gives up on, then Close.
	s.Inject(Fault{Status: 503, SlowBody: true})
	req, _ := http.NewRequest("POST", s.URL()+"/api/v2/write?org=acme&bucket=telemetry", strings.NewReader(aLine))
	req.Header.Set("Authorization", tok(w))
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	resp.Body.Close()
}
