package influxv2

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestContractAcceptsWhatClientsSend: the requests a Telegraf output, a prober and a
// controller send are all valid for the contract, so NewTest does not fail good code.
func TestContractAcceptsWhatClientsSend(t *testing.T) {
	f := newFixture(t, Options{})
	before := len(f.s.Violations()) // the fixture's own requests
	if before != 0 {
		t.Fatalf("fixture requests violate the contract: %v", f.s.Violations())
	}
	w := tok(f.writer)
	created := struct{ ID string }{}
	requests := []call{
		{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry&precision=ns", auth: w, body: aLine,
			header: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: w, body: gzipped(t, aLine),
			header: map[string]string{"Content-Encoding": "gzip", "Accept": "application/json"}},
		{method: "POST", path: "/api/v2/write?orgID=" + f.acmeID + "&bucket=" + f.telemetryID + "&precision=s", auth: "Bearer " + f.writer.Token},
		{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(f.inactive)}, // a probe, refused
		{method: "GET", path: "/api/v2/authorizations?orgID=" + f.acmeID, auth: f.op},
		{method: "GET", path: "/api/v2/authorizations?org=acme&user=admin", auth: f.op},
		{method: "GET", path: "/api/v2/authorizations/" + f.writer.ID, auth: f.op},
		{method: "PATCH", path: "/api/v2/authorizations/" + f.writer.ID, auth: f.op, body: `{"status":"inactive","description":"old"}`},
		{method: "GET", path: "/api/v2/orgs?org=acme", auth: f.op},
		{method: "GET", path: "/api/v2/buckets?name=telemetry&org=acme", auth: f.op},
		{method: "GET", path: "/health"},
		{method: "GET", path: "/ping"},
		{method: "HEAD", path: "/ping"},
	}
	for _, c := range requests {
		c.do(t, f.s)
	}
	a := call{method: "POST", path: "/api/v2/authorizations", auth: f.op, body: fmt.Sprintf(
		`{"orgID":%q,"description":"next","status":"active","permissions":[%s]}`, f.acmeID, bucketPerm("write", f.acmeID, f.telemetryID))}.do(t, f.s)
	a.decode(t, &created)
	call{method: "DELETE", path: "/api/v2/authorizations/" + created.ID, auth: f.op}.do(t, f.s)
	if v := f.s.Violations(); len(v) != 0 {
		t.Errorf("valid requests reported as contract violations:\n%v", v)
	}
}

// TestContractRejects proves the validator can fail: each request is one the real
// API would refuse or does not have, and each must be reported.
func TestContractRejects(t *testing.T) {
	f := newFixture(t, Options{})
	w := tok(f.writer)
	tests := []struct {
		name string
		call call
		want string
	}{
		{"precision outside the enum", call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry&precision=h", auth: w},
			`parameter "precision" in query`},
		{"write without bucket", call{method: "POST", path: "/api/v2/write?org=acme", auth: w}, `parameter "bucket" in query`},
		// 2.x gunzips x-gzip too, but the contract allows only gzip and identity.
		{"x-gzip encoding", call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: w, body: gzipped(t, aLine),
			header: map[string]string{"Content-Encoding": "x-gzip"}}, `parameter "Content-Encoding" in header`},
		{"write content type", call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: w, body: aLine,
			header: map[string]string{"Content-Type": "application/json"}}, `parameter "Content-Type" in header`},
		{"write without Authorization", call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry"}, "security requirements failed"},
		{"Basic on write", call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: "Basic eDp5"}, "security requirements failed"},
		{"authorization without orgID", call{method: "POST", path: "/api/v2/authorizations", auth: f.op,
			body: `{"permissions":[` + bucketPerm("write", f.acmeID, f.telemetryID) + `]}`}, `property "orgID" is missing`},
		{"authorization with an unknown action", call{method: "POST", path: "/api/v2/authorizations", auth: f.op,
			body: fmt.Sprintf(`{"orgID":%q,"permissions":[%s]}`, f.acmeID, bucketPerm("delete", f.acmeID, f.telemetryID))}, `"/permissions/0/action"`},
		{"authorization with an unknown resource type", call{method: "POST", path: "/api/v2/authorizations", auth: f.op,
			body: fmt.Sprintf(`{"orgID":%q,"permissions":[{"action":"write","resource":{"type":"galaxies"}}]}`, f.acmeID)}, `"/permissions/0/resource/type"`},
		{"patch with an unknown status", call{method: "PATCH", path: "/api/v2/authorizations/" + f.writer.ID, auth: f.op,
			body: `{"status":"revoked"}`}, `"/status"`},
		{"method the contract does not have", call{method: "DELETE", path: "/api/v2/write", auth: w}, "method not allowed"},
		{"path the contract does not have", call{method: "GET", path: "/api/v2/tokens", auth: w}, "no matching operation was found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.s.Violations())
			tt.call.do(t, f.s)
			v := f.s.Violations()
			if len(v) != before+1 {
				t.Fatalf("%d new violations, want 1: %v", len(v)-before, v[before:])
			}
			if !strings.Contains(v[before].Error(), tt.want) {
				t.Errorf("violation %q does not mention %q", v[before], tt.want)
			}
		})
	}
}

// recordingTB stands in for the test NewTest is given, to see what it reports.
type recordingTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) finish() []string {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	return r.errs
}

func TestNewTestFailsOnViolation(t *testing.T) {
	for _, tt := range []struct {
		name      string
		precision string
		wantFail  bool
	}{
		{"valid request", "ms", false},
		{"invalid request", "minutes", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rt := &recordingTB{TB: t}
			s := NewTest(rt, Options{})
			w := s.WriteAuthorization("acme", "telemetry")
			call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry&precision=" + tt.precision, auth: tok(w)}.do(t, s)
			errs := rt.finish()
			if tt.wantFail != (len(errs) > 0) {
				t.Fatalf("NewTest reported %q, want failure=%t", errs, tt.wantFail)
			}
			if tt.wantFail && !strings.Contains(errs[0], `parameter "precision"`) {
				t.Errorf("report %q does not name the bad parameter", errs[0])
			}
			// Cleanup closed the server.
			if _, err := client.Get(s.URL() + "/ping"); err == nil {
				t.Error("server still answers after cleanup")
			}
		})
	}
}
