package backend

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// v3WriteReports writes lines to database db of an InfluxDB 3 test server
// through the v2-compatible write, as a writer's reports arrive.
func v3WriteReports(t *testing.T, srv *influxv2.Server, db, token string, lines []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/api/v2/write?bucket="+db, strings.NewReader(string(lines)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Token "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("writing reports: %d", resp.StatusCode)
	}
}

// TestV3AdoptionsAgainstTestServer reads the reports of a fleet through
// InfluxDB 3's v1 /query, on Core (an admin operator token) and Enterprise
// (writers with resource tokens).
func TestV3AdoptionsAgainstTestServer(t *testing.T) {
	for _, edition := range []influxv2.Edition{influxv2.Core, influxv2.Enterprise} {
		t.Run(string(edition), func(t *testing.T) {
			srv := influxv2.NewTest(t, influxv2.Options{InfluxDB3: edition})
			v, err := NewV3(Options{URL: srv.URL(), OperatorToken: srv.OperatorToken(), Retry: Retry{Attempts: 2, Initial: time.Millisecond}},
				V3Options{Edition: string(edition)})
			if err != nil {
				t.Fatal(err)
			}
			var oldTok, newTok influxv2.V3Token
			if edition == influxv2.Enterprise {
				perm := influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{"telemetry"}, Actions: []string{"write"}}
				oldTok, err = srv.CreateV3ResourceToken("old", 0, perm)
				if err == nil {
					newTok, err = srv.CreateV3ResourceToken("new", 0, perm)
				}
			} else {
				oldTok, err = srv.CreateV3AdminToken("old", 0)
				if err == nil {
					newTok, err = srv.CreateV3AdminToken("new", 0)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			now := time.Now()
			adoptionFleet(t, oldTok.Token, newTok.Token, now, func(lines []byte) {
				v3WriteReports(t, srv, "telemetry", oldTok.Token, lines)
			})
			got, err := v.Adoptions(ctx, AdoptionQuery{Bucket: "telemetry"})
			if err != nil {
				t.Fatal(err)
			}
			checkFleet(t, got, oldTok.Token, newTok.Token, now, time.Nanosecond)
			// A shorter lookback leaves b's first report out: its first-seen moves.
			got, err = v.Adoptions(ctx, AdoptionQuery{Bucket: "telemetry", Lookback: 5 * time.Minute})
			if err != nil || len(got) != 2 || !got[1].FirstSeen.Equal(now.Add(-2*time.Minute)) || !got[0].FirstSeen.Equal(now.Add(-3*time.Minute)) {
				t.Fatalf("5m lookback: %+v %v", got, err)
			}
			if got, err := v.Adoptions(ctx, AdoptionQuery{Bucket: "telemetry", Measurement: "other"}); err != nil || len(got) != 0 {
				t.Fatalf("other measurement: %+v %v", got, err)
			}
			// The reads went to InfluxDB 3's v1 /query, answered 200.
			queries := 0
			for _, r := range srv.Requests() {
				if r.Path == "/query" {
					queries++
					if r.Status != http.StatusOK || r.Fingerprint == "" {
						t.Errorf("query %+v", r)
					}
				}
			}
			if queries != 3 {
				t.Errorf("%d requests to /query, want 3", queries)
			}
		})
	}
}

// TestV3AdoptionsConfigurationErrors: an operator token that may not read
// the database (an Enterprise resource token: InfluxDB 3 answers 401
// "unauthorized access"), or a database no writer created yet, is
// ErrAdoptionAccess at once, without a retry and without a token in the
// error.
func TestV3AdoptionsConfigurationErrors(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{InfluxDB3: influxv2.Enterprise})
	writer, err := srv.CreateV3ResourceToken("writer", 0, influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{"telemetry"}, Actions: []string{"write"}})
	if err != nil {
		t.Fatal(err)
	}
	v3WriteReports(t, srv, "telemetry", writer.Token, []byte("cpu v=1\n"))
	otherDB, err := srv.CreateV3ResourceToken("reader", 0, influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{"other"}, Actions: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	var scan secscan.Scanner
	scan.AddServer(srv)
	cases := []struct {
		name, token, bucket string
	}{
		{"token without read permission", writer.Token, "telemetry"},
		{"token that reads another database", otherDB.Token, "telemetry"},
		{"unknown token", "apiv3_not-a-token-at-all", "telemetry"},
		{"database not created yet", srv.OperatorToken(), "nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			v, err := NewV3(Options{URL: srv.URL(), OperatorToken: c.token,
				Retry: Retry{Attempts: 3, Initial: time.Millisecond, OnRetry: func(string, int, error) { calls++ }}},
				V3Options{Edition: EditionEnterprise})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Adoptions(context.Background(), AdoptionQuery{Bucket: c.bucket})
			if !errors.Is(err, ErrAdoptionAccess) {
				t.Fatalf("error %v, want ErrAdoptionAccess", err)
			}
			if calls != 0 {
				t.Fatalf("a configuration error was retried %d times", calls)
			}
			if !strings.Contains(err.Error(), "read permission") || !strings.Contains(err.Error(), c.bucket) {
				t.Fatalf("error does not say what to fix: %v", err)
			}
			scan.Check(t, "adoption query error", []byte(err.Error()))
		})
	}
}
