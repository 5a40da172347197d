package rotation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

// TestProbeVerdictsFromInfluxDB3 probes the answers of the InfluxDB 3
// personality itself: the empty write's 400 after authentication is a valid
// token, an expired or deleted one is refused like an unknown one, and a
// resource token without the database is forbidden. Nothing is stored.
func TestProbeVerdictsFromInfluxDB3(t *testing.T) {
	clock := influxv2.NewManualClock(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	srv := influxv2.NewTest(t, influxv2.Options{InfluxDB3: influxv2.Enterprise, Now: clock.Now})
	db := influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{bucket}, Actions: []string{"write"}}
	mustToken := func(tk influxv2.V3Token, err error) influxv2.V3Token {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	admin := mustToken(srv.CreateV3AdminToken("admin", 0))
	resource := mustToken(srv.CreateV3ResourceToken("telegraf", 0, db))
	elsewhere := mustToken(srv.CreateV3ResourceToken("elsewhere", 0,
		influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{"other"}, Actions: []string{"write"}}))
	readOnly := mustToken(srv.CreateV3ResourceToken("reader", 0,
		influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{bucket}, Actions: []string{"read"}}))
	expired := mustToken(srv.CreateV3ResourceToken("expired", time.Minute, db))
	deleted := mustToken(srv.CreateV3ResourceToken("deleted", 0, db))
	if err := srv.DeleteV3Token(deleted.Name); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)

	for name, tc := range map[string]struct {
		token   string
		want    rotation.Verdict
		status  int
		message string
	}{
		"admin token":                   {admin.Token, rotation.VerdictValid, 400, "write buffer error: incoming write was empty"},
		"resource token":                {resource.Token, rotation.VerdictValid, 400, "write buffer error: incoming write was empty"},
		"resource token for another db": {elsewhere.Token, rotation.VerdictForbidden, 403, "unauthorized to perform requested action with the token"},
		"read-only resource token":      {readOnly.Token, rotation.VerdictForbidden, 403, "unauthorized to perform requested action with the token"},
		"expired token":                 {expired.Token, rotation.VerdictRefused, 401, "the request was not authenticated"},
		"deleted token":                 {deleted.Token, rotation.VerdictRefused, 401, "the request was not authenticated"},
		"unknown token":                 {"apiv3_" + strings.Repeat("A", 86), rotation.VerdictRefused, 401, "the request was not authenticated"},
	} {
		t.Run(name, func(t *testing.T) {
			p := probeWith(t, srv, rotation.ProberConfig{Targets: []rotation.Target{{Org: "ignored", Bucket: bucket}}})
			res := p.Probe(context.Background(), cred(tc.token))
			if res.Verdict != tc.want || res.Status != tc.status || res.Message != tc.message {
				t.Fatalf("verdict %v status %d %q, want %v %d %q", res.Verdict, res.Status, res.Message, tc.want, tc.status, tc.message)
			}
		})
	}
	// A header InfluxDB 3 cannot read is a refusal with its own words, not a
	// valid token: the proxy or the token file must be fixed.
	srv.Inject(influxv2.Fault{Status: 400, Body: `{"error":"Authorization header was malformed, the request was not in the form of 'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, Token and Basic"}`})
	p := probeWith(t, srv, rotation.ProberConfig{Targets: []rotation.Target{{Bucket: bucket}}})
	if res := p.Probe(context.Background(), cred(admin.Token)); res.Verdict != rotation.VerdictRefused ||
		!strings.HasPrefix(res.Message, "Authorization header was malformed") {
		t.Errorf("malformed header: %v %q", res.Verdict, res.Message)
	}
	if n := len(srv.Points()); n != 0 {
		t.Errorf("probes stored %d points", n)
	}
}
