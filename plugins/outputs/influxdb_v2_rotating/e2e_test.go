package influxdb_v2_rotating

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/rotation/secretdir"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/realtools"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// The end-to-end tests run bin/telegraf, a real Telegraf (the Makefile's
// TELEGRAF_VERSION) with this plugin compiled in, built by `make telegraf`
// (make e2e builds it first). `make compat` points them at each supported
// version through realtools.PluginTelegrafEnv.

// proxied is one request seen by recordingProxy.
type proxied struct {
	fingerprint string // of the Authorization token, "" without one
	bodyLen     int
	status      int
	path        string
	time        time.Time
}

// recordingProxy sits between Telegraf and the test server and records the
// body size of each request, which tells a write (a body) from a probe (an
// empty write) for the same token.
type recordingProxy struct {
	URL string
	mu  sync.Mutex
	log []proxied
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := &recordingProxy{}
	fwd := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		fp := ""
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Token "); ok {
			fp = rotation.Fingerprint(tok)
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		fwd.ServeHTTP(rec, r)
		rp.mu.Lock()
		rp.log = append(rp.log, proxied{fingerprint: fp, bodyLen: len(body), status: rec.status, path: r.URL.Path, time: time.Now()})
		rp.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	rp.URL = srv.URL
	return rp
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (rp *recordingProxy) requests() []proxied {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]proxied(nil), rp.log...)
}

// writesWith counts requests with a body (real writes) made with token.
func (rp *recordingProxy) writesWith(token string) (n int) {
	fp := rotation.Fingerprint(token)
	for _, r := range rp.requests() {
		if r.fingerprint == fp && r.bodyLen > 0 {
			n++
		}
	}
	return n
}

type e2eConfig struct {
	url, tokenFile, dataFile string
	internal                 bool
	bufferLimit, batchSize   int
	interval, flush          string
	output                   string // the output section; default ours
}

func (c e2eConfig) String() string {
	if c.bufferLimit == 0 {
		c.bufferLimit = 100000
	}
	if c.batchSize == 0 {
		c.batchSize = 1000
	}
	if c.interval == "" {
		c.interval = "200ms"
	}
	if c.flush == "" {
		c.flush = "300ms"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[agent]
  interval = %q
  flush_interval = %q
  flush_jitter = "0s"
  round_interval = false
  precision = "1ms"
  metric_batch_size = %d
  metric_buffer_limit = %d
  omit_hostname = true
  debug = true

[[inputs.mock]]
  metric_name = "mock"
  [[inputs.mock.constant]]
    name = "constant"
    value = 1
  [[inputs.mock.sine_wave]]
    name = "wave"
    amplitude = 1.0
    period = 10.0

[[outputs.file]]
  files = [%q]
  data_format = "influx"
  namepass = ["mock"]
`, c.interval, c.flush, c.batchSize, c.bufferLimit, c.dataFile)
	if c.internal {
		b.WriteString("\n[[inputs.internal]]\n  collect_memstats = false\n")
	}
	if c.output != "" {
		b.WriteString("\n" + c.output)
		return b.String()
	}
	fmt.Fprintf(&b, `
[[outputs.influxdb_v2_rotating]]
  urls = [%q]
  token_file = %q
  organization = "acme"
  bucket = "telegraf"
  token_debounce = "50ms"
  token_reread_interval = "1s"
`, c.url, c.tokenFile)
	return b.String()
}

// producedPoints reads what outputs.file wrote: every mock point Telegraf
// produced, by the series+timestamp identity the test server uses.
func producedPoints(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("outputs.file data: %v", err)
	}
	out := map[string]bool{}
	dec := lineprotocol.NewDecoderWithBytes(data)
	for dec.Next() {
		m, err := dec.Measurement()
		if err != nil {
			t.Fatal(err)
		}
		tags := map[string]string{}
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				t.Fatal(err)
			}
			if k == nil {
				break
			}
			tags[string(k)] = string(v)
		}
		for {
			k, _, err := dec.NextField()
			if err != nil {
				t.Fatal(err)
			}
			if k == nil {
				break
			}
		}
		ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 0, len(tags))
		for k := range tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteString(string(m))
		for _, k := range keys {
			b.WriteString("," + k + "=" + tags[k])
		}
		out[b.String()+" "+strconv.FormatInt(ts.UnixNano(), 10)] = true
	}
	return out
}

// maxField is the largest value of an internal_token_rotation field the
// server received, -1 when none.
func maxField(srv *influxv2.Server, field string) int64 {
	best := int64(-1)
	for _, p := range srv.Points() {
		if p.Measurement != "internal_token_rotation" {
			continue
		}
		if v, ok := p.Fields[field].(int64); ok && v > best {
			best = v
		}
	}
	return best
}

// wroteWith reports whether the server stored a point written by authID:
// only a real write stores points, a probe never does.
func wroteWith(srv *influxv2.Server, authID string) func() bool {
	return func() bool { return len(srv.PointsBy(authID)) > 0 }
}

func publishSecret(t *testing.T, dir string, content string) {
	t.Helper()
	if err := secretdir.Write(dir, map[string][]byte{"token": []byte(content)}, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkEveryPointStored compares what Telegraf produced with what the
// server stored.
func checkEveryPointStored(t *testing.T, produced map[string]bool, srv *influxv2.Server) {
	t.Helper()
	if len(produced) < 5 {
		t.Fatalf("only %d mock points produced; the run was too short to prove anything", len(produced))
	}
	got := stored(srv)
	var missing []string
	for line := range produced {
		if _, ok := got[line]; !ok {
			missing = append(missing, line)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("%d of %d mock points not stored, e.g. %s", len(missing), len(produced), missing[0])
	}
	t.Logf("all %d mock points Telegraf produced were stored", len(produced))
}

func checkOutputHasNoToken(t *testing.T, out string, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		if tok != "" && strings.Contains(out, tok) {
			t.Errorf("Telegraf's output contains token %s", rotation.Fingerprint(tok))
		}
	}
}

func TestE2ERotationUnderLoad(t *testing.T) {
	bin := realtools.PluginTelegraf(t)
	srv := influxv2.NewTest(t, influxv2.Options{})
	srv.CreateBucket("acme", "telegraf")
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	data := filepath.Join(dir, "mock.out")

	current := srv.WriteAuthorization("acme", "telegraf")
	tokens := []string{current.Token}
	ours := map[string]bool{current.ID: true}
	publishSecret(t, secret, current.Token+"\n")

	tg := realtools.StartTelegraf(t, e2eConfig{url: srv.URL(), tokenFile: filepath.Join(secret, "token"), dataFile: data, internal: true}.String(),
		realtools.WithTelegrafBinary(bin))
	wait.For(t, 30*time.Second, "the first write", wroteWith(srv, current.ID))

	const rotations = 4
	revokedAt := map[string]time.Time{}
	for i := range rotations {
		next := srv.WriteAuthorization("acme", "telegraf")
		tokens = append(tokens, next.Token)
		ours[next.ID] = true
		publishSecret(t, secret, next.Token+"\n")
		wait.For(t, 20*time.Second, fmt.Sprintf("rotation %d to be adopted", i+1), wroteWith(srv, next.ID))
		// Let the new token carry a few flushes of mock points before the
		// controller's next step: revoke the old token after adoption.
		wait.For(t, 20*time.Second, "mock points written with the new token", func() bool {
			n := 0
			for _, p := range srv.PointsBy(next.ID) {
				if p.Measurement == "mock" {
					n++
				}
			}
			return n >= 3
		})
		if err := srv.DeleteAuthorization(current.ID); err != nil {
			t.Fatal(err)
		}
		revokedAt[current.ID] = time.Now()
		current = next
	}
	wait.For(t, 20*time.Second, "internal_token_rotation with rotations=4 at the server", func() bool {
		return maxField(srv, "rotations") == rotations
	})
	if err := tg.Stop(); err != nil {
		t.Fatalf("stopping Telegraf: %v", err)
	}

	checkEveryPointStored(t, producedPoints(t, data), srv)
	for _, p := range srv.Points() {
		if !ours[p.AuthID] {
			t.Fatalf("point %s written by unknown authorization %q", p.Line, p.AuthID)
		}
	}
	for _, r := range srv.Requests() {
		if !strings.HasSuffix(r.Path, "/write") {
			continue
		}
		if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
			t.Fatalf("a write was refused (%d) at %s: the handover was not clean", r.Status, r.Time)
		}
		if at, ok := revokedAt[r.AuthID]; ok && r.Status == http.StatusNoContent && r.Time.After(at) {
			t.Fatalf("write by %s stored after its revocation", r.AuthID)
		}
	}
	if got := maxField(srv, "auth_failures"); got != 0 {
		t.Fatalf("auth_failures reached %d, want 0", got)
	}
	for _, p := range srv.Points() {
		if p.Measurement == "internal_token_rotation" && p.Tags["output"] != "influxdb_v2_rotating" {
			t.Fatalf("internal_token_rotation point with tags %v, want output=influxdb_v2_rotating", p.Tags)
		}
	}
	if got := maxField(srv, "rotation_failures"); got != 0 {
		t.Fatalf("rotation_failures reached %d, want 0", got)
	}
	checkOutputHasNoToken(t, tg.Output(), tokens...)
}

func TestE2EInvalidTokenFileWhileRunning(t *testing.T) {
	bin := realtools.PluginTelegraf(t)
	srv := influxv2.NewTest(t, influxv2.Options{})
	srv.CreateBucket("acme", "telegraf")
	px := newRecordingProxy(t, srv.URL())
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	data := filepath.Join(dir, "mock.out")

	active := srv.WriteAuthorization("acme", "telegraf")
	publishSecret(t, secret, active.Token)
	tg := realtools.StartTelegraf(t, e2eConfig{url: px.URL, tokenFile: filepath.Join(secret, "token"), dataFile: data, internal: true}.String(),
		realtools.WithTelegrafBinary(bin))
	wait.For(t, 30*time.Second, "the first write", wroteWith(srv, active.ID))

	// Garbage: two lines of text.
	publishSecret(t, secret, "this is not\na token\n")
	wait.For(t, 20*time.Second, "source_errors >= 1", func() bool { return maxField(srv, "source_errors") >= 1 })
	// Empty.
	publishSecret(t, secret, "")
	wait.For(t, 20*time.Second, "source_errors >= 2", func() bool { return maxField(srv, "source_errors") >= 2 })
	// A revoked token: well-formed, but the server refuses it.
	revoked := srv.WriteAuthorization("acme", "telegraf")
	if err := srv.DeleteAuthorization(revoked.ID); err != nil {
		t.Fatal(err)
	}
	publishSecret(t, secret, revoked.Token)
	wait.For(t, 20*time.Second, "rotation_failures >= 1", func() bool { return maxField(srv, "rotation_failures") >= 1 })
	// Writes went on with the active token meanwhile.
	before := len(srv.PointsBy(active.ID))
	wait.For(t, 20*time.Second, "more writes with the active token", func() bool { return len(srv.PointsBy(active.ID)) > before })

	if err := tg.Stop(); err != nil {
		t.Fatalf("stopping Telegraf: %v", err)
	}
	checkEveryPointStored(t, producedPoints(t, data), srv)
	if n := px.writesWith(revoked.Token); n != 0 {
		t.Fatalf("%d writes sent with the revoked token; only probes may carry it", n)
	}
	var probes int
	for _, r := range px.requests() {
		if r.fingerprint == rotation.Fingerprint(revoked.Token) {
			probes++
		}
	}
	if probes == 0 {
		t.Fatal("the revoked token was never probed: the test did not exercise validation")
	}
	t.Logf("revoked token: %d probe(s), 0 writes", probes)
	if got := maxField(srv, "auth_failures"); got != 0 {
		t.Fatalf("auth_failures reached %d: a write was refused", got)
	}
	for _, p := range srv.Points() {
		if p.AuthID != active.ID {
			t.Fatalf("point %s written by %q, want the active token's %s", p.Line, p.AuthID, active.ID)
		}
	}
	checkOutputHasNoToken(t, tg.Output(), active.Token, revoked.Token)
}

// Why this matters (1): a token file ending in a newline made stock Telegraf
// 1.37.2 send an invalid header and store nothing.
func TestE2ETokenFileEndingInNewline(t *testing.T) {
	bin := realtools.PluginTelegraf(t)
	srv := influxv2.NewTest(t, influxv2.Options{})
	srv.CreateBucket("acme", "telegraf")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	data := filepath.Join(dir, "mock.out")
	a := srv.WriteAuthorization("acme", "telegraf")
	if err := os.WriteFile(tokenFile, []byte(a.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tg := realtools.StartTelegraf(t, e2eConfig{url: srv.URL(), tokenFile: tokenFile, dataFile: data}.String(), realtools.WithTelegrafBinary(bin))
	wait.For(t, 30*time.Second, "at least 10 points stored", func() bool { return len(srv.PointsBy(a.ID)) >= 10 })
	if err := tg.Stop(); err != nil {
		t.Fatalf("stopping Telegraf: %v", err)
	}
	checkEveryPointStored(t, producedPoints(t, data), srv)
	checkOutputHasNoToken(t, tg.Output(), a.Token)
}

// Why this matters (2): an invalid token published for 2 s at each
// rotation, with a 5-metric buffer, lost points with stock Telegraf. Ours
// never sends the invalid token in a write and loses nothing.
func TestE2EInvalidTokenPublishedAtEachRotation(t *testing.T) {
	bin := realtools.PluginTelegraf(t)
	srv := influxv2.NewTest(t, influxv2.Options{})
	srv.CreateBucket("acme", "telegraf")
	px := newRecordingProxy(t, srv.URL())
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	data := filepath.Join(dir, "mock.out")

	current := srv.WriteAuthorization("acme", "telegraf")
	tokens := []string{current.Token}
	publishSecret(t, secret, current.Token)
	cfg := e2eConfig{url: px.URL, tokenFile: filepath.Join(secret, "token"), dataFile: data,
		bufferLimit: 5, batchSize: 5, interval: "250ms", flush: "500ms"}
	tg := realtools.StartTelegraf(t, cfg.String(), realtools.WithTelegrafBinary(bin))
	wait.For(t, 30*time.Second, "the first write", wroteWith(srv, current.ID))

	var invalid []string
	for i := range 3 {
		bad := "invalid-" + realtools.RandomSecret()
		invalid = append(invalid, bad)
		publishSecret(t, secret, bad)
		time.Sleep(2 * time.Second) // the scenario: the invalid token stays published for 2 s
		next := srv.WriteAuthorization("acme", "telegraf")
		tokens = append(tokens, next.Token)
		publishSecret(t, secret, next.Token)
		wait.For(t, 20*time.Second, fmt.Sprintf("rotation %d to be adopted", i+1), wroteWith(srv, next.ID))
		if err := srv.DeleteAuthorization(current.ID); err != nil {
			t.Fatal(err)
		}
		current = next
	}
	if err := tg.Stop(); err != nil {
		t.Fatalf("stopping Telegraf: %v", err)
	}
	checkEveryPointStored(t, producedPoints(t, data), srv)
	for _, bad := range invalid {
		if n := px.writesWith(bad); n != 0 {
			t.Fatalf("%d writes sent with an invalid token", n)
		}
	}
	for _, r := range px.requests() {
		if r.bodyLen > 0 && (r.status == http.StatusUnauthorized || r.status == http.StatusForbidden) {
			t.Fatalf("a write was refused (%d)", r.status)
		}
	}
	checkOutputHasNoToken(t, tg.Output(), append(tokens, invalid...)...)
}

// The stock sample configuration, renamed, against a real InfluxDB 1.8,
// including a rotation done the 1.8 way: a new user, then the old dropped.
func TestE2EStockConfigAgainstInfluxDB18(t *testing.T) {
	bin := realtools.PluginTelegraf(t)
	d := realtools.StartInfluxd(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	data := filepath.Join(dir, "mock.out")

	pw1, pw2 := realtools.RandomSecret(), realtools.RandomSecret()
	if err := d.CreateUser("writer1", pw1, d.DB); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(realtools.V1Token("writer1", pw1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	stock := stockSampleConfig(t)
	out := strings.Replace(stock, "[[outputs.influxdb_v2]]", "[[outputs.influxdb_v2_rotating]]", 1)
	out = strings.Replace(out, `urls = ["http://127.0.0.1:8086"]`, fmt.Sprintf("urls = [%q]", d.URL), 1)
	out = strings.Replace(out, `token = ""`, fmt.Sprintf("token_file = %q\n  token_debounce = \"50ms\"", tokenFile), 1)
	out = strings.Replace(out, `bucket = ""`, fmt.Sprintf("bucket = %q", d.DB), 1)
	cfg := e2eConfig{dataFile: data, internal: true, output: out}
	tg := realtools.StartTelegraf(t, cfg.String(), realtools.WithTelegrafBinary(bin))

	count := func(q string) int64 {
		n, err := d.Count(q)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	wait.For(t, 30*time.Second, "points in influxd", func() bool { return count(`SELECT count("constant") FROM "mock"`) > 0 })

	if err := d.CreateUser("writer2", pw2, d.DB); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile+".tmp", []byte(realtools.V1Token("writer2", pw2)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tokenFile+".tmp", tokenFile); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "the rotation to be reported", func() bool {
		return count(`SELECT max("rotations") FROM "internal_token_rotation"`) >= 1
	})
	if err := d.DropUser("writer1"); err != nil {
		t.Fatal(err)
	}
	after := count(`SELECT count("constant") FROM "mock"`)
	wait.For(t, 30*time.Second, "writes after the old user was dropped", func() bool {
		return count(`SELECT count("constant") FROM "mock"`) >= after+5
	})
	if err := tg.Stop(); err != nil {
		t.Fatalf("stopping Telegraf: %v", err)
	}
	produced := len(producedPoints(t, data))
	if got := count(`SELECT count("constant") FROM "mock"`); got != int64(produced) {
		t.Fatalf("influxd holds %d mock points, Telegraf produced %d", got, produced)
	}
	if got := count(`SELECT max("auth_failures") FROM "internal_token_rotation"`); got != 0 {
		t.Fatalf("auth_failures reached %d", got)
	}
	checkOutputHasNoToken(t, tg.Output(), realtools.V1Token("writer1", pw1), realtools.V1Token("writer2", pw2))
}

// Telegraf's own `config check` and `--test` accept the sample configuration.
func TestE2EConfigCheckAndTestAcceptTheSample(t *testing.T) {
	bin := realtools.PluginTelegraf(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "telegraf.conf")
	text := sampleConfig + "\n[[inputs.mock]]\n  metric_name = \"mock\"\n  [[inputs.mock.constant]]\n    name = \"c\"\n    value = 1\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"config", "check", "--config", conf}, {"--config", conf, "--test"}} {
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("telegraf %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// And config check rejects what Init rejects, naming the option.
	bad := strings.Replace(text, "# strict = false", "strict = true", 1)
	if err := os.WriteFile(conf, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "config", "check", "--config", conf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `token_file "/etc/telegraf/influxdb-token"`) {
		t.Fatalf("config check with a missing token_file in strict mode: %v\n%s", err, out)
	}
}
