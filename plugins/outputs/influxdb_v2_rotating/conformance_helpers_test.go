package influxdb_v2_rotating

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	stockplugin "github.com/influxdata/telegraf/plugins/outputs/influxdb_v2"
	"github.com/influxdata/telegraf/plugins/secretstores"
	"github.com/influxdata/telegraf/testutil"
)

// The conformance suite's machinery: a recording server, a secret store,
// and a runner that loads one configuration into Telegraf's config loader
// for the stock plugin or ours, drives the resulting RunningOutput, and
// returns what an operator could observe.

// answer is what the recording server replies to one request.
type answer struct {
	status int
	header map[string]string
	body   string
	// hang holds the answer until the client gives up (its timeout).
	hang bool
}

// wireRequest is one request as the server saw it. Authorization is
// compared through a hash, so that no token is printed; a gzip body is decoded, because two gzip encoders may produce different
// bytes for the same content, and its Content-Length is dropped with it.
type wireRequest struct {
	Method, Host, Path, Query string
	Header                    []string
	Body                      string
}

func (r wireRequest) String() string {
	return fmt.Sprintf("%s %s %s?%s\n    %s\n    body %q", r.Method, r.Host, r.Path, r.Query, strings.Join(r.Header, "\n    "), r.Body)
}

// recorder is a loopback HTTP server (TCP, TLS or a unix socket) that
// records every request and answers through the scenario's function.
type recorder struct {
	url  string
	host string // host:port of url
	// cert is the TLS server's certificate and key (nil without TLS).
	cert   *tls.Certificate
	answer func(r *http.Request, body string) answer

	mu   sync.Mutex
	reqs []wireRequest
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	body := raw
	var header []string
	gz := r.Header.Get("Content-Encoding") == "gzip"
	if gz {
		if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
			body, _ = io.ReadAll(zr)
		}
	}
	for name, values := range r.Header {
		if name == "Authorization" {
			// Compared, never shown: a fingerprint of the value.
			sum := sha256.Sum256([]byte(strings.Join(values, ", ")))
			header = append(header, fmt.Sprintf("Authorization: <sha256 %x>", sum[:6]))
			continue
		}
		if gz && name == "Content-Length" {
			continue
		}
		header = append(header, name+": "+strings.Join(values, ", "))
	}
	switch {
	case len(r.TransferEncoding) > 0:
		header = append(header, "(transfer-encoding: "+strings.Join(r.TransferEncoding, ",")+")")
	case !gz:
		header = append(header, fmt.Sprintf("(content-length: %d)", r.ContentLength))
	}
	sort.Strings(header)
	host := r.Host
	if host == rec.host {
		host = "<server>" // the port differs between the two runs
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, wireRequest{Method: r.Method, Host: host, Path: r.URL.Path, Query: r.URL.RawQuery, Header: header, Body: string(body)})
	rec.mu.Unlock()

	a := answer{status: http.StatusNoContent}
	if rec.answer != nil {
		a = rec.answer(r, string(body))
	}
	if a.hang {
		<-r.Context().Done()
		return
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

// requests returns the recorded requests in a canonical order: concurrent
// writes and bucket routing send in no defined order in either plugin.
func (rec *recorder) requests() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := make([]string, 0, len(rec.reqs))
	for _, r := range rec.reqs {
		out = append(out, r.String())
	}
	sort.Strings(out)
	return out
}

type serverKind int

const (
	serveHTTP serverKind = iota
	serveTLS
	serveUnix
)

func newRecorder(t *testing.T, kind serverKind, answerFn func(*http.Request, string) answer) *recorder {
	t.Helper()
	rec := &recorder{answer: answerFn}
	switch kind {
	case serveUnix:
		// Socket paths are limited to about 100 bytes: t.TempDir may be longer.
		dir, err := os.MkdirTemp("", "conf")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		sock := filepath.Join(dir, "influx.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(rec)
		srv.Listener = l
		srv.Start()
		t.Cleanup(srv.Close)
		rec.url = "unix://" + sock
	case serveTLS:
		srv := httptest.NewTLSServer(rec)
		t.Cleanup(srv.Close)
		rec.url = srv.URL
		rec.cert = &srv.TLS.Certificates[0]
	default:
		srv := httptest.NewServer(rec)
		t.Cleanup(srv.Close)
		rec.url = srv.URL
	}
	rec.host = strings.TrimPrefix(strings.TrimPrefix(rec.url, "http://"), "https://")
	return rec
}

// closedURL is the address of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}

// conformanceTokens are the tokens the scenarios use, which nothing of
// ours may show.
var conformanceTokens = []string{"conformance-token", conformanceSecrets["token"]}

// conformanceSecrets is the content of the "conformance" secret store.
var conformanceSecrets = map[string]string{
	"token":  "conformance-secret-token",
	"header": "from-the-secret-store",
}

// memorySecretStore is a secret store holding conformanceSecrets. Its
// resolvers are static: Telegraf keeps every secret it ever loaded in a
// process-wide list that each LinkSecrets walks again, and a dynamic secret
// of one scenario would fail the linking of every later one.
type memorySecretStore struct{}

func (memorySecretStore) SampleConfig() string { return "" }
func (memorySecretStore) Init() error          { return nil }
func (memorySecretStore) Get(key string) ([]byte, error) {
	v, ok := conformanceSecrets[key]
	if !ok {
		return nil, fmt.Errorf("no secret %q", key)
	}
	return []byte(v), nil
}
func (memorySecretStore) Set(string, string) error { return fmt.Errorf("read-only") }
func (memorySecretStore) List() ([]string, error) {
	var keys []string
	for k := range conformanceSecrets {
		keys = append(keys, k)
	}
	return keys, nil
}
func (s memorySecretStore) GetResolver(key string) (telegraf.ResolveFunc, error) {
	return func() ([]byte, bool, error) {
		v, err := s.Get(key)
		return v, false, err
	}, nil
}

func init() {
	secretstores.Add("conformance", func(string) telegraf.SecretStore { return &memorySecretStore{} })
}

// observed is everything the suite compares between the two plugins.
type observed struct {
	aspects map[string]string
	// requests are the wire aspect's requests, one string each.
	requests []string
	// logs are the log aspect's lines.
	logs []string
}

const (
	aspectInit    = "init"    // the error of Init
	aspectConnect = "connect" // the error of Connect
	aspectWrite   = "write"   // the error of each flush, as the agent logs it
	aspectWire    = "wire"    // the requests the server received
	aspectMetrics = "metrics" // which metrics were accepted, rejected or kept
	aspectLog     = "log"     // the plugin's log lines
)

var aspects = []string{aspectInit, aspectConnect, aspectWrite, aspectWire, aspectMetrics, aspectLog}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// runScenario loads the scenario's configuration for plugin (the stock
// "influxdb_v2" or ours), runs it in a RunningOutput as the agent does
// (Init, Connect, then one Write per flush) and returns what it observed.
func runScenario(t *testing.T, sc conformanceScenario, plugin string) (obs observed) {
	t.Helper()
	rec := newRecorder(t, sc.server, sc.answer)
	obs.aspects = make(map[string]string)

	var b strings.Builder
	b.WriteString("[agent]\n  omit_hostname = true\n")
	// Every configuration has the store: Telegraf links secrets through a
	// process-wide list, and a secret a plugin copies after linking would
	// otherwise be linked by the next scenario's loader, without the store.
	b.WriteString("[[secretstores.conformance]]\n  id = \"conformance\"\n")
	fmt.Fprintf(&b, "[[outputs.%s]]\n", plugin)
	urls := []string{rec.url}
	if sc.urls != nil {
		urls = sc.urls(t, rec)
	}
	fmt.Fprintf(&b, "  urls = [%s]\n", quoteAll(urls))
	options := sc.options
	if plugin == ourName && sc.ours != "" {
		options = sc.ours
	}
	if !strings.Contains(options, "token") {
		b.WriteString("  token = \"conformance-token\"\n")
	}
	if !strings.Contains(options, "organization") {
		b.WriteString("  organization = \"my_org\"\n")
	}
	if !strings.Contains(options, "bucket =") {
		b.WriteString("  bucket = \"my_bucket\"\n")
	}
	// $TEMP/token is a token file holding the default token; $PROXY is
	// the recording server as a forward proxy.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("conformance-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rec.cert != nil {
		// $TLS.pem is the server's certificate, a CA the client may trust,
		// and with $TLS.key a client certificate it may present.
		key, err := x509.MarshalPKCS8PrivateKey(rec.cert.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		for name, block := range map[string]*pem.Block{
			"tls.pem": {Type: "CERTIFICATE", Bytes: rec.cert.Certificate[0]},
			"tls.key": {Type: "PRIVATE KEY", Bytes: key},
		} {
			if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	options = strings.ReplaceAll(options, "$TLS", filepath.Join(dir, "tls"))
	options = strings.ReplaceAll(options, "$TEMP", dir)
	options = strings.ReplaceAll(options, "$PROXY", rec.url)
	b.WriteString(options)
	b.WriteString("\n")

	c := config.NewConfig()
	if err := c.LoadConfigData([]byte(b.String()), config.EmptySourcePath); err != nil {
		// The loader names the plugin, which is all that differs there.
		obs.aspects[aspectInit] = loadFailure + strings.ReplaceAll(err.Error(), plugin, "<plugin>")
		return obs
	}
	if err := c.LinkSecrets(); err != nil {
		t.Fatalf("linking secrets: %v", err)
	}
	if len(c.Outputs) != 1 {
		t.Fatalf("%d outputs loaded", len(c.Outputs))
	}
	ro := c.Outputs[0]
	capture := &testutil.CaptureLogger{Name: "outputs." + plugin}
	switch p := ro.Output.(type) {
	case *stockplugin.InfluxDB:
		p.Log = capture
	case *InfluxDB:
		p.Log = capture
	default:
		t.Fatalf("unexpected plugin %T", p)
	}
	defer func() {
		obs.logs = logLines(capture)
		obs.requests = rec.requests()
		// Each run has its own server ports: name them alike.
		for _, u := range append(urls, rec.url) {
			if parsed, err := url.Parse(u); err == nil && parsed.Host != "" {
				for aspect, text := range obs.aspects {
					obs.aspects[aspect] = strings.ReplaceAll(text, parsed.Host, "<server>")
				}
				for i := range obs.logs {
					obs.logs[i] = strings.ReplaceAll(obs.logs[i], parsed.Host, "<server>")
				}
			}
		}
		obs.aspects[aspectLog] = strings.Join(obs.logs, "\n")
		obs.aspects[aspectWire] = strings.Join(obs.requests, "\n")
	}()

	initErr := ro.Init()
	obs.aspects[aspectInit] = errText(initErr)
	if initErr != nil {
		return obs
	}
	connectErr := ro.Connect()
	obs.aspects[aspectConnect] = errText(connectErr)
	if connectErr != nil {
		return obs
	}
	defer ro.Close()

	status := make(map[telegraf.TrackingID]*string)
	var order []*string
	var mu sync.Mutex
	notify := func(di telegraf.DeliveryInfo) {
		mu.Lock()
		defer mu.Unlock()
		if di.Delivered() {
			*status[di.ID()] = "accepted"
		} else {
			*status[di.ID()] = "rejected"
		}
	}
	ms := sc.metrics()
	for _, m := range ms {
		tm, id := metric.WithTracking(m, notify)
		s := "kept"
		mu.Lock()
		status[id] = &s
		order = append(order, &s)
		mu.Unlock()
		ro.AddMetricNoCopy(tm)
	}
	var writes []string
	for range max(sc.flushes, 1) {
		err := ro.Write()
		writes = append(writes, errText(err)+errKinds(err))
	}
	obs.aspects[aspectWrite] = strings.Join(writes, "\n")
	mu.Lock()
	var states []string
	for i, s := range order {
		states = append(states, fmt.Sprintf("%d:%s", i, *s))
	}
	mu.Unlock()
	obs.aspects[aspectMetrics] = fmt.Sprintf("%s (buffer %d)", strings.Join(states, " "), ro.BufferLength())
	return obs
}

// loadFailure starts the init aspect of a configuration Telegraf refused.
const loadFailure = "loading the configuration: "

// errKinds names what the agent and other code can test an error for
// beyond its text: a partial write (Telegraf's internal.PartialWriteError,
// which ours answers through As), and Telegraf's own error values.
func errKinds(err error) string {
	var kinds []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ours := e.(*batchError); ours || reflect.TypeOf(e).String() == "*internal.PartialWriteError" {
			kinds = append(kinds, "partial write")
			break
		}
	}
	if errors.Is(err, errSizeLimitReached) {
		kinds = append(kinds, "is ErrSizeLimitReached")
	}
	if errors.Is(err, errSerialization) {
		kinds = append(kinds, "is ErrSerialization")
	}
	if len(kinds) == 0 {
		return ""
	}
	return " [" + strings.Join(kinds, ", ") + "]"
}

// ourName is our plugin's registry name.
const ourName = "influxdb_v2_rotating"

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// logLines returns the captured lines without the logger's name, sorted
// (concurrent writes log in no defined order).
func logLines(l *testutil.CaptureLogger) []string {
	var out []string
	for _, e := range l.Messages() {
		out = append(out, fmt.Sprintf("%c! %s", e.Level, e.Text))
	}
	slices.Sort(out)
	return out
}

// cpu returns n metrics "cpu,host=a value=<i>" one second apart, plus the
// tags given.
func cpu(n int, tags map[string]string) []telegraf.Metric {
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	out := make([]telegraf.Metric, 0, n)
	for i := range n {
		t := map[string]string{"host": "a"}
		for k, v := range tags {
			t[k] = v
		}
		// Fields added one by one: a map would give them a random order.
		m := metric.New("cpu", t, nil, base.Add(time.Duration(i)*time.Second))
		m.AddField("value", float64(i))
		m.AddField("count", uint64(i))
		out = append(out, m)
	}
	return out
}
