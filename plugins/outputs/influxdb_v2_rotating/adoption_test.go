package influxdb_v2_rotating

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	stockplugin "github.com/influxdata/telegraf/plugins/outputs/influxdb_v2"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// testClock is a clock the adoption tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// reportingPlugin returns a connected plugin with adoption reports at their
// default (on, with token_file) whose reporter runs on clock.
func (e *env) reportingPlugin(clock *testClock, mutate func(*InfluxDB)) *InfluxDB {
	e.t.Helper()
	p := e.configure(func(p *InfluxDB) {
		p.AdoptionReport = nil
		p.ClientID = "edge-1"
		p.TokenDebounce = config.Duration(5 * time.Millisecond)
		if mutate != nil {
			mutate(p)
		}
	})
	if err := p.Init(); err != nil {
		e.t.Fatalf("Init: %v", err)
	}
	if p.adoption == nil {
		e.t.Fatal("adoption reports are off by default with token_file")
	}
	a, err := rotation.NewAdoptionReporter(rotation.AdoptionConfig{
		Measurement: p.adoption.Measurement(), ClientID: p.ClientID,
		Interval: time.Duration(p.AdoptionReportInterval), Now: clock.Now, Logger: newSlogLogger(p.log()),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	p.adoption = a
	if err := p.Connect(); err != nil {
		e.t.Fatalf("Connect: %v", err)
	}
	e.t.Cleanup(func() { _ = p.Close() })
	return p
}

// reports returns the adoption points the server stored, oldest first.
func reports(srv *influxv2.Server) []influxv2.Point {
	var out []influxv2.Point
	for _, p := range srv.Points() {
		if p.Measurement == rotation.DefaultAdoptionMeasurement {
			out = append(out, p)
		}
	}
	return out
}

func checkReport(t *testing.T, pt influxv2.Point, by influxv2.Authorization, fp, previous string, rotations int64) {
	t.Helper()
	if pt.AuthID != by.ID || pt.Tags["client_id"] != "edge-1" || pt.Fields["fingerprint"] != fp ||
		pt.Fields["previous"] != previous || pt.Fields["rotations"] != rotations || pt.Bucket != "telegraf" {
		t.Fatalf("report %s %v %v by %s in %s, want by %s fingerprint %s previous %q rotations %d",
			pt.Line, pt.Tags, pt.Fields, pt.AuthID, pt.Bucket, by.ID, fp, previous, rotations)
	}
}

func TestAdoptionReportAtStartAfterPromotionAndOnInterval(t *testing.T) {
	e := newEnv(t)
	old, next := e.auth(), e.auth()
	e.publish(old.Token)
	clock := &testClock{t: time.Now()}
	p := e.reportingPlugin(clock, func(p *InfluxDB) { p.AdoptionReportInterval = config.Duration(time.Minute) })

	if err := p.Write(metrics(3, nil)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := reports(e.srv)
	if len(got) != 1 {
		t.Fatalf("%d reports after the first flush, want 1", len(got))
	}
	checkReport(t, got[0], old, rotation.Fingerprint(old.Token), "", 0)

	clock.Add(59 * time.Second)
	if err := p.Write(metrics(3, nil)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if n := len(reports(e.srv)); n != 1 {
		t.Fatalf("%d reports before the interval, want 1", n)
	}

	e.publish(next.Token)
	waitActive(t, p, next.Token)
	if err := p.Write(metrics(3, nil)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got = reports(e.srv)
	if len(got) != 2 {
		t.Fatalf("%d reports after the promotion, want 2", len(got))
	}
	checkReport(t, got[1], next, rotation.Fingerprint(next.Token), rotation.Fingerprint(old.Token), 1)

	clock.Add(time.Minute)
	if err := p.Write(metrics(3, nil)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got = reports(e.srv)
	if len(got) != 3 {
		t.Fatalf("%d reports after the interval, want 3", len(got))
	}
	checkReport(t, got[2], next, rotation.Fingerprint(next.Token), rotation.Fingerprint(old.Token), 1)
	if n := len(stored(e.srv)) - len(got); n != 12 {
		t.Fatalf("%d of 12 metrics stored", n)
	}

	var scan secscan.Scanner
	scan.AddServer(e.srv)
	for _, pt := range got {
		scan.Check(t, "adoption report", []byte(fmt.Sprintf("%s %v %v", pt.Line, pt.Tags, pt.Fields)))
	}
}

// writePaths returns the bucket of every write request, in order.
func writeBuckets(srv *influxv2.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		if r.Path == "/api/v2/write" {
			out = append(out, r.Query)
		}
	}
	return out
}

func TestAdoptionReportFailureIsRetriedAndNeverHoldsMetrics(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	clock := &testClock{t: time.Now()}
	p := e.reportingPlugin(clock, nil)

	// The first write (the metrics) is answered normally, the second (the
	// report) with a 500.
	e.srv.Inject(influxv2.Fault{Delay: time.Millisecond})
	e.srv.Inject(influxv2.Fault{Status: 500})
	ms := metrics(5, nil)
	if err := p.Write(ms); err != nil {
		t.Fatalf("Write with a failing report: %v", err)
	}
	if n := len(stored(e.srv)); n != len(ms) {
		t.Fatalf("%d of %d metrics stored", n, len(ms))
	}
	if n := len(reports(e.srv)); n != 0 {
		t.Fatalf("%d reports stored through a 500", n)
	}
	reqs := e.srv.Requests()
	if len(reqs) < 2 || !reqs[len(reqs)-1].Faulted || reqs[len(reqs)-2].Status != 204 {
		t.Fatalf("the report was not sent after the metrics: %+v", reqs)
	}

	// The next flush sends it again; its metrics are stored too.
	clock.Add(time.Millisecond)
	if err := p.Write(metrics(5, nil)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if n := len(reports(e.srv)); n != 1 {
		t.Fatalf("%d reports after the retry, want 1", n)
	}
	if n := len(stored(e.srv)); n != 11 {
		t.Fatalf("%d points stored, want 10 metrics and 1 report", n)
	}
	if f := p.StatsFields(); f["auth_failures"] != 0 || f["fallbacks"] != 0 || f["adoption_reports"] != 1 || f["adoption_report_failures"] != 1 {
		t.Fatalf("a failed report touched the rotation, or was not counted: %v", f)
	}
}

// A report refused for want of permission on adoption_bucket must not be
// taken for a refused token: no fallback, no re-send, the metrics stored.
func TestAdoptionReportRefusedDoesNotRotate(t *testing.T) {
	e := newEnv(t)
	old, next := e.auth(), e.auth()
	e.srv.CreateBucket(e.org, "reports") // neither token may write there
	e.publish(old.Token)
	clock := &testClock{t: time.Now()}
	p := e.reportingPlugin(clock, func(p *InfluxDB) { p.AdoptionBucket = "reports" })
	e.publish(next.Token)
	waitActive(t, p, next.Token)
	for range 3 {
		clock.Add(10 * time.Minute)
		if err := p.Write(metrics(4, nil)); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if n := len(e.srv.PointsBy(next.ID)); n != 12 {
		t.Fatalf("%d of 12 metrics stored with the new token", n)
	}
	if f := p.StatsFields(); f["auth_failures"] != 0 || f["fallbacks"] != 0 || f["adoption_report_failures"] != 3 {
		t.Fatalf("a refused report touched the rotation, or was not counted: %v", f)
	}
	if c := p.Rotator().Current(); c.Fingerprint() != rotation.Fingerprint(next.Token) {
		t.Fatalf("active %v, want the new token", c)
	}
	warnings := 0
	for _, m := range e.log.Messages() {
		if strings.Contains(m.Text, "adoption report not stored") {
			warnings++
		}
	}
	if warnings != 1 {
		t.Fatalf("%d warnings for a report failing three times, want 1", warnings)
	}
}

func TestAdoptionReportThroughWriteRaw(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	p := e.reportingPlugin(&testClock{t: time.Now()}, nil)
	if err := p.WriteRaw(t.Context(), "", []byte("m v=1 1\nm v=2 2\n"), 2); err != nil {
		t.Fatalf("WriteRaw: %v", err)
	}
	got := reports(e.srv)
	if len(got) != 1 {
		t.Fatalf("%d reports, want 1", len(got))
	}
	checkReport(t, got[0], a, rotation.Fingerprint(a.Token), "", 0)
}

// With a fixed token the plugin puts on the wire exactly the requests of
// the stock outputs.influxdb_v2 for the same metrics.
func TestFixedTokenWritesNoReportAndWhatTheStockPluginWrites(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	ms := metrics(20, nil)

	stock := &stockplugin.InfluxDB{URLs: []string{e.srv.URL()}, Token: config.NewSecret([]byte(a.Token)),
		Organization: e.org, Bucket: e.bucket, ContentEncoding: "identity", Timeout: config.Duration(5 * time.Second),
		Log: e.log}
	if err := stock.Init(); err != nil {
		t.Fatal(err)
	}
	if err := stock.Connect(); err != nil {
		t.Fatal(err)
	}
	if err := stock.Write(ms); err != nil {
		t.Fatalf("stock Write: %v", err)
	}
	_ = stock.Close()
	stockWire := writeBuckets(e.srv)

	p := e.configure(func(p *InfluxDB) {
		p.AdoptionReport = nil // the default
		p.TokenFile = ""
		p.Token = config.NewSecret([]byte(a.Token))
		p.Probe = ProbeNone // the stock plugin does not probe either
	})
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	if p.adoption != nil {
		t.Fatal("adoption reports on with a fixed token")
	}
	if err := p.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := p.Write(ms); err != nil {
		t.Fatalf("Write: %v", err)
	}
	ours := writeBuckets(e.srv)[len(stockWire):]
	if fmt.Sprint(ours) != fmt.Sprint(stockWire) || len(ours) != 1 {
		t.Fatalf("write requests %v, the stock plugin's %v", ours, stockWire)
	}
	if n := len(reports(e.srv)); n != 0 {
		t.Fatalf("%d adoption reports with a fixed token", n)
	}
}

func TestAdoptionOptions(t *testing.T) {
	on, off := true, false
	cases := []struct {
		name   string
		mutate func(*InfluxDB)
		want   string // "" means Init succeeds
		report bool
	}{
		{"token_file: on", func(p *InfluxDB) { p.TokenFile = "/nonexistent" }, "", true},
		{"token_env: on", func(p *InfluxDB) { p.TokenEnv = "INFLUXROTATE_TEST_UNSET" }, "", true},
		{"fixed token: off", func(p *InfluxDB) { p.Token = config.NewSecret([]byte("x")) }, "", false},
		{"fixed token, asked for", func(p *InfluxDB) { p.Token = config.NewSecret([]byte("x")); p.AdoptionReport = &on }, "", true},
		{"token_file, turned off", func(p *InfluxDB) { p.TokenFile = "/nonexistent"; p.AdoptionReport = &off }, "", false},
		{"bucket_tag only", func(p *InfluxDB) { p.TokenFile = "/nonexistent"; p.Bucket = ""; p.BucketTag = "b" }, "adoption_bucket: required", false},
		// A token that rotates needs a bucket to be validated against.
		{"bucket_tag only, off", func(p *InfluxDB) {
			p.TokenFile = "/nonexistent"
			p.Bucket = ""
			p.BucketTag = "b"
			p.AdoptionReport = &off
		}, "probe_bucket: required", false},
		{"bucket_tag only, off, probe_bucket", func(p *InfluxDB) {
			p.TokenFile = "/nonexistent"
			p.Bucket = ""
			p.BucketTag = "b"
			p.AdoptionReport = &off
			p.ProbeBucket = "b"
		}, "", false},
		{"bucket_tag only, fixed token", func(p *InfluxDB) {
			p.Token = config.NewSecret([]byte("x"))
			p.Bucket = ""
			p.BucketTag = "b"
		}, "", false},
		{"bucket_tag and adoption_bucket", func(p *InfluxDB) {
			p.TokenFile = "/nonexistent"
			p.Bucket = ""
			p.BucketTag = "b"
			p.AdoptionBucket = "fleet"
		}, "", true},
		{"negative interval", func(p *InfluxDB) { p.TokenFile = "/nonexistent"; p.AdoptionReportInterval = -1 }, "adoption_report_interval: must be positive", false},
		{"bad measurement", func(p *InfluxDB) { p.TokenFile = "/nonexistent"; p.AdoptionMeasurement = "a\nb" }, "adoption_measurement", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := New()
			p.Bucket = "telegraf"
			tc.mutate(p)
			err := p.Init()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Init: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Init error %v, want one containing %q", err, tc.want)
			case tc.want == "" && (p.adoption != nil) != tc.report:
				t.Fatalf("adoption report on = %t, want %t", p.adoption != nil, tc.report)
			}
		})
	}
}
