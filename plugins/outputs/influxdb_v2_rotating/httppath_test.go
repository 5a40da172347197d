package influxdb_v2_rotating

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	stockplugin "github.com/influxdata/telegraf/plugins/outputs/influxdb_v2"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/redirect"
	"github.com/influxrotate/influxrotate/testutil/secscan"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// scanOutput fails t when a token of the test is in a log line the plugin
// wrote or in one of texts (errors the caller got), in any encoded form.
func scanOutput(t *testing.T, e *env, texts ...string) {
	t.Helper()
	var sc secscan.Scanner
	e.mu.Lock()
	sc.Add(e.tokens...)
	e.mu.Unlock()
	for _, m := range e.log.Messages() {
		sc.Check(t, "log line", []byte(m.Text))
	}
	for _, s := range texts {
		sc.Check(t, "error", []byte(s))
	}
}

// gateway answers 403 to any request without the header X-Gateway-Key, as
// an API gateway in front of InfluxDB does, and passes the rest on.
func gateway(t *testing.T, next http.Handler, lacking *atomic.Int64) *httptest.Server {
	t.Helper()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Gateway-Key") != "open-sesame" {
			lacking.Add(1)
			http.Error(w, `{"code":"forbidden","message":"gateway key required"}`, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(gw.Close)
	return gw
}

// The probe of a new token carries http_headers like the writes: behind a
// gateway that requires a header, a new token is validated and adopted,
// and no request lacks the header.
func TestProbeSendsHTTPHeaders(t *testing.T) {
	e := newEnv(t)
	var lacking atomic.Int64
	gw := gateway(t, e.srv, &lacking)
	first, second := e.auth(), e.auth()
	e.publish(first.Token)
	key := config.NewSecret([]byte("open-sesame"))
	p := e.plugin(func(p *InfluxDB) {
		p.URLs = []string{gw.URL}
		p.HTTPHeaders = map[string]*config.Secret{"X-Gateway-Key": &key}
		p.TokenDebounce = config.Duration(1)
	})
	e.publish(second.Token)
	wait.For(t, 10*time.Second, "the second token to be adopted or a request to lack the header", func() bool {
		c := p.Rotator().Current()
		return lacking.Load() > 0 || c != nil && c.Fingerprint() == rotation.Fingerprint(second.Token)
	})
	if n := lacking.Load(); n > 0 {
		t.Fatalf("%d request(s) reached the gateway without http_headers", n)
	}
	if err := p.Write(metrics(3, nil)); err != nil {
		t.Fatalf("Write with the second token: %v", err)
	}
	scanOutput(t, e)
}

// A query string in urls is kept on every request, writes and probes, as
// the stock plugin keeps it (gateways and proxies route on it).
func TestURLQueryIsKept(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	p := e.plugin(func(p *InfluxDB) { p.URLs = []string{e.srv.URL() + "/?id=abc"} })
	if err := p.Write(metrics(3, nil)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if _, results, err := p.Check(context.Background()); err != nil || results[0].Verdict != rotation.VerdictValid {
		t.Fatalf("Check: %v %+v", err, results)
	}
	var writes int
	for _, r := range e.srv.Requests() {
		if r.Path != "/api/v2/write" {
			continue
		}
		writes++
		q, err := url.ParseQuery(r.Query)
		if err != nil || q.Get("id") != "abc" || q.Get("bucket") != e.bucket || q.Get("org") != e.org {
			t.Errorf("request %s?%s lacks id=abc, or bucket or org", r.Path, r.Query)
		}
	}
	if writes < 2 {
		t.Fatalf("%d write requests seen, want the write and the probe", writes)
	}
	scanOutput(t, e)
}

// A bad URL, proxy or local address passes Init and fails Connect, as in
// the stock plugin (so `telegraf --test`, which does not connect, passes
// where stock passes). The stock plugin is run beside ours to prove it.
func TestBadAddressesFailAtConnectLikeStock(t *testing.T) {
	cases := []struct {
		name   string
		urls   []string
		proxy  string
		local  string
		wantIn string
	}{
		{"urls parse", []string{"http://a b:%"}, "", "", "urls: error parsing url"},
		{"urls scheme", []string{"ftp://x"}, "", "", `urls: unsupported scheme "ftp"`},
		{"http_proxy", []string{"http://127.0.0.1:1"}, "http://a b:%", "", "http_proxy: error parsing"},
		{"local_address", []string{"http://127.0.0.1:1"}, "", "127.0.0.1:99999", "local_address: invalid port"},
		// A URL's password is masked, also where the URL does not parse.
		{"urls scheme password", []string{"ftp://u:url-s3cret-pw@x"}, "", "", `"ftp://u:xxxxx@x"`},
		{"urls parse password", []string{"http://u:url-s3cret-pw@x:port"}, "", "", `"http://u:xxxxx@x:port": invalid port`},
		{"http_proxy password", []string{"http://127.0.0.1:1"}, "http://u:url-s3cret-pw@x:port", "", `"http://u:xxxxx@x:port"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stock := &stockplugin.InfluxDB{URLs: tc.urls, HTTPProxy: tc.proxy, LocalAddr: tc.local}
			if err := stock.Init(); err != nil {
				t.Fatalf("stock Init: %v", err)
			}
			if err := stock.Connect(); err == nil {
				_ = stock.Close()
				t.Fatal("stock Connect succeeded; the case tests nothing")
			}

			p := New()
			p.TokenFile = t.TempDir() + "/token"
			p.Bucket = "b"
			p.URLs, p.HTTPProxy, p.LocalAddr = tc.urls, tc.proxy, tc.local
			if err := p.Init(); err != nil {
				t.Fatalf("Init: %v; stock passes Init", err)
			}
			err := p.Connect()
			if err == nil || !strings.Contains(err.Error(), tc.wantIn) {
				t.Fatalf("Connect: %v, want an error containing %q", err, tc.wantIn)
			}
			if strings.Contains(err.Error(), "url-s3cret-pw") {
				t.Fatal("Connect error shows the URL's password")
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close after a failed Connect: %v", err)
			}
		})
	}
}

// Connect without Init returns an error instead of panicking.
func TestConnectWithoutInit(t *testing.T) {
	p := New()
	p.TokenFile = t.TempDir() + "/token"
	err := p.Connect()
	if err == nil || !strings.Contains(err.Error(), "before Init") {
		t.Fatalf("Connect without Init: %v, want an error saying Init was not called", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// No request of the plugin follows a redirect: not a write, not the
// probe, not Check. The write's batch is kept, and the errors name the
// status and where the redirect pointed, never the token.
func TestRedirectsAreNotFollowed(t *testing.T) {
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newEnv(t)
			trap := redirect.New(t, status)
			first, second := e.auth(), e.auth()
			e.publish(first.Token)
			p := e.plugin(func(p *InfluxDB) { p.URLs = []string{trap.URL()}; p.TokenDebounce = config.Duration(1) })

			werr := p.Write(metrics(3, nil))
			var we *WriteError
			if !errors.As(werr, &we) || !we.Retryable() {
				t.Fatalf("Write: %v, want a retryable WriteError (the batch is kept)", werr)
			}
			// WriteRaw, the execd binary's path, too.
			rerr := p.WriteRaw(context.Background(), "", []byte("m v=1i 1\n"), 1)
			if !IsRetryable(rerr) || !strings.Contains(rerr.Error(), rotation.ErrRedirectRefused.Error()) {
				t.Fatalf("WriteRaw: %v, want a retryable error saying the redirect was refused", rerr)
			}
			// A new token is probed before it is used.
			before := p.stats.ProbeUnreachable.Load()
			e.publish(second.Token)
			wait.For(t, 10*time.Second, "the new token's probe", func() bool { return p.stats.ProbeUnreachable.Load() > before })
			_, results, cerr := p.Check(context.Background())
			if cerr != nil || len(results) != 1 || results[0].Verdict == rotation.VerdictValid {
				t.Fatalf("Check: %v %+v, want a non-valid verdict", cerr, results)
			}

			trap.CheckNothingFollowed(t)
			for what, msg := range map[string]string{"write error": werr.Error(), "check": results[0].Message} {
				for _, want := range []string{rotation.ErrRedirectRefused.Error(), http.StatusText(status), trap.To.URL} {
					if !strings.Contains(msg, want) {
						t.Errorf("%s %q lacks %q", what, msg, want)
					}
				}
			}
			scanOutput(t, e, werr.Error(), rerr.Error(), results[0].Message)
		})
	}
}

// An Authorization header set in http_headers replaces the token on the
// wire; a server that echoes it in an error must find it scrubbed from the
// error Write returns and the log, in plain and base64 form alike.
func TestHTTPHeadersAuthorizationIsScrubbed(t *testing.T) {
	e := newEnv(t)
	e.publish(e.auth().Token)
	const handSet = "hand-set-gateway-credential-0123456789abcdef"
	e.remember(handSet)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `{"code":"internal error","message":"upstream refused %s (%s)"}`,
			h, base64.StdEncoding.EncodeToString([]byte(h)))
	}))
	t.Cleanup(echo.Close)
	header := config.NewSecret([]byte("Bearer " + handSet))
	p := e.plugin(func(p *InfluxDB) {
		p.URLs = []string{echo.URL}
		p.HTTPHeaders = map[string]*config.Secret{"Authorization": &header}
	})
	err := p.Write(metrics(3, nil))
	if err == nil {
		t.Fatal("Write to a server answering 500 succeeded")
	}
	if !strings.Contains(err.Error(), "upstream refused") {
		t.Fatalf("error %q does not quote the server", err)
	}
	scanOutput(t, e, err.Error())
}
