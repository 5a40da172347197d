package rotation

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer answers every write with status and body, and records requests.
type fakeServer struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string
}

func newFakeServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, r)
		f.bodies = append(f.bodies, string(b))
		f.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func answer(status int, contentType, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func newProber(t *testing.T, cfg ProberConfig) *HTTPProber {
	t.Helper()
	if cfg.Targets == nil && cfg.Mode == ProbeEmptyWrite {
		cfg.Targets = []Target{{Org: "acme", Bucket: "telemetry"}}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	p, err := NewHTTPProber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const jsonCT = "application/json; charset=utf-8"

// TestProbeClassification covers every answer shape of InfluxDB 1.8, 2.x,
// 3 and of proxies in front of them.
func TestProbeClassification(t *testing.T) {
	for name, tc := range map[string]struct {
		status      int
		ct, body    string
		want        Verdict
		wantMessage string
	}{
		"2.x empty write accepted":        {204, "", "", VerdictValid, ""},
		"3.x empty write after auth":      {400, jsonCT, `{"error":"write buffer error: incoming write was empty"}`, VerdictValid, "incoming write was empty"},
		"2.0.x empty write after auth":    {400, jsonCT, `{"code":"invalid","message":"writing requires points"}`, VerdictValid, "writing requires points"},
		"2.x unknown token":               {401, jsonCT, `{"code":"unauthorized","message":"unauthorized access"}`, VerdictRefused, "unauthorized access"},
		"1.x wrong password":              {401, jsonCT, `{"error":"authorization failed"}`, VerdictRefused, "authorization failed"},
		"3.x unknown token":               {401, jsonCT, `{"error":"the request was not authenticated"}`, VerdictRefused, "not authenticated"},
		"2.x no write permission":         {403, jsonCT, `{"code":"forbidden","message":"insufficient permissions for write"}`, VerdictForbidden, "insufficient permissions"},
		"2.x inactive token":              {403, jsonCT, `{"code":"forbidden","message":"insufficient permissions for write: token is inactive"}`, VerdictForbidden, "inactive"},
		"1.x read-only user":              {403, jsonCT, `{"error":"\"r1\" user is not authorized to write to database \"telemetry\""}`, VerdictForbidden, "not authorized"},
		"2.x bucket not found":            {404, jsonCT, `{"code":"not found","message":"bucket \"telemetry\" not found"}`, VerdictNotFound, "not found"},
		"1.x database not found":          {404, jsonCT, `{"error":"database not found: \"nodb\""}`, VerdictNotFound, "database not found"},
		"2.x other bad request":           {400, jsonCT, `{"code":"invalid","message":"Please provide either orgID or org"}`, VerdictUnknown, "orgID"},
		"3.x malformed authorization":     {400, jsonCT, `{"error":"Authorization header was malformed, the request was not in the form of 'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, Token and Basic"}`, VerdictRefused, "Authorization header was malformed"},
		"3.x write_lp empty write":        {400, "text/plain; charset=utf-8", "incoming write was empty", VerdictValid, "incoming write was empty"},
		"3.x expired token":               {401, "application/json", `{"error": "the request was not authenticated"}`, VerdictRefused, "the request was not authenticated"},
		"3.x resource token without db":   {403, "application/json", `{"error": "unauthorized to perform requested action with the token"}`, VerdictForbidden, "unauthorized to perform requested action"},
		"3.x bad line is not valid":       {400, "application/json", `{"error":"parsing failed for write_lp endpoint"}`, VerdictUnknown, "parsing failed"},
		"throttled":                       {429, jsonCT, `{"code":"too many requests","message":"slow down"}`, VerdictUnknown, "slow down"},
		"internal error":                  {500, jsonCT, `{"code":"internal error","message":"boom"}`, VerdictUnknown, "boom"},
		"proxy bad gateway HTML":          {502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>", VerdictUnknown, "502 Bad Gateway"},
		"unavailable without body":        {503, "", "", VerdictUnknown, "Service Unavailable"},
		"gateway timeout":                 {504, "text/plain", "upstream timed out", VerdictUnknown, "upstream timed out"},
		"unexpected redirect":             {307, "", "", VerdictUnknown, "Temporary Redirect"},
		"unexpected method not allowed":   {405, jsonCT, `{"code":"method not allowed","message":"nope"}`, VerdictUnknown, "nope"},
		"200 from an odd server is valid": {200, "", "", VerdictValid, ""},
	} {
		t.Run(name, func(t *testing.T) {
			srv := newFakeServer(t, answer(tc.status, tc.ct, tc.body))
			p := newProber(t, ProberConfig{URL: srv.URL})
			res := p.Probe(context.Background(), NewCredential(tokenN(1), "", "test"))
			if res.Verdict != tc.want || res.Status != tc.status {
				t.Fatalf("verdict %v status %d, want %v %d (%s)", res.Verdict, res.Status, tc.want, tc.status, res.Message)
			}
			if !strings.Contains(res.Message, tc.wantMessage) {
				t.Errorf("message %q lacks %q", res.Message, tc.wantMessage)
			}
			if res.Target != (Target{Org: "acme", Bucket: "telemetry"}) {
				t.Errorf("target %+v", res.Target)
			}
		})
	}
}

func TestProbeSendsEmptyWriteWithTokenAndHeaders(t *testing.T) {
	srv := newFakeServer(t, answer(204, "", ""))
	p := newProber(t, ProberConfig{
		URL:     srv.URL + "/influx/",
		Targets: []Target{{Org: "acme", Bucket: "a"}, {Bucket: "db/rp"}},
		Header:  http.Header{"User-Agent": {"influxrotate-test"}, "X-Extra": {"1"}},
	})
	cred := NewCredential(tokenN(1), "", "test")
	if res := p.Probe(context.Background(), cred); res.Verdict != VerdictValid {
		t.Fatalf("verdict %v: %s", res.Verdict, res.Message)
	}
	if len(srv.reqs) != 2 {
		t.Fatalf("%d requests, want one per target", len(srv.reqs))
	}
	for i, want := range []string{"bucket=a&org=acme", "bucket=db%2Frp"} {
		r := srv.reqs[i]
		if r.Method != http.MethodPost || r.URL.Path != "/influx/api/v2/write" || r.URL.RawQuery != want {
			t.Errorf("request %d: %s %s?%s, want POST /influx/api/v2/write?%s", i, r.Method, r.URL.Path, r.URL.RawQuery, want)
		}
		if r.Header.Get("Authorization") != cred.AuthorizationHeader() {
			t.Errorf("request %d: wrong Authorization header", i)
		}
		if r.Header.Get("User-Agent") != "influxrotate-test" || r.Header.Get("X-Extra") != "1" {
			t.Errorf("request %d: extra headers missing: %v", i, r.Header)
		}
		if srv.bodies[i] != "" {
			t.Errorf("request %d: body %q, want empty", i, srv.bodies[i])
		}
	}
}

func TestProbeFirstFailingTargetDecides(t *testing.T) {
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("bucket") == "b" {
			answer(403, jsonCT, `{"code":"forbidden","message":"insufficient permissions for write"}`)(w, r)
			return
		}
		w.WriteHeader(204)
	})
	p := newProber(t, ProberConfig{URL: srv.URL, Targets: []Target{{"o", "a"}, {"o", "b"}, {"o", "c"}}})
	res := p.Probe(context.Background(), NewCredential(tokenN(1), "", ""))
	if res.Verdict != VerdictForbidden || res.Target.Bucket != "b" {
		t.Fatalf("got %v on %+v, want forbidden on bucket b", res.Verdict, res.Target)
	}
	if len(srv.reqs) != 2 {
		t.Errorf("%d requests, want to stop at the failing target", len(srv.reqs))
	}
}

func TestProbeTimeoutIsUnknown(t *testing.T) {
	release := make(chan struct{})
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	p := newProber(t, ProberConfig{URL: srv.URL, Timeout: 50 * time.Millisecond})
	start := time.Now()
	res := p.Probe(context.Background(), NewCredential(tokenN(1), "", ""))
	if res.Verdict != VerdictUnknown {
		t.Fatalf("verdict %v, want unknown", res.Verdict)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("probe took %v despite a 50ms timeout", d)
	}
}

func TestProbeCallerContextBoundsIt(t *testing.T) {
	release := make(chan struct{})
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	p := newProber(t, ProberConfig{URL: srv.URL, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if res := p.Probe(ctx, NewCredential(tokenN(1), "", "")); res.Verdict != VerdictUnknown {
		t.Fatalf("verdict %v, want unknown", res.Verdict)
	}
}

func TestProbeUnreachableServerIsUnknownNotRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := newProber(t, ProberConfig{URL: "http://" + addr})
	res := p.Probe(context.Background(), NewCredential(tokenN(1), "", ""))
	if res.Verdict != VerdictUnknown || res.Status != 0 || res.Message == "" {
		t.Fatalf("got %+v, want unknown with a transport message", res)
	}
	assertNoSecret(t, "probe message", res.Message, tokenN(1))
}

func TestProbePointWritesOneRealPoint(t *testing.T) {
	srv := newFakeServer(t, answer(204, "", ""))
	p := newProber(t, ProberConfig{URL: srv.URL, Mode: ProbePoint, ProbeOrg: "acme", ProbeBucket: "_probe",
		Targets: []Target{{"acme", "telemetry"}}})
	if res := p.Probe(context.Background(), NewCredential(tokenN(1), "", "")); res.Verdict != VerdictValid {
		t.Fatalf("verdict %v", res.Verdict)
	}
	if len(srv.reqs) != 1 || srv.reqs[0].URL.Query().Get("bucket") != "_probe" {
		t.Fatalf("want one write to the probe bucket, got %d", len(srv.reqs))
	}
	if b := srv.bodies[0]; !strings.HasPrefix(b, "influxrotate_probe ok=1i ") || !strings.HasSuffix(b, "\n") {
		t.Errorf("probe point %q", b)
	}
}

func TestProbeNoneSendsNothing(t *testing.T) {
	var hits atomic.Int64
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	p := newProber(t, ProberConfig{URL: srv.URL, Mode: ProbeNone})
	if res := p.Probe(context.Background(), NewCredential(tokenN(1), "", "")); res.Verdict != VerdictValid {
		t.Fatalf("verdict %v", res.Verdict)
	}
	if hits.Load() != 0 {
		t.Error("probe mode none sent a request")
	}
}

func TestNewHTTPProberNamesBadOption(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  ProberConfig
		want string
	}{
		"no url":          {ProberConfig{Targets: []Target{{"o", "b"}}}, "probe url"},
		"not http":        {ProberConfig{URL: "ftp://x", Targets: []Target{{"o", "b"}}}, "probe url"},
		"no targets":      {ProberConfig{URL: "http://127.0.0.1:8086"}, "probe targets"},
		"empty bucket":    {ProberConfig{URL: "http://127.0.0.1:8086", Targets: []Target{{"o", ""}}}, "targets[0]"},
		"no probe bucket": {ProberConfig{URL: "http://127.0.0.1:8086", Mode: ProbePoint}, "probe_bucket"},
		"bad mode":        {ProberConfig{URL: "http://127.0.0.1:8086", Mode: 9}, "probe mode"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewHTTPProber(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}
