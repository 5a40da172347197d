package influxv2

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func newV3(t *testing.T, e Edition, opts Options) *Server {
	t.Helper()
	opts.InfluxDB3 = e
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// wantV3Error checks an InfluxDB 3 error answer: status and {"error": message}.
func (a answer) wantV3Error(t *testing.T, status int, message string) {
	t.Helper()
	if a.status != status {
		t.Errorf("status = %d, want %d (body %q)", a.status, status, masked(a.body))
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e map[string]any
	a.decode(t, &e)
	if len(e) != 1 || e["error"] != message {
		t.Errorf("body = %s, want {\"error\":%q}", masked(a.body), message)
	}
}

func bearer(t V3Token) string { return "Bearer " + t.Token }

var v3TokenShape = regexp.MustCompile(`^apiv3_[A-Za-z0-9_-]{86}$`)

func TestV3Authentication(t *testing.T) {
	clock := NewManualClock(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	s := newV3(t, Core, Options{Now: clock.Now})
	good, err := s.CreateV3AdminToken("writer", 0)
	if err != nil {
		t.Fatal(err)
	}
	expiring, _ := s.CreateV3AdminToken("expiring", time.Minute)
	deleted, _ := s.CreateV3AdminToken("deleted", 0)
	if err := s.DeleteV3Token("deleted"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	basic := func(user, token string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+token))
	}
	const write = "/api/v2/write?bucket=telemetry&org=ignored"
	for name, tc := range map[string]struct {
		auth    string
		status  int
		message string // "" for 204
	}{
		"Bearer":                        {"Bearer " + good.Token, 204, ""},
		"Token":                         {"Token " + good.Token, 204, ""},
		"Basic user:token":              {basic("anyone", good.Token), 204, ""},
		"Basic with an empty user":      {basic("", good.Token), 204, ""},
		"scheme is case-sensitive":      {"bearer " + good.Token, 400, v3Malformed},
		"TOKEN scheme":                  {"TOKEN " + good.Token, 400, v3Malformed},
		"other scheme":                  {"Digest " + good.Token, 400, v3Malformed},
		"scheme without token":          {"Bearer", 400, v3Malformed},
		"scheme and a space":            {"Bearer ", 400, v3Malformed},
		"two spaces":                    {"Bearer  " + good.Token, 400, v3Malformed},
		"token alone":                   {good.Token, 400, v3Malformed},
		"Basic not base64":              {"Basic %%%", 400, v3Malformed},
		"Basic without colon":           {"Basic " + base64.StdEncoding.EncodeToString([]byte(good.Token)), 400, v3Malformed},
		"missing header":                {"", 401, v3Unauthenticated},
		"unknown token":                 {"Bearer apiv3_" + strings.Repeat("x", 86), 401, v3Unauthenticated},
		"expired token":                 {bearer(expiring), 401, v3Unauthenticated},
		"deleted token":                 {bearer(deleted), 401, v3Unauthenticated},
		"malformed before unknown path": {"bearer x", 400, v3Malformed},
	} {
		t.Run(name, func(t *testing.T) {
			a := call{method: "POST", path: write, auth: tc.auth, body: "m f=1i 1\n"}.do(t, s)
			if tc.message == "" {
				if a.status != 204 || a.body != "" {
					t.Fatalf("answer %d %q, want 204", a.status, masked(a.body))
				}
				return
			}
			a.wantV3Error(t, tc.status, tc.message)
		})
	}
	// Only the four accepted writes stored their point, each with the token's ID.
	if n := len(s.PointsBy(fmt.Sprint(good.ID))); n != 4 {
		t.Errorf("%d points by the good token, want 4", n)
	}
	if n := len(s.Points()); n != 4 {
		t.Errorf("%d points in all, want 4", n)
	}
}

func TestV3Writes(t *testing.T) {
	s := newV3(t, Enterprise, Options{})
	admin := s.V3OperatorToken()
	tel, err := s.CreateV3ResourceToken("telemetry-rw", 0,
		V3Permission{ResourceType: "db", ResourceNames: []string{"telemetry", "metrics"}, Actions: []string{"read", "write"}})
	if err != nil {
		t.Fatal(err)
	}
	reader, _ := s.CreateV3ResourceToken("telemetry-r", 0,
		V3Permission{ResourceType: "db", ResourceNames: []string{"telemetry"}, Actions: []string{"read"}})
	anyDB, _ := s.CreateV3ResourceToken("all-w", 0,
		V3Permission{ResourceType: "db", ResourceNames: []string{"*"}, Actions: []string{"write"}})

	big := gzipped(t, strings.Repeat("m f=1i 1\n", v3MaxBody/9+1))
	for name, tc := range map[string]struct {
		path, auth, body string
		header           map[string]string
		status           int
		ctype            string
		message          string // the error, or "" for 204
	}{
		"v2 write, org ignored":            {"/api/v2/write?bucket=telemetry&org=nope", bearer(tel), "m f=1i 1\n", nil, 204, "", ""},
		"v2 write without org":             {"/api/v2/write?bucket=metrics", bearer(tel), "m f=1i 2\n", nil, 204, "", ""},
		"v2 write, new database by admin":  {"/api/v2/write?bucket=fresh", bearer(admin), "m f=1i 1\n", nil, 204, "", ""},
		"v2 write, wildcard database":      {"/api/v2/write?bucket=other", bearer(anyDB), "m f=1i 1\n", nil, 204, "", ""},
		"v2 write, gzip":                   {"/api/v2/write?bucket=telemetry", bearer(tel), gzipped(t, "m f=1i 3\n"), map[string]string{"Content-Encoding": "gzip"}, 204, "", ""},
		"v2 empty write":                   {"/api/v2/write?bucket=telemetry", bearer(tel), "", nil, 400, "application/json", "write buffer error: incoming write was empty"},
		"v2 blank write":                   {"/api/v2/write?bucket=telemetry", bearer(tel), "\n\n", nil, 400, "application/json", "write buffer error: incoming write was empty"},
		"v3 empty write is plain text":     {"/api/v3/write_lp?db=telemetry", bearer(tel), "", nil, 400, "text/plain; charset=utf-8", "incoming write was empty"},
		"v3 write":                         {"/api/v3/write_lp?db=telemetry&precision=second", bearer(tel), "m f=1i 4\n", nil, 204, "", ""},
		"v2 bad line rejects the batch":    {"/api/v2/write?bucket=telemetry", bearer(tel), "m f=1i 5\ngarbage\n", nil, 400, "application/json", ""},
		"v3 bad line rejects the batch":    {"/api/v3/write_lp?db=telemetry", bearer(tel), "m f=1i 6\nm f=\n", nil, 400, "application/json", ""},
		"over 10 MiB after gunzip":         {"/api/v2/write?bucket=telemetry", bearer(tel), big, map[string]string{"Content-Encoding": "gzip"}, 413, "application/json", ""},
		"resource token, other database":   {"/api/v2/write?bucket=secret", bearer(tel), "m f=1i 1\n", nil, 403, "application/json", v3Unauthorized},
		"read-only resource token":         {"/api/v3/write_lp?db=telemetry", bearer(reader), "m f=1i 1\n", nil, 403, "application/json", v3Unauthorized},
		"403 comes before the empty check": {"/api/v2/write?bucket=secret", bearer(tel), "", nil, 403, "application/json", v3Unauthorized},
		"v2 write without bucket":          {"/api/v2/write", bearer(tel), "m f=1i 1\n", nil, 400, "application/json", ""},
		"v2 bad precision":                 {"/api/v2/write?bucket=telemetry&precision=second", bearer(tel), "m f=1i 1\n", nil, 400, "application/json", ""},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(s.Points())
			a := call{method: "POST", path: tc.path, auth: tc.auth, body: tc.body, header: tc.header}.do(t, s)
			if a.status != tc.status {
				t.Fatalf("status %d (%q), want %d", a.status, masked(a.body), tc.status)
			}
			stored := len(s.Points()) - before
			if tc.status == 204 {
				if stored != 1 {
					t.Errorf("%d points stored, want 1", stored)
				}
				return
			}
			if stored != 0 {
				t.Errorf("%d points stored by a refused write", stored)
			}
			if ct := a.header.Get("Content-Type"); ct != tc.ctype {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			switch {
			case tc.message == "":
			case strings.HasPrefix(tc.ctype, "text/plain"):
				if a.body != tc.message {
					t.Errorf("body %q, want %q", masked(a.body), tc.message)
				}
			default:
				a.wantV3Error(t, tc.status, tc.message)
			}
		})
	}
	for _, p := range s.PointsBy(fmt.Sprint(tel.ID)) {
		if p.Org != "" || (p.Bucket != "telemetry" && p.Bucket != "metrics") {
			t.Errorf("point %+v: want no org and its database as bucket", p)
		}
	}
}

func TestV3OperatorToken(t *testing.T) {
	s := newV3(t, Core, Options{})
	const path = "/api/v3/configure/token/admin"
	a := call{method: "POST", path: path}.do(t, s)
	if a.status != 201 {
		t.Fatalf("first operator token: %d %q", a.status, masked(a.body))
	}
	var created v3TokenAnswer
	a.decode(t, &created)
	if created.Name != V3OperatorName || !v3TokenShape.MatchString(created.Token) || created.Hash != v3Hash(created.Token) ||
		created.Expiry != nil || created.ID == 0 {
		t.Errorf("answer %+v", created)
	}
	if got := s.OperatorToken(); got != created.Token {
		t.Error("OperatorToken is not the token created over HTTP")
	}
	call{method: "POST", path: path}.do(t, s).wantV3Error(t, 409, "token name already exists, _admin")

	named, _ := s.CreateV3AdminToken("named", 0)
	call{method: "POST", path: path + "/regenerate", auth: bearer(named)}.do(t, s).wantV3Error(t, 403, v3Unauthorized)
	a = call{method: "POST", path: path + "/regenerate", auth: "Bearer " + created.Token}.do(t, s)
	var regen v3TokenAnswer
	a.decode(t, &regen)
	if a.status != 201 || regen.ID != created.ID || regen.Token == created.Token || !v3TokenShape.MatchString(regen.Token) {
		t.Fatalf("regenerate: %d, same id %t, new token %t", a.status, regen.ID == created.ID, regen.Token != created.Token)
	}
	call{method: "POST", path: "/api/v2/write?bucket=db", auth: "Bearer " + created.Token, body: "m f=1i 1"}.do(t, s).
		wantV3Error(t, 401, v3Unauthenticated)
	if a := (call{method: "POST", path: "/api/v2/write?bucket=db", auth: "Bearer " + regen.Token, body: "m f=1i 1"}.do(t, s)); a.status != 204 {
		t.Errorf("regenerated token: %d %q", a.status, masked(a.body))
	}
}

func TestV3NamedAdminTokens(t *testing.T) {
	clock := NewManualClock(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	s := newV3(t, Core, Options{Now: clock.Now})
	op := s.V3OperatorToken()
	const path = "/api/v3/configure/token/named_admin"
	a := call{method: "POST", path: path, auth: bearer(op), body: `{"token_name":"rot-1","expiry_secs":3600}`}.do(t, s)
	if a.status != 201 {
		t.Fatalf("create: %d %q", a.status, masked(a.body))
	}
	var got v3TokenAnswer
	a.decode(t, &got)
	if got.Name != "rot-1" || !v3TokenShape.MatchString(got.Token) || got.Hash != v3Hash(got.Token) ||
		!got.CreatedAt.Equal(clock.Now()) || got.Expiry == nil || !got.Expiry.Equal(clock.Now().Add(time.Hour)) {
		t.Errorf("answer %+v", got)
	}
	for name, tc := range map[string]struct {
		auth, body string
		status     int
		message    string
	}{
		"duplicate name":       {bearer(op), `{"token_name":"rot-1"}`, 409, "token name already exists, rot-1"},
		"missing name":         {bearer(op), `{"expiry_secs":10}`, 400, "token_name is required"},
		"empty name":           {bearer(op), `{"token_name":""}`, 400, "token_name is required"},
		"negative expiry":      {bearer(op), `{"token_name":"x","expiry_secs":-1}`, 400, "expiry_secs must be a positive number of seconds"},
		"not JSON":             {bearer(op), `{"token_name":`, 400, ""},
		"named admin may call": {"Bearer " + got.Token, `{"token_name":"rot-2"}`, 201, ""},
	} {
		t.Run(name, func(t *testing.T) {
			a := call{method: "POST", path: path, auth: tc.auth, body: tc.body}.do(t, s)
			switch {
			case tc.status == 201:
				if a.status != 201 {
					t.Errorf("%d %q", a.status, masked(a.body))
				}
			case tc.message == "":
				if a.status != tc.status {
					t.Errorf("%d %q, want %d", a.status, masked(a.body), tc.status)
				}
			default:
				a.wantV3Error(t, tc.status, tc.message)
			}
		})
	}
	// Resource tokens are an Enterprise feature: Core does not have the endpoint.
	if a := (call{method: "POST", path: "/api/v3/enterprise/configure/token", auth: bearer(op), body: `{"token_name":"r"}`}.do(t, s)); a.status != 404 {
		t.Errorf("Core resource token endpoint: %d", a.status)
	}
	// The expiry is honoured on the server's clock.
	w := call{method: "POST", path: "/api/v2/write?bucket=db", auth: "Bearer " + got.Token, body: "m f=1i 1"}
	if a := w.do(t, s); a.status != 204 {
		t.Fatalf("before expiry: %d", a.status)
	}
	clock.Advance(time.Hour - time.Nanosecond)
	if a := w.do(t, s); a.status != 204 {
		t.Fatalf("just before expiry: %d", a.status)
	}
	clock.Advance(time.Nanosecond)
	w.do(t, s).wantV3Error(t, 401, v3Unauthenticated)
}

func TestV3ResourceTokens(t *testing.T) {
	s := newV3(t, Enterprise, Options{})
	op := s.V3OperatorToken()
	const path = "/api/v3/enterprise/configure/token"
	// In order: the duplicate needs the first.
	for _, tc := range []struct {
		name, body string
		status     int
		message    string
	}{
		{"db read,write", `{"token_name":"a","permissions":[{"resource_type":"db","resource_names":["telemetry","metrics"],"actions":["read","write"]}],"expiry_secs":60}`, 201, ""},
		{"resource_identifier", `{"token_name":"b","permissions":[{"resource_type":"db","resource_identifier":["telemetry"],"actions":["write"]}]}`, 201, ""},
		{"system health", `{"token_name":"c","permissions":[{"resource_type":"system","resource_names":["health"],"actions":["read"]}]}`, 201, ""},
		{"no permissions", `{"token_name":"d","permissions":[]}`, 400, "permissions cannot be empty"},
		{"unknown resource type", `{"token_name":"e","permissions":[{"resource_type":"table","resource_names":["x"],"actions":["read"]}]}`, 400, `invalid resource type "table"`},
		{"unknown action", `{"token_name":"f","permissions":[{"resource_type":"db","resource_names":["x"],"actions":["delete"]}]}`, 400, `invalid action "delete" for resource type db`},
		{"system write", `{"token_name":"g","permissions":[{"resource_type":"system","resource_names":["health"],"actions":["write"]}]}`, 400, `invalid action "write" for resource type system`},
		{"duplicate", `{"token_name":"a","permissions":[{"resource_type":"db","resource_names":["x"],"actions":["read"]}]}`, 409, "token name already exists, a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call{method: "POST", path: path, auth: bearer(op), body: tc.body}.do(t, s)
			if tc.status == 201 {
				var got v3TokenAnswer
				a.decode(t, &got)
				if a.status != 201 || !v3TokenShape.MatchString(got.Token) {
					t.Errorf("%d %+v", a.status, got)
				}
				return
			}
			a.wantV3Error(t, tc.status, tc.message)
		})
	}
	// A resource token cannot use the token API.
	res, _ := s.CreateV3ResourceToken("res", 0, V3Permission{ResourceType: "db", ResourceNames: []string{"x"}, Actions: []string{"write"}})
	for _, c := range []call{
		{method: "POST", path: path, auth: bearer(res), body: `{"token_name":"z","permissions":[{"resource_type":"db","resource_names":["x"],"actions":["read"]}]}`},
		{method: "POST", path: "/api/v3/configure/token/named_admin", auth: bearer(res), body: `{"token_name":"z"}`},
		{method: "DELETE", path: "/api/v3/configure/token?token_name=a", auth: bearer(res)},
		{method: "GET", path: "/api/v3/query_sql?db=_internal&q=SELECT+*+FROM+system.tokens", auth: bearer(res)},
	} {
		c.do(t, s).wantV3Error(t, 403, v3Unauthorized)
	}
}

func TestV3DeleteToken(t *testing.T) {
	s := newV3(t, Core, Options{})
	op := s.V3OperatorToken()
	victim, _ := s.CreateV3AdminToken("victim", 0)
	del := func(name string) answer {
		return call{method: "DELETE", path: "/api/v3/configure/token?token_name=" + name, auth: bearer(op)}.do(t, s)
	}
	if a := del("victim"); a.status != 200 || a.body != "" {
		t.Fatalf("delete: %d %q, want 200 and no body", a.status, masked(a.body))
	}
	call{method: "POST", path: "/api/v2/write?bucket=db", auth: bearer(victim), body: "m f=1i 1"}.do(t, s).
		wantV3Error(t, 401, v3Unauthenticated)
	del("victim").wantV3Error(t, 404, "token not found")
	del("_admin").wantV3Error(t, 405, "cannot delete operator token")
	call{method: "DELETE", path: "/api/v3/configure/token", auth: bearer(op)}.do(t, s).wantV3Error(t, 400, "token_name is required")
	if a := (call{method: "POST", path: "/api/v2/write?bucket=db", auth: bearer(op), body: "m f=1i 1"}.do(t, s)); a.status != 204 {
		t.Errorf("operator token after the refused delete: %d", a.status)
	}
	if err := s.DeleteV3Token(V3OperatorName); err == nil {
		t.Error("DeleteV3Token deleted the operator token")
	}
}

func TestV3SystemTokens(t *testing.T) {
	clock := NewManualClock(time.Date(2026, 11, 27, 12, 0, 0, 123_000_000, time.UTC))
	s := newV3(t, Enterprise, Options{Now: clock.Now})
	op := s.V3OperatorToken()
	res, _ := s.CreateV3ResourceToken("telegraf", time.Hour,
		V3Permission{ResourceType: "db", ResourceNames: []string{"telemetry", "metrics"}, Actions: []string{"read", "write"}})
	a := call{method: "POST", path: "/api/v3/configure/token/named_admin", auth: bearer(op), body: `{"token_name":"ops"}`}.do(t, s)
	if a.status != 201 {
		t.Fatal(a.status, a.body)
	}
	q := "/api/v3/query_sql?db=_internal&q=" + strings.ReplaceAll("SELECT * FROM system.tokens", " ", "+")
	a = call{method: "GET", path: q, auth: bearer(op)}.do(t, s)
	if a.status != 200 {
		t.Fatalf("%d %q", a.status, masked(a.body))
	}
	var rows []map[string]any
	a.decode(t, &rows)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3: %s", len(rows), masked(a.body))
	}
	columns := []string{"token_id", "name", "hash", "created_at", "description", "created_by_token_id",
		"updated_at", "updated_by_token_id", "expiry", "permissions"}
	for _, r := range rows {
		if len(r) != len(columns) {
			t.Errorf("row %v has %d columns, want %d", r, len(r), len(columns))
		}
		for _, c := range columns {
			if _, ok := r[c]; !ok {
				t.Errorf("row %v lacks %s", r, c)
			}
		}
	}
	want := []struct {
		name, perms string
		expiry      any
		createdBy   any
	}{
		{"_admin", "*:*:*", nil, nil},
		{"telegraf", "db:telemetry,metrics:read,write", "2026-11-27T13:00:00.123", nil},
		{"ops", "*:*:*", nil, float64(op.ID)},
	}
	for i, w := range want {
		r := rows[i]
		if r["name"] != w.name || r["permissions"] != w.perms || r["expiry"] != w.expiry || r["created_by_token_id"] != w.createdBy ||
			r["created_at"] != "2026-11-27T12:00:00.123" {
			t.Errorf("row %d = %v, want name %s permissions %s expiry %v created_by %v", i, r, w.name, w.perms, w.expiry, w.createdBy)
		}
	}
	if rows[1]["hash"] != v3Hash(res.Token) || rows[1]["token_id"] != float64(res.ID) {
		t.Errorf("telegraf row %v: hash or id differ", rows[1])
	}
	if strings.Contains(a.body, res.Token) || strings.Contains(a.body, op.Token) {
		t.Error("system.tokens shows a token")
	}
	// Anything but that statement is refused, so a test cannot pass on a query the
	// test server does not understand.
	for _, bad := range []string{
		"/api/v3/query_sql?db=_internal&q=SELECT+name+FROM+system.tokens",
		"/api/v3/query_sql?db=_internal&q=SELECT+*+FROM+system.tokens+WHERE+name%3D%27ops%27",
		"/api/v3/query_sql?db=telemetry&q=SELECT+*+FROM+system.tokens",
		"/api/v3/query_sql?db=_internal&q=SELECT+*+FROM+system.tokens&format=csv",
		"/api/v3/query_sql?db=_internal",
	} {
		if a := (call{method: "GET", path: bad, auth: bearer(op)}.do(t, s)); a.status != 400 {
			t.Errorf("%s: %d, want 400", bad, a.status)
		}
	}
	// Case, spacing and a semicolon do not matter.
	if a := (call{method: "GET", path: "/api/v3/query_sql?db=_internal&q=select%20*%20from%20SYSTEM.TOKENS%3B", auth: bearer(op)}.do(t, s)); a.status != 200 {
		t.Errorf("lower-case query: %d %q", a.status, masked(a.body))
	}
}

func TestV3LostCreateAnswer(t *testing.T) {
	s := newV3(t, Core, Options{})
	op := s.V3OperatorToken()
	const path = "/api/v3/configure/token/named_admin"
	s.Inject(Fault{Path: path, LoseAnswer: true})
	c := call{method: "POST", path: path, auth: bearer(op), body: `{"token_name":"rot-7"}`}
	if a, err := c.send(s); err == nil {
		t.Fatalf("the lost answer arrived: %d %q", a.status, masked(a.body))
	}
	found := false
	for _, tk := range s.V3Tokens() {
		found = found || tk.Name == "rot-7"
	}
	if !found {
		t.Fatal("the create whose answer was lost did not create the token")
	}
	c.do(t, s).wantV3Error(t, 409, "token name already exists, rot-7")
	var faulted int
	for _, r := range s.Requests() {
		if r.Faulted {
			faulted++
		}
	}
	if faulted != 1 {
		t.Errorf("%d faulted requests recorded, want 1", faulted)
	}
}

func TestV3RecordsAndPrintsNoToken(t *testing.T) {
	s := newV3(t, Core, Options{})
	op := s.V3OperatorToken()
	tk, _ := s.CreateV3AdminToken("w", 0)
	call{method: "POST", path: "/api/v2/write?bucket=db", auth: bearer(tk), body: "m f=1i 1"}.do(t, s)
	call{method: "POST", path: "/api/v2/write?bucket=db", auth: "bearer " + tk.Token, body: "m f=1i 1"}.do(t, s)
	reqs := s.Requests()
	if len(reqs) != 2 || reqs[0].Fingerprint != fingerprint(tk.Token) || reqs[0].AuthID != fmt.Sprint(tk.ID) ||
		reqs[1].Fingerprint != "" {
		t.Errorf("records %+v", reqs)
	}
	printed := fmt.Sprintf("%v %+v %#v %s", tk, reqs, tk, tk)
	for _, secret := range []string{tk.Token, op.Token} {
		if strings.Contains(printed, secret) {
			t.Fatal("a token is printed")
		}
	}
}

func TestV3Ping(t *testing.T) {
	s := newV3(t, Enterprise, Options{})
	a := call{method: "GET", path: "/ping", auth: bearer(s.V3OperatorToken())}.do(t, s)
	if a.status != 200 || a.header.Get("X-Influxdb-Version") != V3Version || !strings.Contains(a.body, V3Version) {
		t.Errorf("ping: %d %v %q", a.status, a.header, masked(a.body))
	}
	call{method: "GET", path: "/ping"}.do(t, s).wantV3Error(t, 401, v3Unauthenticated)
	if a := (call{method: "GET", path: "/nope", auth: bearer(s.V3OperatorToken())}.do(t, s)); a.status != http.StatusNotFound {
		t.Errorf("unknown path: %d", a.status)
	}
	if _, err := New(Options{InfluxDB3: "cloud"}); err == nil {
		t.Error("an unknown edition was accepted")
	}
}

// TestV3DelayedActivation: after DelayV3Activation(n), a token created
// through the API answers 401 to its first n requests, then is accepted;
// tokens made before, and by the test helpers, are not delayed.
func TestV3DelayedActivation(t *testing.T) {
	s := newV3(t, Core, Options{})
	op := s.V3OperatorToken()
	s.DelayV3Activation(2)
	a := call{method: "POST", path: "/api/v3/configure/token/named_admin", auth: bearer(op), body: `{"token_name":"rot-1"}`}.do(t, s)
	if a.status != 201 {
		t.Fatalf("create: %d %q", a.status, masked(a.body))
	}
	var got v3TokenAnswer
	a.decode(t, &got)
	helper, err := s.CreateV3AdminToken("helper", 0)
	if err != nil {
		t.Fatal(err)
	}
	w := func(tok string) call {
		return call{method: "POST", path: "/api/v2/write?bucket=db", auth: "Bearer " + tok, body: "m f=1i 1"}
	}
	for range 2 {
		w(got.Token).do(t, s).wantV3Error(t, 401, v3Unauthenticated)
	}
	if a := w(got.Token).do(t, s); a.status != 204 {
		t.Errorf("third request with the new token: %d %q, want 204", a.status, masked(a.body))
	}
	for _, tok := range []string{op.Token, helper.Token} {
		if a := w(tok).do(t, s); a.status != 204 {
			t.Errorf("a token not created through the API was delayed: %d", a.status)
		}
	}
}
