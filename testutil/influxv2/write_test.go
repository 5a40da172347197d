package influxv2

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// fixture is an instance with two orgs that both have a bucket "telemetry", and
// tokens with different rights on acme/telemetry.
type fixture struct {
	s                                  *Server
	acmeID, globexID, telemetryID      string
	otherID, globexTelemetryID, hexOrg string
	op                                 string
	writer, reader, otherBucket        Authorization
	inactive, bob                      Authorization
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	s := newServer(t, opts)
	f := &fixture{s: s, op: "Token " + s.OperatorToken()}
	f.telemetryID = s.CreateBucket("acme", "telemetry")
	f.otherID = s.CreateBucket("acme", "other")
	f.globexTelemetryID = s.CreateBucket("globex", "telemetry")
	f.acmeID = s.CreateOrg("acme")
	f.globexID = s.CreateOrg("globex")
	// An org whose name is a valid ID: 2.x looks a 16-hex org up as an ID only.
	f.hexOrg = "0123456789abcdef"
	s.CreateBucket(f.hexOrg, "telemetry")

	f.writer = s.WriteAuthorization("acme", "telemetry")
	f.reader = s.CreateAuthorization("acme", "read only", Permission{"read", Resource{Type: "buckets", ID: f.telemetryID, OrgID: f.acmeID}})
	f.otherBucket = s.WriteAuthorization("acme", "other")
	f.inactive = s.WriteAuthorization("acme", "telemetry")
	if err := s.SetActive(f.inactive.ID, false); err != nil {
		t.Fatal(err)
	}

	// bob's token is created through the API, for a user then made inactive.
	bobID := s.CreateUser("bob")
	a := call{method: "POST", path: "/api/v2/authorizations", auth: f.op, body: fmt.Sprintf(
		`{"orgID":%q,"userID":%q,"permissions":[{"action":"write","resource":{"type":"buckets","orgID":%q}}]}`,
		f.acmeID, bobID, f.acmeID)}.do(t, s)
	if a.status != http.StatusCreated {
		t.Fatalf("create bob's token: %d %s", a.status, masked(a.body))
	}
	var created struct{ ID, Token string }
	a.decode(t, &created)
	f.bob = Authorization{ID: created.ID, Token: created.Token}
	if err := s.SetUserActive("bob", false); err != nil {
		t.Fatal(err)
	}
	return f
}

// corruptChecksum flips a bit of the CRC-32 in a gzip stream's trailer.
func corruptChecksum(gz string) string {
	b := []byte(gz)
	b[len(b)-8] ^= 0xff
	return string(b)
}

const aLine = "cpu,host=a usage=1 1700000000000000000\n"

// TestWriteStatuses covers each answer of POST /api/v2/write in influxdb-api.md, and
// the order of the checks: each case fails two checks where the earlier one must win.
func TestWriteStatuses(t *testing.T) {
	f := newFixture(t, Options{})
	w := tok(f.writer)
	tests := []struct {
		name, query, auth, body string
		header                  map[string]string
		status                  int
		code, message           string
	}{
		// 1. authentication
		{name: "no Authorization", query: "?org=acme&bucket=telemetry&precision=h",
			status: 401, code: "unauthorized", message: "unauthorized access"},
		{name: "Basic scheme", query: "?org=acme&bucket=telemetry", auth: "Basic " + f.writer.Token,
			status: 401, code: "unauthorized", message: "unauthorized access"},
		{name: "scheme without token", query: "?org=acme&bucket=telemetry", auth: "Token",
			status: 401, code: "unauthorized", message: "unauthorized access"},
		{name: "unknown token", query: "?org=acme&bucket=telemetry", auth: "Token " + newToken(),
			status: 401, code: "unauthorized", message: "unauthorized access"},
		{name: "token of an inactive user", query: "?org=acme&bucket=telemetry&precision=h", auth: tok(f.bob),
			status: 403, code: "forbidden", message: "User is inactive"},
		{name: "lower-case token scheme", query: "?org=acme&bucket=telemetry", auth: "token " + f.writer.Token, status: 204},
		{name: "Bearer scheme, any case", query: "?org=acme&bucket=telemetry", auth: "BEARER " + f.writer.Token, status: 204},
		// 2. precision
		{name: "bad precision before bucket", query: "?precision=h", auth: w,
			status: 400, code: "invalid", message: "invalid precision; valid precision units are ns, us, ms, and s"},
		{name: "precision s", query: "?org=acme&bucket=telemetry&precision=s", auth: w, body: "cpu v=1 1700000000", status: 204},
		// 3. bucket present
		{name: "no bucket before org", query: "", auth: w, status: 404, code: "not found", message: "bucket not found"},
		{name: "empty bucket", query: "?org=nope&bucket=", auth: w, status: 404, code: "not found", message: "bucket not found"},
		// 4. org
		{name: "no org", query: "?bucket=nope", auth: w,
			status: 400, code: "invalid", message: "Please provide either orgID or org"},
		{name: "unknown org name before bucket", query: "?org=nope&bucket=nope", auth: w,
			status: 404, code: "not found", message: `organization name "nope" not found`},
		{name: "orgID wins over org", query: "?org=nope&orgID=" + f.acmeID + "&bucket=telemetry", auth: w, status: 204},
		{name: "unknown orgID", query: "?orgID=aaaaaaaaaaaaaaaa&bucket=telemetry", auth: w,
			status: 404, code: "not found", message: "organization not found"},
		{name: "org given as an ID", query: "?org=" + f.acmeID + "&bucket=telemetry", auth: w, status: 204},
		{name: "16-hex org is an ID only", query: "?org=" + f.hexOrg + "&bucket=telemetry", auth: tok(f.s.OperatorAuthorization()),
			status: 404, code: "not found", message: "organization not found"},
		// 5. bucket exists
		{name: "unknown bucket before permission", query: "?org=acme&bucket=nope", auth: tok(f.inactive),
			status: 404, code: "not found", message: `bucket "nope" not found`},
		{name: "bucket of another org", query: "?org=acme&bucket=" + f.globexTelemetryID, auth: w,
			status: 404, code: "not found", message: fmt.Sprintf("bucket %q not found", f.globexTelemetryID)},
		{name: "bucket by ID", query: "?org=acme&bucket=" + f.telemetryID, auth: w, status: 204},
		// 6. permission
		{name: "read-only token", query: "?org=acme&bucket=telemetry", auth: tok(f.reader),
			status: 403, code: "forbidden", message: "insufficient permissions for write"},
		{name: "token for another bucket", query: "?org=acme&bucket=telemetry", auth: tok(f.otherBucket),
			status: 403, code: "forbidden", message: "insufficient permissions for write"},
		{name: "read-only token, empty body", query: "?org=acme&bucket=telemetry", auth: tok(f.reader), body: "",
			status: 403, code: "forbidden", message: "insufficient permissions for write"},
		{name: "inactive token", query: "?org=acme&bucket=telemetry", auth: tok(f.inactive), body: "garbage",
			status: 403, code: "forbidden", message: "insufficient permissions for write: token is inactive"},
		{name: "operator token writes anywhere", query: "?org=globex&bucket=telemetry", auth: f.op, status: 204},
		// 7. body
		{name: "gzip", query: "?org=acme&bucket=telemetry", auth: w, body: gzipped(t, aLine),
			header: map[string]string{"Content-Encoding": "gzip"}, status: 204},
		{name: "x-gzip", query: "?org=acme&bucket=telemetry", auth: w, body: gzipped(t, aLine),
			header: map[string]string{"Content-Encoding": "x-gzip"}, status: 204},
		// 2.x opens the gzip reader before looking the org up, and its error is not a
		// platform error: a generic 500 that wins over an unknown org.
		{name: "gzip header, plain body, before org", query: "?org=nope&bucket=telemetry", auth: w, body: aLine,
			header: map[string]string{"Content-Encoding": "gzip"},
			status: 500, code: "internal error", message: "An internal error has occurred - check server logs"},
		{name: "gzip header, empty body", query: "?org=acme&bucket=telemetry", auth: w,
			header: map[string]string{"Content-Encoding": "gzip"},
			status: 500, code: "internal error", message: "An internal error has occurred - check server logs"},
		{name: "gzip with a bad checksum", query: "?org=acme&bucket=telemetry", auth: w, body: corruptChecksum(gzipped(t, aLine)),
			header: map[string]string{"Content-Encoding": "gzip"},
			status: 400, code: "invalid", message: "unable to read data: gzip: invalid checksum"},
		{name: "gzip checksum checked after permission", query: "?org=acme&bucket=telemetry", auth: tok(f.reader), body: corruptChecksum(gzipped(t, aLine)),
			header: map[string]string{"Content-Encoding": "gzip"},
			status: 403, code: "forbidden", message: "insufficient permissions for write"},
		{name: "truncated gzip", query: "?org=acme&bucket=telemetry", auth: w, body: gzipped(t, aLine)[:20],
			header: map[string]string{"Content-Encoding": "gzip"},
			status: 500, code: "internal error", message: "unable to read data: unexpected EOF"},
		// 10. empty body after the checks
		{name: "empty body", query: "?org=acme&bucket=telemetry", auth: w, status: 204},
		{name: "blank lines only", query: "?org=acme&bucket=telemetry", auth: w, body: "\n\n", status: 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.s.Points())
			body := tt.body
			if body == "" && tt.status == 204 && !strings.HasPrefix(tt.name, "empty") && !strings.HasPrefix(tt.name, "blank") {
				body = aLine
			}
			a := call{method: "POST", path: "/api/v2/write" + tt.query, auth: tt.auth, body: body, header: tt.header}.do(t, f.s)
			if tt.status == 204 {
				if a.status != 204 || a.body != "" {
					t.Fatalf("got %d %q, want 204 without body", a.status, masked(a.body))
				}
				if body != "" && strings.TrimSpace(body) != "" && len(f.s.Points()) != before+1 {
					t.Errorf("points %d -> %d, want one more", before, len(f.s.Points()))
				}
				return
			}
			a.wantError(t, tt.status, tt.code, tt.message)
			if got := len(f.s.Points()); got != before {
				t.Errorf("a refused write stored points: %d -> %d", before, got)
			}
		})
	}
}

func TestWriteBadLinesAllOrNothing(t *testing.T) {
	f := newFixture(t, Options{})
	body := "cpu value=1 1\ngarbage\ncpu value=2 2\nmem,host=a value=\"x 3\n"
	a := call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(f.writer), body: body}.do(t, f.s)
	if a.status != 400 {
		t.Fatalf("status %d, want 400", a.status)
	}
	var e struct{ Code, Message string }
	a.decode(t, &e)
	lines := strings.Split(e.Message, "\n")
	if e.Code != "invalid" || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "unable to parse 'garbage': ") ||
		!strings.HasPrefix(lines[1], `unable to parse 'mem,host=a value="x 3': `) {
		t.Fatalf("error = {%q, %q}, want one \"unable to parse '<line>': <reason>\" per bad line", e.Code, e.Message)
	}
	if n := len(f.s.Points()); n != 0 {
		t.Errorf("%d points stored from a rejected batch, want none", n)
	}
}

func TestWritePrecisionAndPoints(t *testing.T) {
	f := newFixture(t, Options{})
	for _, p := range []struct {
		precision, ts string
	}{{"ns", "1700000000000000001"}, {"us", "1700000000000001"}, {"ms", "1700000000001"}, {"s", "1700000001"}} {
		a := call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry&precision=" + p.precision, auth: tok(f.writer),
			body: "cpu,host=b,dc=x usage=1.5,n=3i,ok=true,s=\"v\" " + p.ts + "\n"}.do(t, f.s)
		if a.status != 204 {
			t.Fatalf("precision %s: %d %s", p.precision, a.status, masked(a.body))
		}
	}
	pts := f.s.Points()
	want := []string{
		"cpu,dc=x,host=b 1700000000000000001", "cpu,dc=x,host=b 1700000000000001000",
		"cpu,dc=x,host=b 1700000000001000000", "cpu,dc=x,host=b 1700000001000000000",
	}
	if len(pts) != len(want) {
		t.Fatalf("%d points, want %d", len(pts), len(want))
	}
	for i, p := range pts {
		if p.Line != want[i] {
			t.Errorf("point %d Line = %q, want %q", i, p.Line, want[i])
		}
		if p.Org != "acme" || p.Bucket != "telemetry" || p.Measurement != "cpu" || p.AuthID != f.writer.ID {
			t.Errorf("point %d = %+v", i, p)
		}
		if p.Tags["host"] != "b" || p.Fields["usage"] != 1.5 || p.Fields["n"] != int64(3) ||
			p.Fields["ok"] != true || p.Fields["s"] != "v" {
			t.Errorf("point %d tags/fields = %v %v", i, p.Tags, p.Fields)
		}
	}
}

func TestWriteMaxBodySize(t *testing.T) {
	f := newFixture(t, Options{MaxBodySize: 64})
	w := tok(f.writer)
	small := aLine
	big := strings.Repeat(aLine, 4) // 160 bytes
	for _, tt := range []struct {
		name, body string
		gzip       bool
		status     int
	}{
		{"under the limit", small, false, 204},
		{"over the limit", big, false, 413},
		// compresses below 64 bytes, and is too large once gunzipped
		{"over the limit once gunzipped", strings.Repeat(aLine, 20), true, 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: w, body: tt.body}
			if tt.gzip {
				c.body = gzipped(t, tt.body)
				c.header = map[string]string{"Content-Encoding": "gzip"}
				if len(c.body) > 64 {
					t.Fatalf("test needs a gzip body under 64 bytes, have %d", len(c.body))
				}
			}
			a := c.do(t, f.s)
			if tt.status == 204 {
				if a.status != 204 {
					t.Fatalf("status %d %s", a.status, masked(a.body))
				}
				return
			}
			a.wantError(t, 413, "request too large", "unable to read data: points batch is too large")
		})
	}
}

func TestWriteAfterDeactivationAndDeletion(t *testing.T) {
	f := newFixture(t, Options{})
	c := call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(f.writer)}
	if a := c.do(t, f.s); a.status != 204 {
		t.Fatalf("empty write with an active token: %d", a.status)
	}
	if !f.s.IsActive(f.writer.Token) {
		t.Fatal("IsActive = false for an active token")
	}
	if err := f.s.SetActive(f.writer.ID, false); err != nil {
		t.Fatal(err)
	}
	if f.s.IsActive(f.writer.Token) {
		t.Fatal("IsActive = true after SetActive(false)")
	}
	c.do(t, f.s).wantError(t, 403, "forbidden", "insufficient permissions for write: token is inactive")
	if err := f.s.DeleteAuthorization(f.writer.ID); err != nil {
		t.Fatal(err)
	}
	c.do(t, f.s).wantError(t, 401, "unauthorized", "unauthorized access")
	if err := f.s.DeleteAuthorization(f.writer.ID); err == nil {
		t.Error("deleting twice succeeded")
	}
}

// TestWritePartialTypeConflict: a field written with another type than the bucket
// already has is dropped, the rest of the batch is stored, and the answer is 422.
func TestWritePartialTypeConflict(t *testing.T) {
	f := newFixture(t, Options{})
	c := call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(f.writer)}
	c.body = "m v=1.5 1\n"
	if a := c.do(t, f.s); a.status != 204 {
		t.Fatalf("first write: %d %s", a.status, masked(a.body))
	}
	c.body = "m v=2i 2\nm v=3.5 3\nm v=\"x\" 4\n"
	c.do(t, f.s).wantError(t, 422, "unprocessable entity",
		`failure writing points to database: partial write: field type conflict: input field "v" on measurement "m" is type integer, already exists as type float dropped=2`)
	var lines []string
	for _, p := range f.s.Points() {
		lines = append(lines, p.Line)
	}
	if fmt.Sprint(lines) != "[m 1 m 3]" {
		t.Errorf("stored %q, want the two float points", lines)
	}
	// Another bucket has its own types.
	c = call{method: "POST", path: "/api/v2/write?org=acme&bucket=other", auth: tok(f.otherBucket), body: "m v=2i 2\n"}
	if a := c.do(t, f.s); a.status != 204 {
		t.Errorf("integer field in another bucket: %d %s", a.status, masked(a.body))
	}
}
