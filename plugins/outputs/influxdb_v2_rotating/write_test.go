package influxdb_v2_rotating

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

func addAll(ro interface{ AddMetric(telegraf.Metric) }, ms []telegraf.Metric) {
	for _, m := range ms {
		ro.AddMetric(m)
	}
}

func TestWriteStoresEveryPointWithTheActiveToken(t *testing.T) {
	for _, enc := range []string{"identity", "gzip"} {
		t.Run(enc, func(t *testing.T) {
			e := newEnv(t)
			a := e.auth()
			e.publish(a.Token + "\n") // kubectl create secret --from-file keeps the newline
			p := e.plugin(func(p *InfluxDB) { p.ContentEncoding = enc })
			ms := metrics(250, nil)
			if err := p.Write(ms); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got := stored(e.srv)
			for line := range lines(ms) {
				pt, ok := got[line]
				if !ok {
					t.Fatalf("point %s not stored", line)
				}
				if pt.AuthID != a.ID {
					t.Fatalf("point %s written by %s, want %s", line, pt.AuthID, a.ID)
				}
			}
		})
	}
}

func TestStatusCodes(t *testing.T) {
	cases := []struct {
		name     string
		fault    influxv2.Fault
		kept     bool // the agent keeps the batch
		stored   bool // a second write stores every point
		contains string
	}{
		{"400 drops", influxv2.Fault{Status: http.StatusBadRequest}, false, false, "will be dropped: 400"},
		{"422 drops", influxv2.Fault{Status: http.StatusUnprocessableEntity}, false, false, "will be dropped: 422"},
		{"404 drops", influxv2.Fault{Status: http.StatusNotFound}, false, false, "will be dropped: 404"},
		{"500 keeps", influxv2.Fault{Status: http.StatusInternalServerError}, true, true, "500 Internal Server Error"},
		{"503 keeps", influxv2.Fault{Status: http.StatusServiceUnavailable}, true, true, "will retry in"},
		{"502 keeps", influxv2.Fault{Status: http.StatusBadGateway}, true, true, "will retry in"},
		{"reset keeps", influxv2.Fault{ResetConnection: true}, true, true, "connection reset"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.auth()
			e.publish(a.Token)
			p, ro := e.agent(nil, 100)
			ms := metrics(10, nil)
			addAll(ro, ms)
			e.srv.Inject(tc.fault)
			err := e.write(ro)
			if err == nil || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("Write error %v, want one containing %q", err, tc.contains)
			}
			if kept := ro.BufferLength() == len(ms); kept != tc.kept {
				t.Fatalf("buffer holds %d of %d metrics, want kept=%t", ro.BufferLength(), len(ms), tc.kept)
			}
			if !tc.kept && ro.BufferLength() != 0 {
				t.Fatalf("buffer holds %d metrics after a drop", ro.BufferLength())
			}
			p.retryAt.Store(0) // the back-off is tested on its own
			if err := e.write(ro); err != nil {
				t.Fatalf("second Write: %v", err)
			}
			if n := len(stored(e.srv)); (n == len(ms)) != tc.stored {
				t.Fatalf("%d points stored, want all=%t", n, tc.stored)
			}
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	p := e.plugin(nil)
	e.srv.Inject(influxv2.Fault{Status: http.StatusTooManyRequests, RetryAfter: "30"})
	err := p.Write(metrics(5, nil))
	var we *WriteError
	if !errors.As(err, &we) || we.Action != rotation.ActionThrottle || we.RetryAfter != 30*time.Second {
		t.Fatalf("Write error %#v, want a throttle of 30s", err)
	}
	if !IsRetryable(err) {
		t.Fatal("a 429 must keep the batch")
	}
	before := len(e.srv.Requests())
	err = p.Write(metrics(5, nil))
	if !errors.As(err, &we) || we.Action != rotation.ActionThrottle || err.Error() != errNoServer {
		t.Fatalf("Write during Retry-After: %v", err)
	}
	if n := len(e.srv.Requests()); n != before {
		t.Fatalf("%d requests sent during Retry-After", n-before)
	}
	if w := p.retryWait(); w < 29*time.Second || w > 30*time.Second {
		t.Fatalf("retry wait %s, want about 30s", w)
	}
}

func TestSplitOn413(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	p := e.plugin(nil)
	ms := metrics(40, nil)
	// The first two requests are too large: the whole batch, then its first half.
	e.srv.Inject(influxv2.Fault{Status: http.StatusRequestEntityTooLarge}, influxv2.Fault{Status: http.StatusRequestEntityTooLarge})
	if err := p.Write(ms); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := stored(e.srv)
	for line := range lines(ms) {
		if _, ok := got[line]; !ok {
			t.Fatalf("point %s lost in the split", line)
		}
	}
	var n413 int
	for _, r := range e.srv.Requests() {
		if r.Status == http.StatusRequestEntityTooLarge {
			n413++
		}
	}
	if n413 != 2 {
		t.Fatalf("%d answers 413, want 2", n413)
	}
}

func TestSplitOnRealBodyLimit(t *testing.T) {
	e := newEnv(t)
	e.srv = influxv2.NewTest(t, influxv2.Options{MaxBodySize: 2000})
	e.srv.CreateBucket(e.org, e.bucket)
	a := e.auth()
	e.publish(a.Token)
	p := e.plugin(nil)
	ms := metrics(100, nil)
	if err := p.Write(ms); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if n := len(stored(e.srv)); n != len(ms) {
		t.Fatalf("%d of %d points stored", n, len(ms))
	}
}

func TestRefusedTokenRetriesWithTheNewOne(t *testing.T) {
	e := newEnv(t)
	old, next := e.auth(), e.auth()
	e.publish(old.Token)
	// A debounce and a re-read interval longer than the test: only the
	// refusal makes the plugin read the file.
	p := e.plugin(func(p *InfluxDB) {
		p.TokenDebounce = config.Duration(time.Hour)
		p.TokenRereadInterval = config.Duration(time.Hour)
	})
	e.publish(next.Token)
	if err := e.srv.DeleteAuthorization(old.ID); err != nil {
		t.Fatal(err)
	}
	ms := metrics(20, nil)
	if err := p.Write(ms); err != nil {
		t.Fatalf("Write: %v", err)
	}
	for line, pt := range stored(e.srv) {
		if pt.AuthID != next.ID {
			t.Fatalf("point %s written by %s, want the new token's %s", line, pt.AuthID, next.ID)
		}
	}
	if n := len(stored(e.srv)); n != len(ms) {
		t.Fatalf("%d of %d points stored", n, len(ms))
	}
	if got := p.StatsFields()["auth_failures"]; got != 1 {
		t.Fatalf("auth_failures = %d, want 1", got)
	}
}

func TestRefusedWithNothingBetterKeepsTheBatch(t *testing.T) {
	e := newEnv(t)
	old := e.auth()
	e.publish(old.Token)
	p, ro := e.agent(func(p *InfluxDB) { p.Fallback = false }, 100)
	if err := e.srv.SetActive(old.ID, false); err != nil {
		t.Fatal(err)
	}
	ms := metrics(15, nil)
	addAll(ro, ms)
	err := e.write(ro)
	if err == nil || !strings.Contains(err.Error(), "batch kept until a valid token is available") {
		t.Fatalf("Write error %v, want the batch kept", err)
	}
	if ro.BufferLength() != len(ms) {
		t.Fatalf("buffer holds %d of %d metrics after a refusal", ro.BufferLength(), len(ms))
	}
	if got := p.StatsFields()["auth_failures"]; got != 1 {
		t.Fatalf("auth_failures = %d, want 1", got)
	}
	// The operator publishes a new token: the kept batch goes out with it.
	next := e.auth()
	e.publish(next.Token)
	waitActive(t, p, next.Token)
	if err := e.write(ro); err != nil {
		t.Fatalf("Write after rotation: %v", err)
	}
	if ro.BufferLength() != 0 {
		t.Fatalf("buffer holds %d metrics after the rotation", ro.BufferLength())
	}
	for line := range lines(ms) {
		if pt, ok := stored(e.srv)[line]; !ok || pt.AuthID != next.ID {
			t.Fatalf("point %s: stored=%t by %s, want by %s", line, ok, pt.AuthID, next.ID)
		}
	}
}

func TestFallbackToThePreviousToken(t *testing.T) {
	for _, fallback := range []bool{true, false} {
		t.Run(map[bool]string{true: "on", false: "off"}[fallback], func(t *testing.T) {
			e := newEnv(t)
			first, second := e.auth(), e.auth()
			e.publish(first.Token)
			p := e.plugin(func(p *InfluxDB) { p.Fallback = fallback })
			e.publish(second.Token)
			waitActive(t, p, second.Token)
			// The new token is revoked by mistake while the old one still works.
			if err := e.srv.SetActive(second.ID, false); err != nil {
				t.Fatal(err)
			}
			err := p.Write(metrics(5, nil))
			if fallback {
				if err != nil {
					t.Fatalf("Write with fallback: %v", err)
				}
				if got := p.StatsFields()["fallbacks"]; got != 1 {
					t.Fatalf("fallbacks = %d, want 1", got)
				}
				for _, pt := range e.srv.Points() {
					if pt.AuthID != first.ID {
						t.Fatalf("point written by %s, want the previous token's %s", pt.AuthID, first.ID)
					}
				}
				return
			}
			if !IsRetryable(err) {
				t.Fatalf("Write without fallback: %v, want a retryable error", err)
			}
			if n := len(e.srv.Points()); n != 0 {
				t.Fatalf("%d points stored without fallback", n)
			}
		})
	}
}

func TestNoTokenYetWaitsForTheFile(t *testing.T) {
	e := newEnv(t)
	p, ro := e.agent(nil, 100)
	ms := metrics(10, nil)
	addAll(ro, ms)
	err := e.write(ro)
	if err == nil || !strings.Contains(err.Error(), "waiting for token_file") || !strings.Contains(err.Error(), e.path) {
		t.Fatalf("Write without a token: %v", err)
	}
	if !IsRetryable(err) || ro.BufferLength() != len(ms) {
		t.Fatalf("batch not kept while waiting for the token: %d buffered", ro.BufferLength())
	}
	if len(e.srv.Requests()) != 0 {
		t.Fatal("a request was sent without a token")
	}
	a := e.auth()
	e.publish(a.Token)
	waitActive(t, p, a.Token)
	if err := e.write(ro); err != nil {
		t.Fatalf("Write once the token exists: %v", err)
	}
	if n := len(stored(e.srv)); n != len(ms) {
		t.Fatalf("%d of %d points stored", n, len(ms))
	}
}

func TestBucketTagBatching(t *testing.T) {
	for _, exclude := range []bool{false, true} {
		t.Run(map[bool]string{false: "keep tag", true: "exclude tag"}[exclude], func(t *testing.T) {
			e := newEnv(t)
			e.srv.CreateBucket(e.org, "other")
			a := e.srv.AllAccessAuthorization(e.org)
			e.remember(a.Token)
			e.publish(a.Token)
			p := e.plugin(func(p *InfluxDB) {
				p.BucketTag = "bk"
				p.ExcludeBucketTag = exclude
				p.ConcurrentWrites = 2
			})
			ms := append(metrics(7, map[string]string{"bk": "other"}), metrics(5, nil)...)
			if err := p.Write(ms); err != nil {
				t.Fatalf("Write: %v", err)
			}
			byBucket := map[string]int{}
			for _, pt := range e.srv.Points() {
				byBucket[pt.Bucket]++
				if pt.Bucket != "other" {
					continue
				}
				if _, has := pt.Tags["bk"]; has == exclude {
					t.Fatalf("point in %s has bk tag=%t with exclude_bucket_tag=%t", pt.Bucket, has, exclude)
				}
			}
			if byBucket["other"] != 7 || byBucket[e.bucket] != 5 {
				t.Fatalf("points per bucket %v, want other=7 %s=5", byBucket, e.bucket)
			}
		})
	}
}

func TestSerializationFailureRejectsOnlyThatMetric(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	_, ro := e.agent(nil, 100)
	good := metrics(3, nil)
	addAll(ro, good)
	bad := metrics(1, nil)[0]
	bad.RemoveField("value")
	bad.RemoveField("n")
	bad.AddField("nan", nanValue())
	ro.AddMetric(bad)
	err := e.write(ro)
	if !errors.Is(err, errSerialization) {
		t.Fatalf("Write error %v, want Telegraf's serialization failure", err)
	}
	if ro.BufferLength() != 0 {
		t.Fatalf("%d metrics still buffered; the bad one must be dropped, the good ones stored", ro.BufferLength())
	}
	if n := len(stored(e.srv)); n != len(good) {
		t.Fatalf("%d points stored, want %d", n, len(good))
	}
}

func TestWriteRaw(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	p := e.plugin(func(p *InfluxDB) { p.ContentEncoding = "gzip" })
	body := []byte("raw,host=a v=1 1700000000000000000\nraw,host=a v=2 1700000000000000001\n")
	if err := p.WriteRaw(t.Context(), "", body, 2); err != nil {
		t.Fatalf("WriteRaw: %v", err)
	}
	if n := len(stored(e.srv)); n != 2 {
		t.Fatalf("%d points stored, want 2", n)
	}

	e.srv.Inject(influxv2.Fault{Status: http.StatusBadRequest})
	err := p.WriteRaw(t.Context(), "", body, 2)
	var we *WriteError
	if !errors.As(err, &we) || we.Action != rotation.ActionDrop || IsRetryable(err) || we.Status != 400 {
		t.Fatalf("WriteRaw on 400: %#v, want a drop", err)
	}

	e.srv.Inject(influxv2.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "2"})
	err = p.WriteRaw(t.Context(), "", body, 2)
	if !errors.As(err, &we) || we.Action != rotation.ActionThrottle || !IsRetryable(err) || we.RetryAfter != 2*time.Second {
		t.Fatalf("WriteRaw on 503: %#v, want a throttle of 2s", err)
	}
	p.retryAt.Store(0)

	e.srv.Inject(influxv2.Fault{Status: http.StatusRequestEntityTooLarge})
	more := []byte("raw,host=b v=1 1700000000000000000\nraw,host=b v=2 1700000000000000001\nraw,host=b v=3 1700000000000000002\n")
	if err := p.WriteRaw(t.Context(), e.bucket, more, 0); err != nil {
		t.Fatalf("WriteRaw with a split: %v", err)
	}
	if n := len(stored(e.srv)); n != 5 {
		t.Fatalf("%d points stored, want 5", n)
	}
}

func TestSelfstatReportsRotation(t *testing.T) {
	e := newEnv(t)
	first, second := e.auth(), e.auth()
	e.publish(first.Token)
	p, ro := e.agent(nil, 100)
	if p.Statistics == nil {
		t.Fatal("the agent did not inject a selfstat collector")
	}
	e.publish(second.Token)
	waitActive(t, p, second.Token)
	addAll(ro, metrics(3, nil))
	if err := e.write(ro); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, m := range selfstatMetrics(t, "internal_token_rotation", t.Name()) {
		if m.Tags()["output"] != "influxdb_v2_rotating" {
			t.Fatalf("output tag %q", m.Tags()["output"])
		}
		for _, f := range m.FieldList() {
			got[f.Key] = f.Value.(int64)
			if s, ok := f.Value.(string); ok && strings.Contains(s, "sha256") {
				t.Fatalf("field %s holds a fingerprint", f.Key)
			}
		}
	}
	if got["rotations"] != 1 {
		t.Fatalf("rotations = %d, want 1 (fields %v)", got["rotations"], got)
	}
	if _, ok := got["write_queue_depth"]; !ok {
		t.Fatalf("write_queue_depth missing from %v", got)
	}
	for name := range p.StatsFields() {
		if _, ok := got[name]; !ok {
			t.Fatalf("field %s not reported", name)
		}
	}
}

func TestConcurrentWritesStoreEverything(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	p := e.plugin(func(p *InfluxDB) { p.ConcurrentWrites = 4; p.ContentEncoding = "gzip" })
	ms := metrics(1000, nil)
	if err := p.Write(ms); err != nil {
		t.Fatal(err)
	}
	if n := len(stored(e.srv)); n != len(ms) {
		t.Fatalf("%d of %d points stored", n, len(ms))
	}
	var writes int
	for _, r := range e.srv.Requests() {
		if strings.HasSuffix(r.Path, "/write") && r.Status == http.StatusNoContent {
			writes++
		}
	}
	if writes < 4 {
		t.Fatalf("%d write requests, want one per concurrent batch (4)", writes)
	}
}

func TestRateLimitKeepsTheRest(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	_, ro := e.agent(func(p *InfluxDB) {
		p.Limit = 500
		p.Period.UnmarshalText([]byte("1h"))
	}, 100)
	ms := metrics(50, nil)
	addAll(ro, ms)
	err := e.write(ro)
	if !errors.Is(err, errSizeLimitReached) {
		t.Fatalf("Write over the rate limit: %v", err)
	}
	n := len(stored(e.srv))
	if n == 0 || n == len(ms) || ro.BufferLength() != len(ms)-n {
		t.Fatalf("%d stored and %d buffered of %d", n, ro.BufferLength(), len(ms))
	}
}

func TestInvalidNewTokenIsNeverUsed(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	p := e.plugin(nil)
	bogus := "not-a-known-token-" + strings.Repeat("x", 20)
	e.remember(bogus)
	e.publish(bogus)
	wait.For(t, 10*time.Second, "a probe refusing the bogus token", func() bool {
		return p.StatsFields()["rotation_failures"] >= 1
	})
	ms := metrics(10, nil)
	if err := p.Write(ms); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got := p.StatsFields()["auth_failures"]; got != 0 {
		t.Fatalf("auth_failures = %d: a write was sent with the refused token", got)
	}
	for _, pt := range e.srv.Points() {
		if pt.AuthID != a.ID {
			t.Fatalf("point written by %q, want %s", pt.AuthID, a.ID)
		}
	}
	if n := len(stored(e.srv)); n != len(ms) {
		t.Fatalf("%d of %d points stored", n, len(ms))
	}
}

func TestSecondURLWhenTheFirstDoesNotAnswer(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	dead := "http://127.0.0.1:1" // nothing listens on port 1
	p := e.plugin(func(p *InfluxDB) { p.URLs = []string{dead, e.srv.URL()} })
	for range 4 { // both orders of the random pick
		if err := p.Write(metrics(3, nil)); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if n := len(stored(e.srv)); n != 12 {
		t.Fatalf("%d of 12 points stored", n)
	}
}

func TestStaticTokenOption(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	p := e.plugin(func(p *InfluxDB) {
		p.TokenFile = ""
		p.Token = config.NewSecret([]byte(a.Token + "\n")) // a secret-store file with a newline
	})
	if err := p.Write(metrics(3, nil)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if n := len(e.srv.PointsBy(a.ID)); n != 3 {
		t.Fatalf("%d of 3 points stored", n)
	}
}

func TestAuditLogRecordsRotationsWithoutTokens(t *testing.T) {
	e := newEnv(t)
	first, second := e.auth(), e.auth()
	e.publish(first.Token)
	audit := filepath.Join(e.dir, "audit.jsonl")
	p := e.plugin(func(p *InfluxDB) { p.AuditLog = audit; p.ClientID = "agent-7" })
	e.publish(second.Token)
	waitActive(t, p, second.Token)
	if err := p.Write(metrics(2, nil)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	n, err := rotation.VerifyAuditLog(bytes.NewReader(data))
	if err != nil || n < 2 {
		t.Fatalf("audit log: %d records, %v", n, err)
	}
	for _, tok := range []string{first.Token, second.Token} {
		if bytes.Contains(data, []byte(tok)) {
			t.Fatal("the audit log contains a token")
		}
	}
	if !bytes.Contains(data, []byte(rotation.Fingerprint(second.Token))) || !bytes.Contains(data, []byte(`"agent-7"`)) {
		t.Fatalf("audit log lacks the new token's fingerprint or the client id:\n%s", data)
	}
}

// TestAuditLogKeyedAndRecoveredAtConnect: a torn last line (a crash in the
// middle of an append) does not stop Connect; it is moved aside and the
// recovery recorded in the keyed chain, which verifies with its key only.
func TestAuditLogKeyedAndRecoveredAtConnect(t *testing.T) {
	e := newEnv(t)
	first := e.auth()
	e.publish(first.Token)
	keyFile := filepath.Join(e.dir, "audit.key")
	key := strings.Repeat("5eed", 16)
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(e.dir, "audit.jsonl")
	keyed := func(p *InfluxDB) { p.AuditLog = audit; p.AuditKeyFile = keyFile }
	p := e.plugin(keyed)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(audit, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":2,"time":"2026-`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	p = e.plugin(keyed)
	if err := p.Write(metrics(2, nil)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := rotation.VerifyAuditLogWith(bytes.NewReader(data), rotation.AuditOptions{Key: []byte(key)})
	if err != nil || !sum.Keyed || len(sum.Recoveries) != 1 {
		t.Fatalf("keyed audit log after a torn line: %+v, %v; want valid with one recovery", sum, err)
	}
	if _, err := rotation.VerifyAuditLog(bytes.NewReader(data)); err == nil {
		t.Fatal("a keyed audit log verified without its key")
	}
	if aside, _ := filepath.Glob(audit + ".torn-*"); len(aside) != 1 {
		t.Fatalf("moved-aside files %v, want one", aside)
	}
	if bytes.Contains(data, []byte(key)) {
		t.Fatal("the audit log contains its key")
	}
	e.checkNoTokenLeak()
}

func TestPromotionClosesIdleConnections(t *testing.T) {
	e := newEnv(t)
	first, second := e.auth(), e.auth()
	e.publish(first.Token)
	target, err := url.Parse(e.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	front := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	front.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	front.Start()
	t.Cleanup(front.Close)
	p := e.plugin(func(p *InfluxDB) { p.URLs = []string{front.URL} })

	for range 3 {
		if err := p.Write(metrics(2, nil)); err != nil {
			t.Fatal(err)
		}
	}
	before := conns.Load()
	if err := p.Write(metrics(2, nil)); err != nil {
		t.Fatal(err)
	}
	if conns.Load() != before {
		t.Fatalf("a write without rotation opened a connection (%d -> %d): keep-alive is not working", before, conns.Load())
	}
	e.publish(second.Token)
	waitActive(t, p, second.Token)
	if err := p.Write(metrics(2, nil)); err != nil {
		t.Fatal(err)
	}
	if conns.Load() == before {
		t.Fatal("the first write after a promotion reused an old connection")
	}
}

func TestUnixSocketURL(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	target, err := url.Parse(e.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(e.dir, "influxd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix sockets unavailable: %v", err)
	}
	front := &httptest.Server{Listener: l, Config: &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}}
	front.Start()
	t.Cleanup(front.Close)
	p := e.plugin(func(p *InfluxDB) { p.URLs = []string{"unix://" + sock} })
	if err := p.Write(metrics(4, nil)); err != nil {
		t.Fatalf("Write over a unix socket: %v", err)
	}
	if n := len(e.srv.PointsBy(a.ID)); n != 4 {
		t.Fatalf("%d of 4 points stored", n)
	}
	if got := p.StatsFields()["probe_errors_unreachable"]; got != 0 {
		t.Fatalf("the probe could not reach the server over the socket (%d)", got)
	}
}

func TestTokenEnvOption(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	t.Setenv("INFLUXROTATE_TEST_TOKEN", a.Token)
	p := e.plugin(func(p *InfluxDB) {
		p.TokenFile = ""
		p.TokenEnv = "INFLUXROTATE_TEST_TOKEN"
	})
	if err := p.Write(metrics(3, nil)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if n := len(e.srv.PointsBy(a.ID)); n != 3 {
		t.Fatalf("%d of 3 points stored", n)
	}
}
