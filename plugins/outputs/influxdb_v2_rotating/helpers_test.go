package influxdb_v2_rotating

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/models"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/influxdata/telegraf/testutil"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// env is one test's server, organization, bucket and token file.
type env struct {
	t      *testing.T
	srv    *influxv2.Server
	org    string
	bucket string
	dir    string
	path   string // token file
	log    *testutil.CaptureLogger

	mu     sync.Mutex
	tokens []string // every token the test created, for the leak check
	errs   []string // every error write returned, which the agent would log
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		t:      t,
		srv:    influxv2.NewTest(t, influxv2.Options{}),
		org:    "acme",
		bucket: "telegraf",
		dir:    t.TempDir(),
		log:    &testutil.CaptureLogger{Name: "outputs.influxdb_v2_rotating"},
	}
	e.path = filepath.Join(e.dir, "token")
	e.srv.CreateBucket(e.org, e.bucket)
	t.Cleanup(e.checkNoTokenLeak)
	return e
}

// auth creates a write authorization for the test bucket and remembers its
// token for the leak check.
func (e *env) auth() influxv2.Authorization {
	a := e.srv.WriteAuthorization(e.org, e.bucket)
	e.remember(a.Token)
	return a
}

func (e *env) remember(tok string) {
	e.mu.Lock()
	e.tokens = append(e.tokens, tok)
	e.mu.Unlock()
}

// publish replaces the token file atomically, as most writers do.
func (e *env) publish(content string) {
	e.t.Helper()
	tmp := e.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, e.path); err != nil {
		e.t.Fatal(err)
	}
}

// plugin returns a connected plugin writing to the test server with
// token_file, after mutate adjusted its options.
func (e *env) plugin(mutate func(*InfluxDB)) *InfluxDB {
	e.t.Helper()
	p := e.configure(mutate)
	if err := p.Init(); err != nil {
		e.t.Fatalf("Init: %v", err)
	}
	if err := p.Connect(); err != nil {
		e.t.Fatalf("Connect: %v", err)
	}
	e.t.Cleanup(func() {
		if err := p.Close(); err != nil {
			e.t.Errorf("Close: %v", err)
		}
	})
	return p
}

// agent returns the plugin inside the agent's RunningOutput, initialised and
// connected by it, so tests see what the agent does with Write's error.
func (e *env) agent(mutate func(*InfluxDB), batch int) (*InfluxDB, *models.RunningOutput) {
	e.t.Helper()
	p := e.configure(mutate)
	ro := models.NewRunningOutput(p, &models.OutputConfig{Name: "influxdb_v2_rotating", ID: e.t.Name()}, batch, 10000)
	// NewRunningOutput replaced p.Log with the agent's logger; keep it (it
	// is what the plugin and the Rotator log through in an agent) and copy
	// its lines into the capture the leak check scans.
	captureAgentLog(e.t, p, e.log)
	if err := ro.Init(); err != nil {
		e.t.Fatalf("Init: %v", err)
	}
	if err := ro.Connect(); err != nil {
		e.t.Fatalf("Connect: %v", err)
	}
	e.t.Cleanup(ro.Close)
	return p, ro
}

// write is one agent flush. The agent logs the error it returns, so the
// error joins the leak check.
func (e *env) write(ro *models.RunningOutput) error {
	err := ro.Write()
	if err != nil {
		e.mu.Lock()
		e.errs = append(e.errs, err.Error())
		e.mu.Unlock()
	}
	return err
}

// configure returns the plugin with the test's options, neither
// initialised nor connected.
func (e *env) configure(mutate func(*InfluxDB)) *InfluxDB {
	p := New()
	p.URLs = []string{e.srv.URL()}
	p.Organization = e.org
	p.Bucket = e.bucket
	p.TokenFile = e.path
	p.Log = e.log
	p.ContentEncoding = "identity"
	// The tests count the metrics the server stored; adoption reports are
	// turned back on by the tests that are about them.
	p.AdoptionReport = new(bool)
	if mutate != nil {
		mutate(p)
	}
	return p
}

// checkNoTokenLeak fails the test when a token created by it appears in any
// captured log line.
func (e *env) checkNoTokenLeak() {
	for _, leak := range e.tokenLeaks() {
		e.t.Error(leak)
	}
}

// tokenLeaks describes, without the token, every captured log line and
// write error that contains a token created by the test.
func (e *env) tokenLeaks() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	scan := func(what, text string) {
		for _, tok := range e.tokens {
			if tok != "" && strings.Contains(text, tok) {
				out = append(out, fmt.Sprintf("%s contains a token (%s): %s", what, rotation.Fingerprint(tok), rotation.Fingerprint(text)))
			}
		}
	}
	for _, m := range e.log.Messages() {
		scan("log line", m.Text)
	}
	for _, err := range e.errs {
		scan("write error", err)
	}
	return out
}

// waitActive waits until the plugin's next flush would use tok.
func waitActive(t *testing.T, p *InfluxDB, tok string) {
	t.Helper()
	want := rotation.Fingerprint(tok)
	wait.For(t, 10*time.Second, "adoption of token "+want, func() bool {
		c := p.Rotator().Current()
		return c != nil && c.Fingerprint() == want
	})
}

var seq struct {
	sync.Mutex
	n int64
}

// metrics returns n distinct metrics (distinct timestamps) with tags.
func metrics(n int, tags map[string]string) []telegraf.Metric {
	seq.Lock()
	defer seq.Unlock()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]telegraf.Metric, 0, n)
	for range n {
		seq.n++
		t := map[string]string{"host": "a"}
		for k, v := range tags {
			t[k] = v
		}
		out = append(out, metric.New("cpu", t, map[string]any{"value": float64(seq.n), "n": seq.n}, base.Add(time.Duration(seq.n)*time.Millisecond)))
	}
	return out
}

// lines returns the series+timestamp identity of each metric, the key the
// server's Point.Line uses.
func lines(ms []telegraf.Metric) map[string]bool {
	out := make(map[string]bool, len(ms))
	for _, m := range ms {
		var b strings.Builder
		b.WriteString(m.Name())
		for _, tag := range m.TagList() {
			fmt.Fprintf(&b, ",%s=%s", tag.Key, tag.Value)
		}
		fmt.Fprintf(&b, " %d", m.Time().UnixNano())
		out[b.String()] = true
	}
	return out
}

// stored returns the identities of the points the server holds.
func stored(srv *influxv2.Server) map[string]influxv2.Point {
	out := make(map[string]influxv2.Point)
	for _, p := range srv.Points() {
		out[p.Line] = p
	}
	return out
}

func nanValue() float64 { return math.NaN() }

// selfstatMetrics returns the selfstat metrics of one measurement for the
// plugin instance with the given _id.
func selfstatMetrics(t *testing.T, name, id string) []telegraf.Metric {
	t.Helper()
	var out []telegraf.Metric
	for _, m := range selfstat.Metrics() {
		if m.Name() == name && m.Tags()["_id"] == id {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s metric for _id %q", name, id)
	}
	return out
}
