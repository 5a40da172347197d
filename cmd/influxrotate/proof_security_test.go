package main

// The security proof: a full rotation scenario — the built influxrotate
// binary rotating a token three times while the plugin and the built execd
// binary write with it —
// after which every log line, error, metric, audit record, state file and
// request record is scanned for every token the server ever issued. Then
// the audit log is tampered with in each way a tamperer could, and
// `influxrotate audit verify` must notice.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"

	plugin "github.com/influxrotate/influxrotate/plugins/outputs/influxdb_v2_rotating"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// buildProofBinary shares the binary main_test.go builds once per test
// process (and removes in TestMain), so that -count=N works.
func buildProofBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	return binary(t)
}

// buildExecdBinary builds cmd/influxdb-v2-rotating into the test's
// temporary directory (the build cache makes repeats cheap).
func buildExecdBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "influxdb-v2-rotating")
	cmd := exec.Command("go", "build", "-o", path, ".")
	cmd.Dir = filepath.Join("..", "influxdb-v2-rotating")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return path
}

// creates reports whether a request creates a token: an InfluxDB 2.x
// authorization or an InfluxDB 3 token, whose answers carry it in "token".
func creates(r *http.Request) bool {
	switch r.URL.Path {
	case "/api/v2/authorizations", "/api/v3/configure/token/named_admin", "/api/v3/enterprise/configure/token":
		return r.Method == http.MethodPost
	}
	return false
}

// issuing fronts the test server and registers the token of every
// authorization it creates, whoever asked for it, before the answer goes
// out: the server forgets deleted authorizations, the scanner must not.
func issuing(t *testing.T, srv *influxv2.Server, scan *secscan.Scanner) *httptest.Server {
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		if creates(r) {
			var a struct {
				Token string `json:"token"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &a); err == nil {
				scan.Add(a.Token)
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(front.Close)
	return front
}

func TestProofSecurityFullRotationLeaksNoToken(t *testing.T) {
	bin := buildProofBinary(t)
	var scan secscan.Scanner
	srv := influxv2.NewTest(t, influxv2.Options{})
	front := issuing(t, srv, &scan)
	dir := t.TempDir()
	const org, bucket = "acme", "telegraf"
	srv.CreateBucket(org, bucket)
	srv.CreateBucket(org, "monitoring")
	initial := srv.WriteAuthorization(org, bucket)
	scan.AddServer(srv) // the operator's and the initial token

	mustWrite := func(path, content string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	tokenFile := filepath.Join(dir, "secret", "token")
	mustWrite(tokenFile, initial.Token+"\n", 0o600)
	mustWrite(filepath.Join(dir, "operator-token"), srv.OperatorToken()+"\n", 0o600)
	cfgPath := filepath.Join(dir, "influxrotate.toml")
	mustWrite(cfgPath, fmt.Sprintf(`url = %q
backend = "influxdb2"
operator_token_file = "operator-token"
state_dir = "state"
audit_log = "audit/audit.jsonl"
client_id = "proof-controller"
allow_insecure_http = true
[retry]
attempts = 4
initial = "5ms"
max = "50ms"
[metrics]
org = %q
bucket = "monitoring"
token_file = "operator-token"

[[credential]]
name = "telegraf"
org = %q
authorization_id = %q
max_age = "1h"
grace = "300ms"
observe = "100ms"
  [[credential.target]]
  type = "file"
  path = %q
`, front.URL, org, org, initial.ID, tokenFile), 0o600)

	// The writer: the plugin with token_file, its own audit log, flushing
	// every 20ms through the rotations.
	log := &testutil.CaptureLogger{Name: "outputs.influxdb_v2_rotating"}
	p := plugin.New()
	p.URLs = []string{front.URL}
	p.Organization = org
	p.Bucket = bucket
	p.TokenFile = tokenFile
	p.TokenDebounce = config.Duration(5 * time.Millisecond)
	p.AuditLog = filepath.Join(dir, "plugin-audit", "audit.jsonl")
	p.Log = log
	if err := os.MkdirAll(filepath.Dir(p.AuditLog), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(); err != nil {
		t.Fatal(err)
	}
	var writeErrs []string
	var errMu sync.Mutex
	var written atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var pending []telegraf.Metric
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			pending = append(pending, metric.New("cpu", map[string]string{"host": "a"},
				map[string]any{"v": float64(i)}, time.Unix(1_700_000_000, int64(i))))
			if err := p.Write(pending); err != nil {
				errMu.Lock()
				writeErrs = append(writeErrs, err.Error())
				errMu.Unlock()
				if plugin.IsRetryable(err) {
					continue // keep them, as the agent would
				}
			}
			written.Add(int64(len(pending)))
			pending = pending[:0]
		}
	}()

	// The execd binary reads the same token file, with its own audit log,
	// writing its statistics to InfluxDB every 100ms and logging at debug.
	execdConf := filepath.Join(dir, "execd.conf")
	mustWrite(execdConf, fmt.Sprintf(`[[outputs.influxdb_v2_rotating]]
  urls = [%q]
  organization = %q
  bucket = %q
  token_file = %q
  token_debounce = "5ms"
  audit_log = %q
`, front.URL, org, bucket, tokenFile, filepath.Join(dir, "execd-audit", "audit.jsonl")), 0o600)
	if err := os.MkdirAll(filepath.Join(dir, "execd-audit"), 0o700); err != nil {
		t.Fatal(err)
	}
	execd := exec.Command(buildExecdBinary(t), "-config", execdConf, "-debug", "-batch-size", "10",
		"-flush-interval", "20ms", "-stats-interval", "100ms", "-shutdown-timeout", "10s")
	execdIn, err := execd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var execdOut, execdErr bytes.Buffer
	execd.Stdout, execd.Stderr = &execdOut, &execdErr
	if err := execd.Start(); err != nil {
		t.Fatal(err)
	}
	execdDone := make(chan struct{})
	go func() { // a line every 20 ms on stdin until the rotations are over
		defer close(execdDone)
		defer execdIn.Close()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := fmt.Fprintf(execdIn, "execd,host=b v=%d %d\n", i, 1_700_000_000_000_000_000+int64(i)); err != nil {
				return
			}
		}
	}()

	var ctlOut bytes.Buffer
	for i := 0; i < 3; i++ {
		cmd := exec.Command(bin, "rotate", "-config", cfgPath, "-force", "-debug")
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		ctlOut.WriteString(stdout.String() + stderr.String())
		if err != nil {
			t.Fatalf("rotation %d: %v\n%s%s", i+1, err, stdout.String(), stderr.String())
		}
	}
	close(stop)
	<-done
	<-execdDone
	if err := execd.Wait(); err != nil {
		t.Errorf("execd binary: %v\n%s", err, execdErr.String())
	}
	if !strings.Contains(execdErr.String(), "rotated") {
		t.Errorf("the execd binary's log shows no rotation: the scenario did not exercise it\n%s", execdErr.String())
	}
	if err := p.Close(); err != nil {
		t.Errorf("plugin Close: %v", err)
	}
	if got := p.StatsFields()["rotations"]; got < 3 {
		t.Errorf("the plugin adopted %d rotations, want 3: the scenario did not rotate", got)
	}
	if scan.Len() < 5 { // operator, initial, three new
		t.Fatalf("only %d tokens registered: the scanner would miss leaks", scan.Len())
	}

	// Token files are written 0600 by the controller.
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file after rotation: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}

	// Everything the scenario produced, except the two token files.
	var everything bytes.Buffer
	fmt.Fprintf(&everything, "controller output:\n%s\n", ctlOut.String())
	fmt.Fprintf(&everything, "execd binary output:\n%s\n%s\n", execdOut.String(), execdErr.String())
	for _, m := range log.Messages() {
		everything.WriteString(m.String() + "\n")
	}
	errMu.Lock()
	everything.WriteString(strings.Join(writeErrs, "\n"))
	errMu.Unlock()
	fmt.Fprintf(&everything, "\nplugin stats: %v\n", p.StatsFields())
	// The controller's token_rotation metrics are among the stored points.
	hits, files := scanScenario(t, &scan, srv, "logs, errors, metrics and requests", &everything, dir, tokenFile)
	if files < 3 {
		t.Fatalf("only %d files scanned: the audit logs and state are missing", files)
	}
	t.Logf("%d tokens scanned for in %d bytes of output and %d files: %d hits; %d metrics written",
		scan.Len(), everything.Len(), files, len(hits), written.Load())

	// Both audit logs verify with the binary.
	for _, audit := range []string{filepath.Join(dir, "audit", "audit.jsonl"), p.AuditLog, filepath.Join(dir, "execd-audit", "audit.jsonl")} {
		out, err := exec.Command(bin, "audit", "verify", audit).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hash chain valid") {
			t.Fatalf("audit verify %s: %v\n%s", audit, err, out)
		}
	}
	proofAuditTampering(t, bin, filepath.Join(dir, "audit", "audit.jsonl"))
}

// proofAuditTampering edits a copy of a valid audit log in each way a
// tamperer could and expects `influxrotate audit verify` to exit 1 naming
// the line.
func proofAuditTampering(t *testing.T, bin, path string) {
	t.Helper()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(orig), "\n"), "\n")
	if len(lines) < 4 {
		t.Fatalf("audit log has %d records, too few to tamper with meaningfully", len(lines))
	}
	join := func(ls []string) string {
		s := strings.Join(ls, "")
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		return s
	}
	edit := func(ls []string, i int, f func(map[string]any)) []string {
		var rec map[string]any
		if err := json.Unmarshal([]byte(ls[i]), &rec); err != nil {
			t.Fatal(err)
		}
		f(rec)
		b, _ := json.Marshal(rec)
		out := append([]string(nil), ls...)
		out[i] = string(b) + "\n"
		return out
	}
	cases := map[string]string{
		"a field changed":                       join(edit(lines, 1, func(r map[string]any) { r["outcome"] = "ok-but-forged" })),
		"a record removed":                      join(append(append([]string(nil), lines[:1]...), lines[2:]...)),
		"two records swapped":                   join(append([]string{lines[0], lines[2], lines[1]}, lines[3:]...)),
		"a record inserted":                     join(append(append([]string{lines[0], lines[1]}, lines[1]), lines[2:]...)),
		"the hash recomputed without the chain": join(edit(lines, 2, func(r map[string]any) { r["prev_hash"] = strings.Repeat("0", 64) })),
		"the last line truncated":               strings.TrimSuffix(string(orig), "\n")[:len(orig)-20],
	}
	for name, content := range cases {
		tampered := filepath.Join(t.TempDir(), "audit.jsonl")
		if err := os.WriteFile(tampered, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "audit", "verify", tampered)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%s: audit verify exited with %v, want exit code 1\n%s", name, err, out)
			continue
		}
		if !strings.Contains(string(out), "line") {
			t.Errorf("%s: verify output does not name the line: %s", name, out)
		}
	}
}

// scanScenario adds what the server stored and was asked to output, scans
// it for every token scan knows, then scans every file under dir except the
// two that must hold a token (the published token file and the operator
// token). Each hit fails t; it returns the hits and how many files were read.
func scanScenario(t *testing.T, scan *secscan.Scanner, srv *influxv2.Server, what string, output *bytes.Buffer, dir, tokenFile string) ([]secscan.Hit, int) {
	t.Helper()
	for _, pt := range srv.Points() {
		fmt.Fprintf(output, "%s %v %v\n", pt.Line, pt.Tags, pt.Fields)
	}
	for _, q := range srv.Requests() {
		fmt.Fprintf(output, "%+v\n", q)
	}
	scan.Check(t, what, output.Bytes())
	hits, files, err := scan.ScanTree(dir, func(path string) bool {
		return path == tokenFile || path == filepath.Join(dir, "operator-token")
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hits {
		t.Errorf("secret leak: %s", h)
	}
	return hits, files
}
