package influxv2

import (
	"fmt"
	"testing"
)

// TestLoseAnswerOnInfluxDB2: the fault works on the 2.x personality too: the
// authorization is created, the client gets no answer, and a faulted request
// is recorded.
func TestLoseAnswerOnInfluxDB2(t *testing.T) {
	f := newFixture(t, Options{})
	before := len(f.s.Authorizations())
	f.s.Inject(Fault{Path: "/api/v2/authorizations", LoseAnswer: true})
	body := fmt.Sprintf(`{"orgID":%q,"description":"lost","permissions":[%s]}`,
		f.acmeID, bucketPerm("write", f.acmeID, f.telemetryID))
	if a, err := (call{method: "POST", path: "/api/v2/authorizations", auth: f.op, body: body}).send(f.s); err == nil {
		t.Fatalf("the lost answer arrived: %d", a.status)
	}
	if n := len(f.s.Authorizations()) - before; n != 1 {
		t.Fatalf("%d authorizations created, want 1", n)
	}
	reqs := f.s.Requests()
	if last := reqs[len(reqs)-1]; !last.Faulted || last.Status != 0 {
		t.Errorf("record %+v, want a faulted request without a status", last)
	}
	if f.s.PendingFaults() != 0 {
		t.Error("the fault was not used")
	}
}
