package main

// The echo proof: a server (or a proxy in front of it) that quotes the
// request's Authorization header back in its error bodies, in every form an
// encoder could give it, must not get a token into any output of the
// controller, the execd binary or the plugin.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"

	plugin "github.com/influxrotate/influxrotate/plugins/outputs/influxdb_v2_rotating"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// echoMarker starts every echo, so a test can tell the server's message
// was quoted (and scrubbed) rather than left out.
const echoMarker = "echo-from-proxy"

// echoForms quote an Authorization header "Token <token>" back. Each keeps
// the token within the first few hundred bytes, which is what a quoted
// message is cut to.
var echoForms = map[string]func(header string) string{
	"plain":       func(h string) string { return "you sent " + h },
	"json":        func(h string) string { return `{"code":"invalid","message":"you sent ` + h + `"}` },
	"base64":      func(h string) string { return "you sent " + base64.StdEncoding.EncodeToString([]byte(h)) },
	"base64url":   func(h string) string { return "token " + base64.RawURLEncoding.EncodeToString([]byte(token(h))) + "." },
	"basic auth":  func(h string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte("tg:"+token(h))) },
	"basic auth2": func(h string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte("t:"+token(h))) },
	"query":       func(h string) string { return "GET /x?token=" + url.QueryEscape(token(h)) },
	"path":        func(h string) string { return "GET /x/" + url.PathEscape(token(h)) + "/y" },
	"header line": func(h string) string { return "Authorization:\t" + h + "\r\nHost: x" },
}

func token(header string) string { return strings.TrimPrefix(header, "Token ") }

// echoing fronts srv: requests for which fail returns true are answered
// status with form's echo of their Authorization header; the rest go to
// srv. Every token sent or issued is registered with scan first.
func echoing(t *testing.T, srv *influxv2.Server, scan *secscan.Scanner, form func(string) string, status int, fail func(*http.Request) bool) *httptest.Server {
	inner := issuing(t, srv, scan)
	target, _ := url.Parse(inner.URL)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		scan.Add(token(h))
		if fail(r) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(status)
			fmt.Fprintf(w, "%s: %s", echoMarker, form(h))
			return
		}
		r.URL.Scheme, r.URL.Host, r.RequestURI = target.Scheme, target.Host, ""
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		_, _ = w.Write(b.Bytes())
	}))
	t.Cleanup(front.Close)
	return front
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// scanAll fails t for any registered token in output or in a file under
// dir, token files aside, and checks that the echo was quoted somewhere.
func scanAll(t *testing.T, scan *secscan.Scanner, what string, output []byte, dir string, skip ...string) {
	t.Helper()
	scan.Check(t, what, output)
	quoted := bytes.Contains(output, []byte(echoMarker))
	hits, _, err := scan.ScanTree(dir, func(path string) bool {
		for _, s := range skip {
			if path == s {
				return true
			}
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(echoMarker)) {
			quoted = true
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hits {
		t.Errorf("secret leak: %s", h)
	}
	if !quoted {
		t.Errorf("%s: the echo was never quoted, so the scenario proves nothing\n%s", what, output)
	}
}

func TestProofSecurityEchoedAuthorizationLeaksNoToken(t *testing.T) {
	bin := buildProofBinary(t)
	execd := buildExecdBinary(t)
	for name, form := range echoForms {
		t.Run(name, func(t *testing.T) {
			// A verify write refused (403) aborts the rotation: the
			// journal's last outcome quotes the server.
			t.Run("controller verify write", func(t *testing.T) {
				echoController(t, bin, form, http.StatusForbidden, func(r *http.Request) bool { return r.URL.Path == "/api/v2/write" },
					filepath.Join("state", "telegraf.json"), filepath.Join("audit", "audit.jsonl"))
			})
			// A failed deactivation interrupts it: the audit log quotes it.
			t.Run("controller deactivate", func(t *testing.T) {
				echoController(t, bin, form, http.StatusBadRequest, func(r *http.Request) bool { return r.Method == http.MethodPatch },
					filepath.Join("audit", "audit.jsonl"))
			})
			// The verify write's answer quotes the operator token, which the
			// server saw on the calls before: every token the controller
			// holds is scrubbed from every server message, not only the one
			// sent with the request quoted.
			t.Run("controller verify write quoting the operator token", func(t *testing.T) {
				var mu sync.Mutex
				var operator string
				echoController(t, bin, func(string) string {
					mu.Lock()
					defer mu.Unlock()
					return form(operator)
				}, http.StatusForbidden, func(r *http.Request) bool {
					if r.URL.Path == "/api/v2/write" {
						return true
					}
					mu.Lock()
					operator = r.Header.Get("Authorization")
					mu.Unlock()
					return false
				}, filepath.Join("state", "telegraf.json"), filepath.Join("audit", "audit.jsonl"))
			})
			t.Run("execd", func(t *testing.T) { echoExecd(t, execd, form) })
			t.Run("plugin", func(t *testing.T) { echoPlugin(t, form) })
		})
	}
}

// echoController runs one rotation against a server that echoes the
// operator token (on the PATCH that deactivates the old token) or the new
// token (on the verify probe); the rotation fails and says why in its
// stderr and in the files named by quoting (relative to its directory).
func echoController(t *testing.T, bin string, form func(string) string, status int, fail func(*http.Request) bool, quoting ...string) {
	var scan secscan.Scanner
	srv := influxv2.NewTest(t, influxv2.Options{})
	front := echoing(t, srv, &scan, form, status, fail)
	dir := t.TempDir()
	const org, bucket = "acme", "telegraf"
	srv.CreateBucket(org, bucket)
	initial := srv.WriteAuthorization(org, bucket)
	scan.AddServer(srv)
	tokenFile := filepath.Join(dir, "secret", "token")
	writeFile(t, tokenFile, initial.Token+"\n")
	writeFile(t, filepath.Join(dir, "operator-token"), srv.OperatorToken()+"\n")
	cfgPath := filepath.Join(dir, "influxrotate.toml")
	writeFile(t, cfgPath, fmt.Sprintf(`url = %q
operator_token_file = "operator-token"
state_dir = "state"
audit_log = "audit/audit.jsonl"
allow_insecure_http = true
[retry]
attempts = 2
initial = "5ms"
max = "10ms"

[[credential]]
name = "telegraf"
org = %q
authorization_id = %q
max_age = "1h"
grace = "10ms"
observe = "10ms"
  [[credential.target]]
  type = "file"
  path = %q
`, front.URL, org, initial.ID, tokenFile))
	cmd := exec.Command(bin, "rotate", "-config", cfgPath, "-force", "-debug")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the rotation succeeded through a failing server:\n%s", out)
	}
	// status prints the journal's last outcome too.
	report, _ := exec.Command(bin, "status", "-config", cfgPath).CombinedOutput()
	scanAll(t, &scan, "controller output", append(out, report...), dir, tokenFile, filepath.Join(dir, "operator-token"))
	for _, f := range quoting {
		f = filepath.Join(dir, f)
		if b, err := os.ReadFile(f); err != nil || !bytes.Contains(b, []byte(echoMarker)) {
			t.Errorf("%s does not quote the server's message (%v):\n%s", f, err, b)
		}
	}
}

// echoExecd runs the execd binary's -check, then the binary itself, against
// a server that answers every write with an echo: the check fails and each
// batch is dropped with the server's message.
func echoExecd(t *testing.T, bin string, form func(string) string) {
	var scan secscan.Scanner
	srv := influxv2.NewTest(t, influxv2.Options{})
	front := echoing(t, srv, &scan, form, http.StatusBadRequest, func(r *http.Request) bool { return r.URL.Path == "/api/v2/write" })
	dir := t.TempDir()
	srv.CreateBucket("acme", "telegraf")
	a := srv.WriteAuthorization("acme", "telegraf")
	scan.AddServer(srv)
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, a.Token+"\n")
	conf := filepath.Join(dir, "execd.conf")
	writeFile(t, conf, fmt.Sprintf(`[[outputs.influxdb_v2_rotating]]
  urls = [%q]
  organization = "acme"
  bucket = "telegraf"
  token_file = %q
  audit_log = %q
`, front.URL, tokenFile, filepath.Join(dir, "audit", "audit.jsonl")))
	if err := os.MkdirAll(filepath.Join(dir, "audit"), 0o700); err != nil {
		t.Fatal(err)
	}
	check, err := exec.Command(bin, "-config", conf, "-check").CombinedOutput()
	if err == nil {
		t.Fatalf("-check passed against a server refusing writes:\n%s", check)
	}
	scanAll(t, &scan, "-check output", check, dir, tokenFile)

	cmd := exec.Command(bin, "-config", conf, "-batch-size", "2", "-flush-interval", "10ms", "-shutdown-timeout", "5s")
	cmd.Stdin = strings.NewReader("cpu v=1 1\ncpu v=2 2\ncpu v=3 3\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("execd binary: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("dropped a batch")) {
		t.Fatalf("no batch was dropped: the scenario did not exercise the write path\n%s", out)
	}
	scanAll(t, &scan, "execd output", out, dir, tokenFile)
}

// echoPlugin writes through the plugin to a server that answers every write
// with an echo: the returned error, the log and the audit log quote it.
func echoPlugin(t *testing.T, form func(string) string) {
	var scan secscan.Scanner
	srv := influxv2.NewTest(t, influxv2.Options{})
	front := echoing(t, srv, &scan, form, http.StatusBadRequest, func(r *http.Request) bool { return r.URL.Path == "/api/v2/write" })
	dir := t.TempDir()
	srv.CreateBucket("acme", "telegraf")
	a := srv.WriteAuthorization("acme", "telegraf")
	scan.AddServer(srv)
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, a.Token+"\n")
	log := &testutil.CaptureLogger{Name: "outputs.influxdb_v2_rotating"}
	p := plugin.New()
	p.URLs = []string{front.URL}
	p.Organization, p.Bucket = "acme", "telegraf"
	p.TokenFile = tokenFile
	p.TokenDebounce = config.Duration(5 * time.Millisecond)
	p.AuditLog = filepath.Join(dir, "audit.jsonl")
	p.Log = log
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(); err != nil {
		t.Fatal(err)
	}
	err := p.Write([]telegraf.Metric{metric.New("cpu", nil, map[string]any{"v": 1.0}, time.Unix(1, 0))})
	if err == nil {
		t.Fatal("a write the server refused succeeded")
	}
	if cerr := p.Close(); cerr != nil {
		t.Errorf("Close: %v", cerr)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "write error: %v\n", err)
	for _, m := range log.Messages() {
		out.WriteString(m.String() + "\n")
	}
	if !strings.Contains(out.String(), rotation.Fingerprint(a.Token)) {
		t.Errorf("the echoed token is not named by its fingerprint:\n%s", out.String())
	}
	scanAll(t, &scan, "plugin errors and log", out.Bytes(), dir, tokenFile)
}
