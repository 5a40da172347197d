package influxv2

import (
	"net/http"
	"strings"
	"testing"
)

func TestOrgs(t *testing.T) {
	f := newFixture(t, Options{})
	allAccess := f.s.AllAccessAuthorization("acme")
	names := func(a answer) []string {
		t.Helper()
		if a.status != 200 {
			t.Fatalf("status %d %s", a.status, masked(a.body))
		}
		var l struct {
			Orgs []struct{ ID, Name string }
		}
		a.decode(t, &l)
		out := []string{}
		for _, o := range l.Orgs {
			out = append(out, o.Name)
		}
		return out
	}
	for _, tt := range []struct {
		name, query, auth string
		want              []string
	}{
		{"by name", "?org=acme", f.op, []string{"acme"}},
		{"by ID", "?orgID=" + f.globexID, f.op, []string{"globex"}},
		{"all", "", f.op, []string{"acme", "globex", f.hexOrg}},
		{"all-access token reads its org", "", tok(allAccess), []string{"acme"}},
		{"write token reads no org", "?org=acme", tok(f.writer), []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := names(call{method: "GET", path: "/api/v2/orgs" + tt.query, auth: tt.auth}.do(t, f.s))
			if len(got) != len(tt.want) {
				t.Fatalf("orgs = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("orgs = %v, want %v", got, tt.want)
				}
			}
		})
	}
	call{method: "GET", path: "/api/v2/orgs?org=nope", auth: f.op}.do(t, f.s).
		wantError(t, 404, "not found", `organization name "nope" not found`)
	call{method: "GET", path: "/api/v2/orgs?org=acme"}.do(t, f.s).
		wantError(t, 401, "unauthorized", "unauthorized access")
}

func TestBuckets(t *testing.T) {
	f := newFixture(t, Options{})
	ids := func(a answer) []string {
		t.Helper()
		if a.status != 200 {
			t.Fatalf("status %d %s", a.status, masked(a.body))
		}
		var l struct {
			Buckets []struct{ ID, OrgID, Name string }
		}
		a.decode(t, &l)
		out := []string{}
		for _, b := range l.Buckets {
			out = append(out, b.ID)
		}
		return out
	}
	for _, tt := range []struct {
		name, query, auth string
		want              []string
	}{
		{"by name and org", "?name=telemetry&org=acme", f.op, []string{f.telemetryID}},
		{"by org", "?org=acme", f.op, []string{f.telemetryID, f.otherID}},
		{"by name across orgs", "?name=telemetry&orgID=" + f.globexID, f.op, []string{f.globexTelemetryID}},
		{"a bucket token reads its bucket only", "?org=acme", tok(f.writer), []string{f.telemetryID}},
		{"an inactive token reads nothing", "?org=acme", tok(f.inactive), []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ids(call{method: "GET", path: "/api/v2/buckets" + tt.query, auth: tt.auth}.do(t, f.s))
			if len(got) != len(tt.want) {
				t.Fatalf("buckets = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("buckets = %v, want %v", got, tt.want)
				}
			}
		})
	}
	call{method: "GET", path: "/api/v2/buckets?org=nope", auth: f.op}.do(t, f.s).
		wantError(t, 404, "not found", `organization name "nope" not found`)
}

func TestHealthPingAndUnknownPaths(t *testing.T) {
	s := NewTest(t, Options{})
	a := call{method: "GET", path: "/health"}.do(t, s)
	var h struct {
		Name, Message, Status, Version string
		Checks                         []any
	}
	a.decode(t, &h)
	if a.status != 200 || h.Name != "influxdb" || h.Status != "pass" || h.Message != "ready for queries and writes" ||
		h.Version != Version || h.Checks == nil {
		t.Errorf("health = %d %+v", a.status, h)
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		a := call{method: m, path: "/ping"}.do(t, s)
		if a.status != 204 || a.header.Get("X-Influxdb-Build") != "OSS" || a.header.Get("X-Influxdb-Version") != Version || a.body != "" {
			t.Errorf("%s /ping = %d %v %q", m, a.status, a.header, masked(a.body))
		}
	}
	// Requests outside the contract: checked by a server that does not fail the test.
	o := newServer(t, Options{})
	call{method: "POST", path: "/ping"}.do(t, o).wantError(t, 405, "method not allowed", "method not allowed")
	call{method: "GET", path: "/api/v2/nothing", auth: "Token x"}.do(t, o).wantError(t, 404, "not found", "path not found")
	if n := len(o.Violations()); n != 2 {
		t.Errorf("%d violations for two requests the contract does not have, want 2: %v", n, o.Violations())
	}
}

func TestAddrOption(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a := (call{method: "GET", path: "/ping"}).do(t, s); a.status != 204 {
		t.Errorf("ping: %d", a.status)
	}
	// The port is taken now: a second server on it must fail and name the option.
	_, err = New(Options{Addr: strings.TrimPrefix(s.URL(), "http://")})
	if err == nil || !strings.Contains(err.Error(), "Options.Addr") {
		t.Errorf("second server on a taken port: %v", err)
	}
}
