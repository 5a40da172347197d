package influxv2

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestV3QueryAdoptionReports reads reports written through the v2-compatible
// write back through InfluxDB 3's v1 /query, with each auth scheme, GET and
// POST, on both editions.
func TestV3QueryAdoptionReports(t *testing.T) {
	for _, e := range []Edition{Core, Enterprise} {
		t.Run(string(e), func(t *testing.T) {
			s := newV3(t, e, Options{})
			op := s.V3OperatorToken()
			now := time.Now()
			ns := func(ago time.Duration) string { return fmt.Sprint(now.Add(-ago).UnixNano()) }
			body := strings.Join([]string{
				`influxrotate_adoption,client_id=b fingerprint="sha256:bbbbbbbbbbbb",previous="",rotations=0i ` + ns(20*time.Minute), // outside the window
				`influxrotate_adoption,client_id=b fingerprint="sha256:bbbbbbbbbbbb",previous="",rotations=0i ` + ns(10*time.Minute),
				`influxrotate_adoption,client_id=a fingerprint="sha256:111111111111",previous="",rotations=0i ` + ns(5*time.Minute),
				`influxrotate_adoption,client_id=a fingerprint="sha256:222222222222",previous="sha256:111111111111",rotations=1i ` + ns(time.Minute),
				`cpu,client_id=a usage=1 ` + ns(time.Minute), // another measurement
			}, "\n")
			if a := (call{method: http.MethodPost, path: "/api/v2/write?bucket=telemetry", auth: bearer(op), body: body}).do(t, s); a.status != 204 {
				t.Fatalf("write: %d %s", a.status, masked(a.body))
			}
			other := `influxrotate_adoption,client_id=c fingerprint="sha256:cccccccccccc",previous="",rotations=0i ` + ns(time.Minute)
			if a := (call{method: http.MethodPost, path: "/api/v3/write_lp?db=other", auth: bearer(op), body: other}).do(t, s); a.status != 204 {
				t.Fatalf("write: %d %s", a.status, masked(a.body))
			}
			reader := op
			if e == Enterprise {
				var err error
				reader, err = s.CreateV3ResourceToken("reader", 0, V3Permission{ResourceType: "db", ResourceNames: []string{"telemetry"}, Actions: []string{"read"}})
				if err != nil {
					t.Fatal(err)
				}
			}
			schemes := map[string]string{
				"Bearer": "Bearer " + reader.Token,
				"Token":  "Token " + reader.Token,
				"Basic":  "Basic " + base64.StdEncoding.EncodeToString([]byte("any:"+reader.Token)),
			}
			for scheme, auth := range schemes {
				for _, method := range []string{http.MethodGet, http.MethodPost} {
					var a answer
					if method == http.MethodGet {
						a = (call{method: method, path: queryPath("telemetry", adoptionQuery, "ns"), auth: auth}).do(t, s)
					} else {
						form := url.Values{"db": {"telemetry"}, "q": {adoptionQuery}, "epoch": {"ns"}}.Encode()
						a = (call{method: method, path: "/query", auth: auth, body: form,
							header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}).do(t, s)
					}
					res := decodeQL(t, a).Results[0]
					if res.Error != "" || len(res.Series) != 2 {
						t.Fatalf("%s %s: %+v", scheme, method, res)
					}
					sa, sb := res.Series[0], res.Series[1]
					if sa.Name != "influxrotate_adoption" || sa.Tags["client_id"] != "a" || sb.Tags["client_id"] != "b" ||
						fmt.Sprint(sa.Columns) != "[time fingerprint previous rotations]" {
						t.Fatalf("%s %s: series %+v", scheme, method, res.Series)
					}
					if len(sa.Values) != 2 || len(sb.Values) != 1 {
						t.Fatalf("%s %s: rows a=%v b=%v, want 2 and 1 (the window is 15 minutes)", scheme, method, sa.Values, sb.Values)
					}
					last := sa.Values[1]
					if fmt.Sprint(last[0]) != ns(time.Minute) || last[1] != "sha256:222222222222" || last[2] != "sha256:111111111111" || last[3] != json.Number("1") {
						t.Fatalf("%s %s: last row of a %v", scheme, method, last)
					}
				}
			}
			// A database that exists but holds no report: no series, no error.
			if res := decodeQL(t, (call{method: http.MethodGet, path: queryPath("other", strings.Replace(adoptionQuery, "influxrotate_adoption", "nothing", 1), "ns"),
				auth: bearer(op)}).do(t, s)).Results[0]; res.Error != "" || len(res.Series) != 0 {
				t.Fatalf("no reports: %+v", res)
			}
		})
	}
}

// TestV3QueryErrors: InfluxDB 3's answers on /query — authentication first
// (401, 400 for a malformed header), then the statement (400 for anything
// but the adoption statement), the database named (a statement error),
// read permission (401 "unauthorized access", opaque, from the v1 query
// API) and the database existing (a statement error).
func TestV3QueryErrors(t *testing.T) {
	s := newV3(t, Enterprise, Options{})
	op := s.V3OperatorToken()
	if a := (call{method: http.MethodPost, path: "/api/v2/write?bucket=telemetry", auth: bearer(op), body: "cpu v=1"}).do(t, s); a.status != 204 {
		t.Fatalf("write: %d %s", a.status, masked(a.body))
	}
	writeOnly, err := s.CreateV3ResourceToken("writer", 0, V3Permission{ResourceType: "db", ResourceNames: []string{"telemetry"}, Actions: []string{"write"}})
	if err != nil {
		t.Fatal(err)
	}
	otherDB, err := s.CreateV3ResourceToken("other", 0, V3Permission{ResourceType: "db", ResourceNames: []string{"other"}, Actions: []string{"read", "write"}})
	if err != nil {
		t.Fatal(err)
	}
	anyDB, err := s.CreateV3ResourceToken("any", 0, V3Permission{ResourceType: "db", ResourceNames: []string{"*"}, Actions: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		status int
		err    string // {"error"} of the answer, or of the statement with 200
	}
	cases := []struct {
		name, auth, db, q string
		want              want
	}{
		{"no token", "", "telemetry", adoptionQuery, want{401, v3Unauthenticated}},
		{"unknown token", "Bearer nope", "telemetry", adoptionQuery, want{401, v3Unauthenticated}},
		{"malformed header", "bearer " + op.Token, "telemetry", adoptionQuery, want{400, v3Malformed}},
		{"no read permission", bearer(writeOnly), "telemetry", adoptionQuery, want{401, "unauthorized access"}},
		{"read on another database", bearer(otherDB), "telemetry", adoptionQuery, want{401, "unauthorized access"}},
		{"unknown database, no permission", bearer(writeOnly), "nope", adoptionQuery, want{401, "unauthorized access"}},
		{"unknown database", bearer(op), "nope", adoptionQuery, want{200, "Database nope not found"}},
		{"unknown database, read on all", bearer(anyDB), "nope", adoptionQuery, want{200, "Database nope not found"}},
		{"no db", bearer(op), "", adoptionQuery, want{200, v3QueryNoDatabase}},
		{"other statement", bearer(op), "telemetry", `SELECT * FROM "influxrotate_adoption"`, want{400, ""}},
		{"second statement", bearer(op), "telemetry", adoptionQuery + "; DROP DATABASE telemetry", want{400, ""}},
		{"empty statement", bearer(op), "telemetry", "", want{400, ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := (call{method: http.MethodGet, path: queryPath(c.db, c.q, "ns"), auth: c.auth}).do(t, s)
			switch {
			case c.want.status == 200:
				if res := decodeQL(t, a).Results[0]; res.Error != c.want.err || len(res.Series) != 0 {
					t.Fatalf("statement result %+v, want the error %q", res, c.want.err)
				}
			case c.want.err == "":
				if a.status != c.want.status || !strings.Contains(a.body, "unsupported InfluxQL statement") {
					t.Fatalf("%d %s, want %d and the unsupported statement", a.status, masked(a.body), c.want.status)
				}
			default:
				a.wantV3Error(t, c.want.status, c.want.err)
			}
		})
	}
	if a := (call{method: http.MethodDelete, path: queryPath("telemetry", adoptionQuery, ""), auth: bearer(op)}).do(t, s); a.status != 405 {
		t.Fatalf("DELETE /query: %d", a.status)
	}
	if a := (call{method: http.MethodGet, path: queryPath("telemetry", adoptionQuery, "fortnight"), auth: bearer(op)}).do(t, s); a.status != 400 {
		t.Fatalf("bad epoch: %d", a.status)
	}
}
