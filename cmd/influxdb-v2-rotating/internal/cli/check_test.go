package cli

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/execdtest"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/redirect"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// checkEnv is a test server with a write token in a token file.
func checkEnv(t *testing.T) (srv *influxv2.Server, tokenFile string, scan *secscan.Scanner) {
	t.Helper()
	srv = influxv2.NewTest(t, influxv2.Options{})
	auth := srv.WriteAuthorization("acme", "telemetry")
	tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(auth.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scan = new(secscan.Scanner)
	scan.AddServer(srv)
	return srv, tokenFile, scan
}

// runCheck runs -check with the config and scans what it printed.
func runCheck(t *testing.T, scan *secscan.Scanner, conf string) (code int, out string) {
	t.Helper()
	code, out, errOut := runMain(t, "-check", "-config", conf)
	scan.Check(t, "-check stdout", []byte(out))
	scan.Check(t, "-check stderr", []byte(errOut))
	return code, out + errOut
}

// -check probes over the unix socket the writes use.
func TestCheckThroughUnixSocket(t *testing.T) {
	srv, tokenFile, scan := checkEnv(t)
	sock := filepath.Join(t.TempDir(), "influx.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix sockets unavailable: %v", err)
	}
	front := &httptest.Server{Listener: l, Config: &http.Server{Handler: srv}}
	front.Start()
	t.Cleanup(front.Close)
	conf := execdtest.WriteConfig(t, t.TempDir(), "unix://"+sock, tokenFile, "acme", "telemetry", "")
	if code, out := runCheck(t, scan, conf); code != 0 || !strings.Contains(out, "OK: token sha256:") {
		t.Fatalf("-check over a unix socket: exit %d\n%s", code, out)
	}
}

// -check goes through http_proxy, as the writes do: the URL's host does not
// resolve, only the proxy can reach the server.
func TestCheckThroughHTTPProxy(t *testing.T) {
	srv, tokenFile, scan := checkEnv(t)
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	conf := execdtest.WriteConfig(t, t.TempDir(), "http://influx.invalid:8086", tokenFile, "acme", "telemetry",
		"  http_proxy = \""+proxy.URL+"\"\n")
	if code, out := runCheck(t, scan, conf); code != 0 || !strings.Contains(out, "OK: token sha256:") || proxied.Load() == 0 {
		t.Fatalf("-check through http_proxy: exit %d, %d proxied request(s)\n%s", code, proxied.Load(), out)
	}
}

// -check sends http_headers: a gateway that requires one lets it through.
func TestCheckSendsHTTPHeaders(t *testing.T) {
	srv, tokenFile, scan := checkEnv(t)
	var lacking atomic.Int64
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Gateway-Key") != "open-sesame" {
			lacking.Add(1)
			http.Error(w, `{"code":"forbidden","message":"gateway key required"}`, http.StatusForbidden)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(gw.Close)
	conf := execdtest.WriteConfig(t, t.TempDir(), gw.URL, tokenFile, "acme", "telemetry",
		"  [outputs.influxdb_v2_rotating.http_headers]\n    X-Gateway-Key = \"open-sesame\"\n")
	if code, out := runCheck(t, scan, conf); code != 0 || !strings.Contains(out, "OK: token sha256:") || lacking.Load() > 0 {
		t.Fatalf("-check behind a gateway: exit %d, %d request(s) without the header\n%s", code, lacking.Load(), out)
	}
}

// -check does not follow a redirect (which would carry the token to the
// Location) and says FAIL, naming the status and where it pointed.
func TestCheckRefusesRedirects(t *testing.T) {
	_, tokenFile, scan := checkEnv(t)
	trap := redirect.New(t, http.StatusTemporaryRedirect)
	conf := execdtest.WriteConfig(t, t.TempDir(), trap.URL(), tokenFile, "acme", "telemetry", "")
	code, out := runCheck(t, scan, conf)
	trap.CheckNothingFollowed(t)
	if code != 1 || !strings.Contains(out, "FAIL") {
		t.Fatalf("-check against a redirect: exit %d, want 1 and FAIL\n%s", code, out)
	}
	for _, want := range []string{rotation.ErrRedirectRefused.Error(), "307", trap.To.URL} {
		if !strings.Contains(out, want) {
			t.Errorf("-check output lacks %q:\n%s", want, out)
		}
	}
}

// -check names a URL without its userinfo password.
func TestCheckMasksURLPassword(t *testing.T) {
	srv, tokenFile, scan := checkEnv(t)
	withUser := strings.Replace(srv.URL(), "http://", "http://admin:hunter2@", 1)
	conf := execdtest.WriteConfig(t, t.TempDir(), withUser, tokenFile, "acme", "telemetry", "")
	code, out := runCheck(t, scan, conf)
	if code != 0 || strings.Contains(out, "hunter2") || !strings.Contains(out, "admin:xxxxx@") {
		t.Fatalf("-check with a password in the URL: exit %d, want 0 and the password masked\n%s", code, out)
	}
}
