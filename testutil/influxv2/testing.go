package influxv2

import "testing"

// NewTest starts a server for a test with contract checking on: every request that
// the real API would not accept fails t when the test ends. The server closes on
// cleanup.
func NewTest(t testing.TB, opts Options) *Server {
	t.Helper()
	c, err := LoadContract()
	if err != nil {
		t.Fatalf("influxv2: %v", err)
	}
	opts.Contract = c
	s, err := New(opts)
	if err != nil {
		t.Fatalf("influxv2: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		for _, v := range s.Violations() {
			t.Errorf("influxv2: request breaks the InfluxDB OpenAPI contract: %v", v)
		}
	})
	return s
}
