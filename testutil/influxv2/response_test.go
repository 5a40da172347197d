package influxv2

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
)

// TestResponsesMatchContract: the server's own answers (successes and 2.x errors)
// have the shapes the contract documents, so clients tested here decode real ones.
func TestResponsesMatchContract(t *testing.T) {
	f := newFixture(t, Options{})
	c, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ ID string }
	post := call{method: "POST", path: "/api/v2/authorizations", auth: f.op, body: fmt.Sprintf(
		`{"orgID":%q,"description":"d","permissions":[%s]}`, f.acmeID, bucketPerm("write", f.acmeID, f.telemetryID))}
	post.do(t, f.s).decode(t, &created)
	w := tok(f.writer)
	for _, tt := range []call{
		post,
		{method: "GET", path: "/api/v2/authorizations?org=acme", auth: f.op},
		{method: "GET", path: "/api/v2/authorizations/" + created.ID, auth: f.op},
		{method: "PATCH", path: "/api/v2/authorizations/" + created.ID, auth: f.op, body: `{"status":"inactive"}`},
		{method: "GET", path: "/api/v2/authorizations/aaaaaaaaaaaaaaaa", auth: f.op},
		{method: "DELETE", path: "/api/v2/authorizations/" + created.ID, auth: f.op},
		{method: "GET", path: "/api/v2/orgs?org=acme", auth: f.op},
		{method: "GET", path: "/api/v2/orgs?org=nope", auth: f.op},
		{method: "GET", path: "/api/v2/buckets?org=acme&name=telemetry", auth: f.op},
		{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: w, body: aLine},
		{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: "Token " + newToken()},
		{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(f.reader)},
		{method: "POST", path: "/api/v2/write?org=acme&bucket=nope", auth: w},
		{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: w, body: "garbage"},
		{method: "GET", path: "/health"},
		{method: "GET", path: "/ping"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var body io.Reader = http.NoBody
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, _ := http.NewRequest(tt.method, f.s.URL()+tt.path, body)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			if strings.HasPrefix(tt.body, "{") {
				req.Header.Set("Content-Type", "application/json")
			}
			a := tt.do(t, f.s)
			route, params, err := c.router.FindRoute(req)
			if err != nil {
				t.Fatal(err)
			}
			header := a.header.Clone()
			if tt.path == "/ping" {
				// The contract types X-Influxdb-Version as an integer; 2.x sends "v2.7.12".
				if header.Get("X-Influxdb-Version") != Version {
					t.Errorf("X-Influxdb-Version = %q", header.Get("X-Influxdb-Version"))
				}
				header.Del("X-Influxdb-Version")
			}
			in := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
				Status:                 a.status,
				Header:                 header,
				Body:                   io.NopCloser(strings.NewReader(a.body)),
				Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
			}
			if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
				t.Errorf("answer %d %s breaks the contract: %v", a.status, masked(a.body), err)
			}
		})
	}
}
