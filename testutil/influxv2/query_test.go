package influxv2

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const adoptionQuery = `SELECT "fingerprint", "previous", "rotations" FROM "influxrotate_adoption" WHERE time > now() - 900s GROUP BY "client_id"`

func queryPath(db, q, epoch string) string {
	v := url.Values{"db": {db}, "q": {q}}
	if epoch != "" {
		v.Set("epoch", epoch)
	}
	return "/query?" + v.Encode()
}

type qlAnswer struct {
	Results []qlResult `json:"results"`
}

func decodeQL(t *testing.T, a answer) qlAnswer {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, masked(a.body))
	}
	var out qlAnswer
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.UseNumber() // nanosecond times do not fit a float64
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("answer %q: %v", masked(a.body), err)
	}
	if len(out.Results) != 1 || out.Results[0].StatementID != 0 {
		t.Fatalf("results %+v", out.Results)
	}
	return out
}

func TestQueryAdoptionReports(t *testing.T) {
	s := NewTest(t, Options{})
	s.CreateOrg("acme")
	telemetry := s.CreateBucket("acme", "telemetry")
	s.CreateBucket("acme", "other")
	writer := s.WriteAuthorization("acme", "telemetry")
	now := time.Now()
	ns := func(ago time.Duration) string { return fmt.Sprint(now.Add(-ago).UnixNano()) }
	body := strings.Join([]string{
		`influxrotate_adoption,client_id=b fingerprint="sha256:bbbbbbbbbbbb",previous="",rotations=0i ` + ns(20*time.Minute), // outside the window
		`influxrotate_adoption,client_id=b fingerprint="sha256:bbbbbbbbbbbb",previous="",rotations=0i ` + ns(10*time.Minute),
		`influxrotate_adoption,client_id=a fingerprint="sha256:111111111111",previous="",rotations=0i ` + ns(5*time.Minute),
		`influxrotate_adoption,client_id=a fingerprint="sha256:222222222222",previous="sha256:111111111111",rotations=1i ` + ns(time.Minute),
		`cpu,client_id=a usage=1 ` + ns(time.Minute), // another measurement
	}, "\n")
	if a := (call{method: http.MethodPost, path: "/api/v2/write?org=acme&bucket=telemetry", auth: "Token " + writer.Token, body: body}).do(t, s); a.status != 204 {
		t.Fatalf("write: %d %s", a.status, masked(a.body))
	}
	other := "influxrotate_adoption,client_id=c fingerprint=\"sha256:cccccccccccc\",previous=\"\",rotations=0i " + ns(time.Minute)
	if a := (call{method: http.MethodPost, path: "/api/v2/write?org=acme&bucket=other", auth: "Token " + s.OperatorToken(), body: other}).do(t, s); a.status != 204 {
		t.Fatalf("write: %d %s", a.status, masked(a.body))
	}

	reader := s.CreateAuthorization("acme", "reader", Permission{"read", Resource{Type: "buckets", ID: telemetry}})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		var a answer
		if method == http.MethodGet {
			a = (call{method: method, path: queryPath("telemetry", adoptionQuery, "ns"), auth: "Token " + reader.Token}).do(t, s)
		} else {
			form := url.Values{"db": {"telemetry"}, "q": {adoptionQuery}, "epoch": {"ns"}}.Encode()
			a = (call{method: method, path: "/query", auth: "Token " + reader.Token, body: form,
				header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}).do(t, s)
		}
		res := decodeQL(t, a).Results[0]
		if res.Error != "" || len(res.Series) != 2 {
			t.Fatalf("%s: %+v", method, res)
		}
		sa, sb := res.Series[0], res.Series[1]
		if sa.Name != "influxrotate_adoption" || sa.Tags["client_id"] != "a" || sb.Tags["client_id"] != "b" ||
			fmt.Sprint(sa.Columns) != "[time fingerprint previous rotations]" {
			t.Fatalf("%s: series %+v", method, res.Series)
		}
		if len(sa.Values) != 2 || len(sb.Values) != 1 {
			t.Fatalf("%s: rows a=%v b=%v, want 2 and 1 (the window is 15 minutes)", method, sa.Values, sb.Values)
		}
		last := sa.Values[1]
		if fmt.Sprint(last[0]) != ns(time.Minute) || last[1] != "sha256:222222222222" || last[2] != "sha256:111111111111" || last[3] != json.Number("1") {
			t.Fatalf("%s: last row of a %v", method, last)
		}
	}

	// Without epoch, times are RFC 3339.
	res := decodeQL(t, (call{method: http.MethodGet, path: queryPath("telemetry", adoptionQuery, ""), auth: "Token " + s.OperatorToken()}).do(t, s)).Results[0]
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(res.Series[0].Values[0][0])); err != nil {
		t.Fatalf("time %v: %v", res.Series[0].Values[0][0], err)
	}
	// Another measurement, or nothing reported: no series, no error.
	q := strings.Replace(adoptionQuery, "influxrotate_adoption", `my \"adoption\"`, 1)
	if res := decodeQL(t, (call{method: http.MethodGet, path: queryPath("telemetry", q, "ns"), auth: "Token " + reader.Token}).do(t, s)).Results[0]; res.Error != "" || len(res.Series) != 0 {
		t.Fatalf("unknown measurement: %+v", res)
	}
}

func TestQueryErrorsLike2x(t *testing.T) {
	s := NewTest(t, Options{})
	s.CreateOrg("acme")
	telemetry := s.CreateBucket("acme", "telemetry")
	s.CreateOrg("beta")
	s.CreateBucket("beta", "theirs")
	writeOnly := s.CreateAuthorization("acme", "writer", Permission{"write", Resource{Type: "buckets", ID: telemetry}})
	reader := s.CreateAuthorization("acme", "reader", Permission{"read", Resource{Type: "buckets"}})
	inactive := s.CreateAuthorization("acme", "reader", Permission{"read", Resource{Type: "buckets"}})
	if err := s.SetActive(inactive.ID, false); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, auth, db, q string
		status            int
		want              string
	}{
		{"no token", "", "telemetry", adoptionQuery, 401, "unauthorized access"},
		{"unknown token", "Token nope", "telemetry", adoptionQuery, 401, "unauthorized access"},
		{"inactive token", "Token " + inactive.Token, "telemetry", adoptionQuery, 403, "insufficient permissions"},
		{"no read permission", "Token " + writeOnly.Token, "telemetry", adoptionQuery, 200, `"error": "database not found: telemetry"`},
		{"bucket of another org", "Token " + reader.Token, "theirs", adoptionQuery, 200, `"error": "database not found: theirs"`},
		{"unknown bucket", "Token " + reader.Token, "nope", adoptionQuery, 200, `"error": "database not found: nope"`},
		{"no db", "Token " + reader.Token, "", adoptionQuery, 200, `"error": "database name required"`},
		{"other statement", "Token " + reader.Token, "telemetry", `SELECT * FROM "influxrotate_adoption"`, 400, "unsupported InfluxQL statement"},
		{"other window unit", "Token " + reader.Token, "telemetry", strings.Replace(adoptionQuery, "900s", "15m", 1), 400, "unsupported InfluxQL statement"},
		{"second statement", "Token " + reader.Token, "telemetry", adoptionQuery + "; DROP DATABASE telemetry", 400, "unsupported InfluxQL statement"},
		{"empty statement", "Token " + reader.Token, "telemetry", "", 400, "unsupported InfluxQL statement"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := (call{method: http.MethodGet, path: queryPath(c.db, c.q, "ns"), auth: c.auth}).do(t, s)
			if a.status != c.status || !strings.Contains(a.body, c.want) {
				t.Fatalf("%d %s, want %d and %q", a.status, masked(a.body), c.status, c.want)
			}
		})
	}
	if a := (call{method: http.MethodDelete, path: queryPath("telemetry", adoptionQuery, ""), auth: "Token " + reader.Token}).do(t, s); a.status != 405 {
		t.Fatalf("DELETE /query: %d", a.status)
	}
	if a := (call{method: http.MethodGet, path: queryPath("telemetry", adoptionQuery, "fortnight"), auth: "Token " + reader.Token}).do(t, s); a.status != 400 {
		t.Fatalf("bad epoch: %d", a.status)
	}
}
