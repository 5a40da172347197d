package influxv2

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentAPIUse: every endpoint at once, with the contract check on, under
// -race: the server and the shared contract are safe for concurrent tests.
func TestConcurrentAPIUse(t *testing.T) {
	f := newFixture(t, Options{})
	body := fmt.Sprintf(`{"orgID":%q,"description":"d","permissions":[%s]}`, f.acmeID, bucketPerm("write", f.acmeID, f.telemetryID))
	calls := []struct {
		call
		status int
	}{
		{call{method: "POST", path: "/api/v2/authorizations", auth: f.op, body: body}, 201},
		{call{method: "PATCH", path: "/api/v2/authorizations/" + f.writer.ID, auth: f.op, body: `{"status":"active"}`}, 200},
		{call{method: "GET", path: "/api/v2/authorizations?org=acme", auth: f.op}, 200},
		{call{method: "GET", path: "/api/v2/buckets?org=acme", auth: f.op}, 200},
		{call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(f.writer), body: aLine}, 204},
		{call{method: "GET", path: "/health"}, 200},
	}
	const goroutines, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds*len(calls))
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				for _, c := range calls {
					a, err := c.send(f.s)
					if err == nil && a.status != c.status {
						err = fmt.Errorf("%s %s: %d %s", c.method, c.path, a.status, masked(a.body))
					}
					if err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v := f.s.Violations(); len(v) != 0 {
		t.Errorf("violations: %v", v)
	}
	if n, want := len(f.s.Requests()), goroutines*rounds*len(calls); n < want {
		t.Errorf("%d requests recorded, want at least %d", n, want)
	}
}
