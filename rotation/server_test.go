package rotation_test

// These tests run the library against testutil/influxv2, a server that
// answers like InfluxDB 2.x and checks every request against the OpenAPI
// contract. They live in an external test package so that influxv2 may
// itself use package rotation.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/rotation/secretdir"
	"github.com/influxrotate/influxrotate/testutil/capture"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

const (
	org    = "acme"
	bucket = "telemetry"
)

func probeWith(t testing.TB, srv *influxv2.Server, cfg rotation.ProberConfig) *rotation.HTTPProber {
	t.Helper()
	cfg.URL = srv.URL()
	if cfg.Targets == nil {
		cfg.Targets = []rotation.Target{{Org: org, Bucket: bucket}}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	p, err := rotation.NewHTTPProber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func cred(tok string) *rotation.Credential { return rotation.NewCredential(tok, "", "test") }

func TestProbeVerdictsFromTestServer(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{})
	valid := srv.WriteAuthorization(org, bucket)
	otherBucket := srv.WriteAuthorization(org, "elsewhere")
	inactive := srv.WriteAuthorization(org, bucket)
	if err := srv.SetActive(inactive.ID, false); err != nil {
		t.Fatal(err)
	}
	deleted := srv.WriteAuthorization(org, bucket)
	if err := srv.DeleteAuthorization(deleted.ID); err != nil {
		t.Fatal(err)
	}
	const unknownToken = "bm90LWEtcmVhbC10b2tlbi1ub3QtYS1yZWFsLXRva2VuLW5vdC1hLXJlYWwtdG9rZW4tbm90LWEtcmVhbC10b2tlbg=="

	for name, tc := range map[string]struct {
		token  string
		target rotation.Target
		fault  *influxv2.Fault
		want   rotation.Verdict
		status int
	}{
		"write token":              {valid.Token, rotation.Target{}, nil, rotation.VerdictValid, 204},
		"unknown token":            {unknownToken, rotation.Target{}, nil, rotation.VerdictRefused, 401},
		"deleted authorization":    {deleted.Token, rotation.Target{}, nil, rotation.VerdictRefused, 401},
		"inactive authorization":   {inactive.Token, rotation.Target{}, nil, rotation.VerdictForbidden, 403},
		"token for another bucket": {otherBucket.Token, rotation.Target{}, nil, rotation.VerdictForbidden, 403},
		"bucket not found":         {valid.Token, rotation.Target{Org: org, Bucket: "nope"}, nil, rotation.VerdictNotFound, 404},
		"org not found":            {valid.Token, rotation.Target{Org: "nope", Bucket: bucket}, nil, rotation.VerdictNotFound, 404},
		"server error":             {valid.Token, rotation.Target{}, &influxv2.Fault{Status: 500}, rotation.VerdictUnknown, 500},
		"unavailable":              {valid.Token, rotation.Target{}, &influxv2.Fault{Status: 503, RetryAfter: "5"}, rotation.VerdictUnknown, 503},
		"throttled":                {valid.Token, rotation.Target{}, &influxv2.Fault{Status: 429, RetryAfter: "1"}, rotation.VerdictUnknown, 429},
		"proxy bad gateway":        {valid.Token, rotation.Target{}, &influxv2.Fault{Status: 502}, rotation.VerdictUnknown, 502},
		"proxy gateway timeout":    {valid.Token, rotation.Target{}, &influxv2.Fault{Status: 504}, rotation.VerdictUnknown, 504},
		"connection reset":         {valid.Token, rotation.Target{}, &influxv2.Fault{ResetConnection: true}, rotation.VerdictUnknown, 0},
		"slower than the timeout":  {valid.Token, rotation.Target{}, &influxv2.Fault{Delay: 10 * time.Second}, rotation.VerdictUnknown, 0},
		"InfluxDB 3 empty write":   {valid.Token, rotation.Target{}, &influxv2.Fault{Status: 400, Body: `{"error":"write buffer error: incoming write was empty"}`}, rotation.VerdictValid, 400},
		"InfluxDB 1.x refused":     {valid.Token, rotation.Target{}, &influxv2.Fault{Status: 401, Body: `{"error":"authorization failed"}`}, rotation.VerdictRefused, 401},
		"unexpected bad request":   {valid.Token, rotation.Target{}, &influxv2.Fault{Status: 400}, rotation.VerdictUnknown, 400},
	} {
		t.Run(name, func(t *testing.T) {
			target := tc.target
			if target == (rotation.Target{}) {
				target = rotation.Target{Org: org, Bucket: bucket}
			}
			p := probeWith(t, srv, rotation.ProberConfig{Targets: []rotation.Target{target}, Timeout: 300 * time.Millisecond})
			if tc.fault != nil {
				srv.Inject(*tc.fault)
			}
			res := p.Probe(context.Background(), cred(tc.token))
			if res.Verdict != tc.want || res.Status != tc.status {
				t.Fatalf("verdict %v status %d (%s), want %v %d", res.Verdict, res.Status, res.Message, tc.want, tc.status)
			}
			for _, a := range []string{valid.Token, otherBucket.Token, inactive.Token, deleted.Token, unknownToken} {
				if strings.Contains(res.Message, a) {
					t.Errorf("message reveals a token")
				}
			}
		})
	}
	if n := len(srv.Points()); n != 0 {
		t.Errorf("empty-write probes stored %d points", n)
	}
}

func TestProbePointModeWritesToProbeBucket(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{})
	a := srv.WriteAuthorization(org, "_probe")
	p := probeWith(t, srv, rotation.ProberConfig{Mode: rotation.ProbePoint, ProbeOrg: org, ProbeBucket: "_probe"})
	if res := p.Probe(context.Background(), cred(a.Token)); res.Verdict != rotation.VerdictValid {
		t.Fatalf("verdict %v: %s", res.Verdict, res.Message)
	}
	pts := srv.PointsBy(a.ID)
	if len(pts) != 1 || pts[0].Measurement != rotation.ProbeMeasurement || pts[0].Bucket != "_probe" || pts[0].Fields["ok"] != int64(1) {
		t.Fatalf("points %+v, want one influxrotate_probe ok=1i in _probe", pts)
	}
}

// writer is the writer's side of the protocol from docs/architecture.md:
// one credential per flush, Classify, Refused on 401/403, at most two
// immediate retries, otherwise the batch stays buffered.
type writer struct {
	client *http.Client
	url    string
	rot    *rotation.Rotator
}

type flushResult struct {
	accepted bool
	used     *rotation.Credential
	err      error
}

func (w *writer) flush(ctx context.Context, batch []byte) flushResult {
	c := w.rot.Current()
	if c == nil {
		return flushResult{err: fmt.Errorf("no token yet")}
	}
	for attempt := 0; ; attempt++ {
		status, header, body, err := w.post(ctx, c, batch)
		if err != nil {
			return flushResult{used: c, err: err}
		}
		d := rotation.Classify(status, header, body)
		switch d.Action {
		case rotation.ActionAccept:
			return flushResult{accepted: true, used: c}
		case rotation.ActionAuth:
			next, retry := w.rot.Refused(ctx, c, status)
			if !retry || attempt >= 2 {
				return flushResult{used: c, err: fmt.Errorf("write refused (%d) with %v; batch kept", status, c)}
			}
			c = next
		default:
			return flushResult{used: c, err: fmt.Errorf("write: %v %s", d.Action, d.Message)}
		}
	}
}

func (w *writer) post(ctx context.Context, c *rotation.Credential, batch []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url+"/api/v2/write?org="+org+"&bucket="+bucket, bytes.NewReader(batch))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", c.AuthorizationHeader())
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, resp.Header, body, nil
}

// rig is a server, a kubelet-style secret volume, a FileSource and a
// Rotator wired as a writer would wire them.
type rig struct {
	srv    *influxv2.Server
	dir    string
	src    *rotation.FileSource
	rot    *rotation.Rotator
	stats  *rotation.Stats
	logs   *capture.Buffer
	w      *writer
	tokens []string // every token created, to scan output for
	tmu    sync.Mutex
}

func newRig(t testing.TB, fallback bool, audit *rotation.AuditLog) *rig {
	t.Helper()
	r := &rig{srv: influxv2.NewTest(t, influxv2.Options{}), dir: t.TempDir(), stats: new(rotation.Stats), logs: new(capture.Buffer)}
	log := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	first := r.newAuth()
	r.publish(t, first.Token)
	src, err := rotation.NewFileSource(rotation.FileSourceConfig{Path: filepath.Join(r.dir, "token"),
		Debounce: 2 * time.Millisecond, Reread: 50 * time.Millisecond, Logger: log, Stats: r.stats})
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second}
	rot, err := rotation.NewRotator(context.Background(), rotation.Config{
		Source: src, Prober: probeWith(t, r.srv, rotation.ProberConfig{Client: client}), Fallback: fallback,
		OnPromote: transport.CloseIdleConnections, Logger: log, Stats: r.stats, Audit: audit, ClientID: "rig",
		ProbeBackoff: rotation.Backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.src, r.rot = src, rot
	r.w = &writer{client: client, url: r.srv.URL(), rot: rot}
	t.Cleanup(func() {
		rot.Close()
		src.Close()
		transport.CloseIdleConnections()
	})
	return r
}

func (r *rig) newAuth() influxv2.Authorization {
	a := r.srv.WriteAuthorization(org, bucket)
	r.tmu.Lock()
	r.tokens = append(r.tokens, a.Token)
	r.tmu.Unlock()
	return a
}

func (r *rig) publish(t testing.TB, tok string) {
	if err := secretdir.Write(r.dir, map[string][]byte{"token": []byte(tok + "\n")}, 0o644); err != nil {
		t.Error(err)
	}
}

func (r *rig) allTokens() []string {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	return append([]string(nil), r.tokens...)
}

// TestConcurrentWritersDuringRapidRotation is the central promise: writers
// flush thousands of batches while the token is replaced every few
// milliseconds through a kubelet-style secret volume and each old token is
// deleted as soon as the writer has adopted its successor. Every batch must
// be stored exactly once, with a token the server held active at that
// moment, and the writers must never drop a batch.
func TestConcurrentWritersDuringRapidRotation(t *testing.T) {
	const (
		writers   = 6
		flushes   = 400 // per writer, at least
		rotations = 60
		// The writers go on past flushes until this many rotations
		// happened under them (a loaded machine runs the writers faster
		// than the rotations), bounded by maxFlushes.
		minRotations = 10
		maxFlushes   = 100 * flushes
	)
	if testing.Short() {
		t.Skip("long race test")
	}
	r := newRig(t, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var (
		deletedMu   sync.Mutex
		deleted     = map[string]bool{} // fingerprints of revoked tokens
		published   = map[string]bool{} // authorization IDs published
		done        atomic.Bool
		rotated     atomic.Int64
		keptBatches atomic.Int64 // flushes that kept the batch buffered
		wg          sync.WaitGroup
	)
	// The controller: new token, publish, wait for adoption, delete the old.
	wg.Go(func() {
		var current influxv2.Authorization
		for _, a := range r.srv.Authorizations() {
			if a.Token == r.allTokens()[0] {
				current = a
			}
		}
		deletedMu.Lock()
		published[current.ID] = true
		deletedMu.Unlock()
		for i := 0; i < rotations && !done.Load() && ctx.Err() == nil; i++ {
			next := r.newAuth()
			deletedMu.Lock()
			published[next.ID] = true
			deletedMu.Unlock()
			r.publish(t, next.Token)
			fp := rotation.Fingerprint(next.Token)
			if !wait.Check(t, 20*time.Second, "adoption of "+fp, func() bool { return r.stats.Fingerprint() == fp || done.Load() }) {
				return
			}
			if done.Load() {
				return
			}
			deletedMu.Lock()
			deleted[rotation.Fingerprint(current.Token)] = true
			deletedMu.Unlock()
			if err := r.srv.DeleteAuthorization(current.ID); err != nil {
				t.Error(err)
			}
			current = next
			rotated.Add(1)
			time.Sleep(2 * time.Millisecond) // pace: "every few milliseconds"
		}
	})
	var writersWG sync.WaitGroup
	var batches atomic.Int64
	for w := range writers {
		writersWG.Go(func() {
			for i := 0; i < maxFlushes && (i < flushes || rotated.Load() < minRotations) && ctx.Err() == nil; i++ {
				batches.Add(1)
				batch := fmt.Appendf(nil, "m,writer=w%d seq=%di %d\n", w, i, int64(w*maxFlushes+i+1))
				// The batch stays buffered until accepted: retry at the next
				// flush, bounded in count.
				var res flushResult
				for try := 0; try < 200 && ctx.Err() == nil; try++ {
					res = r.w.flush(ctx, batch)
					if res.accepted {
						break
					}
					keptBatches.Add(1)
					time.Sleep(time.Millisecond) // the next flush interval
				}
				if !res.accepted {
					t.Errorf("writer %d batch %d never accepted: %v", w, i, res.err)
					return
				}
			}
		})
	}
	// Let the writers finish, then stop rotating.
	writersWG.Wait()
	done.Store(true)
	wg.Wait()

	pts := r.srv.Points()
	seen := map[string]int{}
	deletedMu.Lock()
	defer deletedMu.Unlock()
	for _, p := range pts {
		seen[p.Line]++
		if !published[p.AuthID] {
			t.Errorf("point %s written with authorization %q, which was never published", p.Line, p.AuthID)
		}
	}
	if want := int(batches.Load()); len(pts) != want || len(seen) != want {
		t.Errorf("%d points (%d distinct), want %d: batches lost or duplicated", len(pts), len(seen), want)
	}
	// The server stored a point only with a token it held active at that
	// moment (it authenticates every write); every refusal was of a token
	// the controller had revoked, never of a live one.
	for _, req := range r.srv.Requests() {
		if req.Path == "/api/v2/write" && req.Status >= 400 && !deleted[req.Fingerprint] {
			t.Errorf("a write with a live token failed: %+v", req)
		}
	}
	if rotated.Load() < minRotations || r.stats.Rotations.Load() < rotated.Load() {
		t.Errorf("only %d rotations published, %d promoted", rotated.Load(), r.stats.Rotations.Load())
	}
	t.Logf("%d batches, %d rotations, %d promotions, %d auth failures, %d flushes kept a batch buffered",
		len(pts), rotated.Load(), r.stats.Rotations.Load(), r.stats.AuthFailures.Load(), keptBatches.Load())
	out := r.logs.String()
	for _, tok := range r.allTokens() {
		if strings.Contains(out, tok) {
			t.Fatalf("log reveals token %s", rotation.Fingerprint(tok))
		}
	}
}

// TestNoTokenInAnyOutputDuringFullRotationCycle runs every path that logs,
// errs or audits with real tokens, including a token file whose invalid
// content holds tokens, and scans all of it for every token created.
func TestNoTokenInAnyOutputDuringFullRotationCycle(t *testing.T) {
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	audit, err := rotation.OpenAuditLog(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, true, audit)
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	ctx := context.Background()
	batch := func(i int) []byte { return fmt.Appendf(nil, "m v=%di %d\n", i, i+1) }
	first := r.allTokens()[0]
	var firstID string
	for _, a := range r.srv.Authorizations() {
		if a.Token == first {
			firstID = a.ID
		}
	}
	if res := r.w.flush(ctx, batch(1)); !res.accepted {
		t.Fatalf("first flush: %v", res.err)
	}

	// A candidate the server refuses (revoked before it is probed).
	bad := r.newAuth()
	if err := r.srv.DeleteAuthorization(bad.ID); err != nil {
		t.Fatal(err)
	}
	r.publish(t, bad.Token)
	wait.Check(t, 10*time.Second, "the refusal", func() bool { return r.stats.RotationFailures.Load() == 1 })

	// Invalid content made of tokens, then a volume without the key.
	errsBefore := r.stats.SourceErrors.Load()
	if err := secretdir.Write(r.dir, map[string][]byte{"token": []byte(first + "\n" + bad.Token + "\n")}, 0o644); err != nil {
		t.Fatal(err)
	}
	wait.Check(t, 10*time.Second, "the invalid file", func() bool {
		return r.stats.SourceErrors.Load() > errsBefore && strings.Contains(r.logs.String(), "cannot be used")
	})
	_, err = r.src.Read(ctx)
	note(err)
	if err := secretdir.Write(r.dir, map[string][]byte{"other": []byte("x")}, 0o644); err != nil {
		t.Fatal(err)
	}
	wait.Check(t, 10*time.Second, "the missing file", func() bool { return strings.Contains(r.logs.String(), "token file is missing") })
	_, err = rotation.NewStaticSource(first + "\n" + bad.Token)
	note(err)
	_, err = rotation.ParseToken([]byte(first + "\x00"))
	note(err)

	// A good rotation; then the new token is revoked under the writer and
	// the previous one takes over.
	good := r.newAuth()
	r.publish(t, good.Token)
	wait.Check(t, 10*time.Second, "the promotion", func() bool { r.rot.Current(); return r.stats.Rotations.Load() == 1 })
	if err := r.srv.DeleteAuthorization(good.ID); err != nil {
		t.Fatal(err)
	}
	res := r.w.flush(ctx, batch(2))
	note(res.err)
	if !res.accepted || r.stats.Fallbacks.Load() != 1 {
		t.Errorf("flush after revocation: accepted %v, fallbacks %d", res.accepted, r.stats.Fallbacks.Load())
	}
	// Nothing valid is left: the batch stays buffered with an error.
	if err := r.srv.DeleteAuthorization(firstID); err != nil {
		t.Fatal(err)
	}
	res = r.w.flush(ctx, batch(3))
	note(res.err)
	if res.accepted || res.err == nil {
		t.Errorf("flush with every token revoked: accepted %v, err %v", res.accepted, res.err)
	}
	r.rot.Reload(ctx)
	r.rot.Close()
	audit.Close()
	auditBytes, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotation.VerifyAuditLog(bytes.NewReader(auditBytes)); err != nil {
		t.Errorf("audit log: %v", err)
	}

	out := strings.Join(append(errs, r.logs.String(), string(auditBytes), fmt.Sprint(r.stats.Fields(time.Now())),
		fmt.Sprintf("%v %+v %#v", r.rot.Current(), r.rot.Current(), r.rot.Current())), "\n")
	for _, tok := range r.allTokens() {
		if strings.Contains(out, tok) {
			t.Fatalf("output reveals token %s", rotation.Fingerprint(tok))
		}
	}
	// The scan only means something if every path really ran.
	for _, want := range []string{rotation.Fingerprint(first), rotation.Fingerprint(good.Token), rotation.Fingerprint(bad.Token),
		"refused by the server", "fell back", "cannot be used", "missing", `"event":"fallback"`, "batch kept"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q, so the test did not cover that path", want)
		}
	}
}

// BenchmarkSourceChangeToPromoted measures a full cycle: a kubelet-style
// update of the secret volume, the watcher's debounce and read, the probe
// against the server, and the promotion at the next flush.
func BenchmarkSourceChangeToPromoted(b *testing.B) {
	r := newRig(b, false, nil)
	toks := make([]string, b.N)
	for i := range toks {
		toks[i] = r.newAuth().Token
	}
	b.ResetTimer()
	for i := range b.N {
		r.publish(b, toks[i])
		fp := rotation.Fingerprint(toks[i])
		deadline := time.Now().Add(10 * time.Second)
		for r.rot.Current().Fingerprint() != fp {
			if time.Now().After(deadline) {
				b.Fatal("not promoted")
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(time.Duration(r.stats.RotationLatency.Load()).Microseconds()), "last-latency-us")
}
