package backend

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/realtools"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// reportLine is the line a writer's AdoptionReporter writes for tok at t.
func reportLine(t *testing.T, client, tok string, previous *string, rotations int64, at time.Time) []byte {
	t.Helper()
	a, err := rotation.NewAdoptionReporter(rotation.AdoptionConfig{ClientID: client, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	if previous != nil {
		rep, _, _ := a.Due(rotation.NewCredential(*previous, "", "test"), 0)
		a.Done(rep, errors.New("not written"))
	}
	rep, line, ok := a.Due(rotation.NewCredential(tok, "", "test"), rotations)
	if !ok {
		t.Fatal("no report due")
	}
	a.Done(rep, nil)
	return line
}

// adoptionFleet writes the reports of three writers to bucket through
// write, 10 minutes ago up to 1 minute ago:
//   - "a" reported old, then new twice (adopted);
//   - "b" reported old, and last old (a straggler);
//   - "gone" reported 20 minutes ago only (outside the lookback).
func adoptionFleet(t *testing.T, oldTok, newTok string, now time.Time, write func([]byte)) {
	t.Helper()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	var lines []byte
	lines = append(lines, reportLine(t, "gone", oldTok, nil, 0, ago(20*time.Minute))...)
	lines = append(lines, reportLine(t, "a", oldTok, nil, 0, ago(10*time.Minute))...)
	lines = append(lines, reportLine(t, "a", newTok, &oldTok, 1, ago(3*time.Minute))...)
	lines = append(lines, reportLine(t, "a", newTok, &oldTok, 1, ago(time.Minute))...)
	lines = append(lines, reportLine(t, "b", oldTok, nil, 0, ago(8*time.Minute))...)
	lines = append(lines, reportLine(t, "b", oldTok, nil, 0, ago(2*time.Minute))...)
	write(lines)
}

func checkFleet(t *testing.T, got []Adoption, oldTok, newTok string, now time.Time, precision time.Duration) {
	t.Helper()
	ago := func(d time.Duration) time.Time { return now.Add(-d).Truncate(precision) }
	oldFP, newFP := rotation.Fingerprint(oldTok), rotation.Fingerprint(newTok)
	want := []Adoption{
		{ClientID: "a", Fingerprint: newFP, Previous: oldFP, Rotations: 1, LastReport: ago(time.Minute), FirstSeen: ago(3 * time.Minute)},
		{ClientID: "b", Fingerprint: oldFP, Rotations: 0, LastReport: ago(2 * time.Minute), FirstSeen: ago(8 * time.Minute)},
	}
	if len(got) != len(want) {
		t.Fatalf("adoptions %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ClientID != w.ClientID || g.Fingerprint != w.Fingerprint || g.Previous != w.Previous || g.Rotations != w.Rotations ||
			!g.LastReport.Equal(w.LastReport) || !g.FirstSeen.Equal(w.FirstSeen) {
			t.Errorf("adoption %d: %+v, want %+v", i, g, w)
		}
	}
}

func TestV2AdoptionsAgainstTestServer(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{})
	srv.CreateOrg("acme")
	srv.CreateBucket("acme", "telemetry")
	writer := srv.WriteAuthorization("acme", "telemetry")
	oldTok, newTok := writer.Token, srv.WriteAuthorization("acme", "telemetry").Token
	v := NewV2(Options{URL: srv.URL(), OperatorToken: srv.OperatorToken(), Retry: Retry{Attempts: 2, Initial: time.Millisecond}})
	ctx := context.Background()

	got, err := v.Adoptions(ctx, AdoptionQuery{Bucket: "telemetry"})
	if err != nil || len(got) != 0 {
		t.Fatalf("no reports yet: %+v %v", got, err)
	}

	now := time.Now()
	adoptionFleet(t, oldTok, newTok, now, func(lines []byte) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/api/v2/write?org=acme&bucket=telemetry", strings.NewReader(string(lines)))
		req.Header.Set("Authorization", "Token "+writer.Token)
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("writing reports: %d", resp.StatusCode)
		}
	})
	got, err = v.Adoptions(ctx, AdoptionQuery{Bucket: "telemetry"})
	if err != nil {
		t.Fatal(err)
	}
	checkFleet(t, got, oldTok, newTok, now, time.Nanosecond)

	// A shorter lookback leaves b's first report out: its first-seen moves.
	got, err = v.Adoptions(ctx, AdoptionQuery{Bucket: "telemetry", Lookback: 5 * time.Minute})
	if err != nil || len(got) != 2 || !got[1].FirstSeen.Equal(now.Add(-2*time.Minute)) || !got[0].FirstSeen.Equal(now.Add(-3*time.Minute)) {
		t.Fatalf("5m lookback: %+v %v", got, err)
	}
	// Another measurement holds nothing.
	if got, err := v.Adoptions(ctx, AdoptionQuery{Bucket: "telemetry", Measurement: "other"}); err != nil || len(got) != 0 {
		t.Fatalf("other measurement: %+v %v", got, err)
	}
}

func TestV2AdoptionsConfigurationErrors(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{})
	srv.CreateOrg("acme")
	bucketID := srv.CreateBucket("acme", "telemetry")
	noRead := srv.CreateAuthorization("acme", "write only", influxv2.Permission{Action: "write",
		Resource: influxv2.Resource{Type: "buckets", ID: bucketID}})
	inactive := srv.WriteAuthorization("acme", "telemetry")
	if err := srv.SetActive(inactive.ID, false); err != nil {
		t.Fatal(err)
	}
	var scan secscan.Scanner
	scan.AddServer(srv)
	cases := []struct {
		name, token, bucket string
	}{
		{"token without read permission", noRead.Token, "telemetry"},
		{"inactive token", inactive.Token, "telemetry"},
		{"unknown token", "not-a-token-at-all", "telemetry"},
		{"unknown bucket", srv.OperatorToken(), "nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			v := NewV2(Options{URL: srv.URL(), OperatorToken: c.token,
				Retry: Retry{Attempts: 3, Initial: time.Millisecond, OnRetry: func(string, int, error) { calls++ }}})
			_, err := v.Adoptions(context.Background(), AdoptionQuery{Bucket: c.bucket})
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
	if _, err := NewV2(Options{URL: srv.URL()}).Adoptions(context.Background(), AdoptionQuery{}); err == nil {
		t.Fatal("no bucket accepted")
	}
}

// TestE2EInfluxDB1Adoptions runs the adoption statement on a real InfluxQL
// engine (influxd 1.8): the reports a writer's AdoptionReporter encodes,
// written through the v2 compatibility API as the plugin writes them, read
// back with the operator user.
func TestE2EInfluxDB1Adoptions(t *testing.T) {
	d := realtools.StartInfluxd(t)
	v, err := NewV1(Options{URL: d.URL, OperatorToken: realtools.V1Token(d.AdminUser, d.AdminPassword),
		Retry: Retry{Attempts: 2, Initial: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got, err := v.Adoptions(ctx, AdoptionQuery{Bucket: d.DB}); err != nil || len(got) != 0 {
		t.Fatalf("no reports yet: %+v %v", got, err)
	}
	oldPass, newPass := realtools.RandomSecret(), realtools.RandomSecret()
	if err := d.CreateUser("edge", oldPass, d.DB); err != nil {
		t.Fatal(err)
	}
	oldTok, newTok := realtools.V1Token("edge", oldPass), realtools.V1Token("edge2", newPass)
	now := time.Now()
	adoptionFleet(t, oldTok, newTok, now, func(lines []byte) {
		req, _ := http.NewRequest(http.MethodPost, d.URL+"/api/v2/write?bucket="+d.DB+"/autogen", strings.NewReader(string(lines)))
		req.Header.Set("Authorization", "Token "+oldTok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("writing reports: %d", resp.StatusCode)
		}
	})
	for _, bucket := range []string{d.DB, d.DB + "/autogen"} {
		got, err := v.Adoptions(ctx, AdoptionQuery{Bucket: bucket})
		if err != nil {
			t.Fatalf("%s: %v", bucket, err)
		}
		checkFleet(t, got, oldTok, newTok, now, time.Nanosecond)
	}

	// A user without READ on the database: 403 from 1.x, a configuration error.
	if err := d.CreateUser("writer", newPass, d.DB); err != nil {
		t.Fatal(err)
	}
	w, _ := NewV1(Options{URL: d.URL, OperatorToken: realtools.V1Token("writer", newPass), Retry: Retry{Attempts: 2, Initial: time.Millisecond}})
	_, err = w.Adoptions(ctx, AdoptionQuery{Bucket: d.DB})
	if !errors.Is(err, ErrAdoptionAccess) || strings.Contains(err.Error(), newPass) {
		t.Fatalf("write-only user: %v, want ErrAdoptionAccess without the password", err)
	}
	if _, err := v.Adoptions(ctx, AdoptionQuery{Bucket: "nope"}); !errors.Is(err, ErrAdoptionAccess) {
		t.Fatalf("unknown database: %v, want ErrAdoptionAccess", err)
	}
}
