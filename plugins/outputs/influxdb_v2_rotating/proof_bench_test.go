package influxdb_v2_rotating

// Benchmarks that compare this plugin with Telegraf's stock
// outputs.influxdb_v2 in one process against one loopback sink, and measure
// what rotation costs. docs/benchmarks.md holds the results and the commands.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	stock "github.com/influxdata/telegraf/plugins/outputs/influxdb_v2"
	"github.com/influxdata/telegraf/plugins/serializers/influx"
	"github.com/klauspost/compress/gzip"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/sink"
)

// proofToken is the benchmark's token: the sink checks none.
const proofToken = "proof-benchmark-token-0123456789abcdefghijklmnopqrstuvwxyz"

var proofBatches = []int{1, 100, 1000, 10000}

// proofMetrics returns n realistic metrics: 4 tags and 5 fields of mixed
// types (float, int, uint, string, bool), distinct series and timestamps,
// like a host's system metrics.
func proofMetrics(n int) []telegraf.Metric {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]telegraf.Metric, n)
	for i := range out {
		out[i] = metric.New("system",
			map[string]string{
				"host":   "web-" + strconv.Itoa(i%50) + ".eu-west-1.example.com",
				"region": "eu-west-1",
				"env":    "production",
				"rack":   "r" + strconv.Itoa(i%12),
			},
			map[string]any{
				"load1":     float64(i%400) / 100,
				"processes": int64(200 + i%97),
				"uptime":    uint64(1_000_000 + i),
				"status":    "ok",
				"healthy":   i%13 != 0,
			},
			base.Add(time.Duration(i)*time.Millisecond))
	}
	return out
}

// serialised is what both plugins put on the wire for ms.
func serialised(tb testing.TB, ms []telegraf.Metric) []byte {
	s := &influx.Serializer{}
	if err := s.Init(); err != nil {
		tb.Fatal(err)
	}
	b, err := s.SerializeBatch(ms)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// writer is one contender: write posts one batch and reports success.
type writer interface {
	write(ms []telegraf.Metric) error
	close()
}

type oursWriter struct{ p *InfluxDB }

func (w oursWriter) write(ms []telegraf.Metric) error { return w.p.Write(ms) }
func (w oursWriter) close()                           { _ = w.p.Close() }

func newOurs(tb testing.TB, url string, gz bool, mutate func(*InfluxDB)) *InfluxDB {
	tb.Helper()
	p := New()
	p.URLs = []string{url}
	p.Organization = "acme"
	p.Bucket = "telegraf"
	p.Token = config.NewSecret([]byte(proofToken))
	p.ContentEncoding = map[bool]string{true: "gzip", false: "identity"}[gz]
	p.Probe = ProbeNone
	if mutate != nil {
		mutate(p)
	}
	if err := p.Init(); err != nil {
		tb.Fatalf("Init: %v", err)
	}
	if err := p.Connect(); err != nil {
		tb.Fatalf("Connect: %v", err)
	}
	return p
}

type stockWriter struct{ p *stock.InfluxDB }

func (w stockWriter) write(ms []telegraf.Metric) error { return w.p.Write(ms) }
func (w stockWriter) close()                           { _ = w.p.Close() }

func newStock(tb testing.TB, url string, gz bool) *stock.InfluxDB {
	tb.Helper()
	p := &stock.InfluxDB{
		URLs:            []string{url},
		Organization:    "acme",
		Bucket:          "telegraf",
		Token:           config.NewSecret([]byte(proofToken)),
		Timeout:         config.Duration(5 * time.Second),
		ContentEncoding: map[bool]string{true: "gzip", false: "identity"}[gz],
		Log:             discardLogger{},
	}
	if err := p.Init(); err != nil {
		tb.Fatalf("stock Init: %v", err)
	}
	if err := p.Connect(); err != nil {
		tb.Fatalf("stock Connect: %v", err)
	}
	return p
}

// rawWriter is the limit: the batch's bytes serialised once, before the
// benchmark, posted with a plain client (gzipped per request when on).
type rawWriter struct {
	url    string
	client *http.Client
	body   []byte
	gz     *gzip.Writer
	out    bytes.Buffer
}

func (w *rawWriter) write([]telegraf.Metric) error {
	payload := w.body
	if w.gz != nil {
		w.out.Reset()
		w.gz.Reset(&w.out)
		if _, err := w.gz.Write(w.body); err != nil {
			return err
		}
		if err := w.gz.Close(); err != nil {
			return err
		}
		payload = w.out.Bytes()
	}
	req, err := http.NewRequest(http.MethodPost, w.url, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Token "+proofToken)
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if w.gz != nil {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
func (w *rawWriter) close() { w.client.CloseIdleConnections() }

func newRaw(tb testing.TB, url string, gz bool, ms []telegraf.Metric) *rawWriter {
	w := &rawWriter{
		url:    url + "/api/v2/write?bucket=telegraf&org=acme",
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		body:   serialised(tb, ms),
	}
	if gz {
		w.gz, _ = gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	}
	return w
}

// measure runs write b.N times with batch ms and reports metrics/s,
// ns/metric, B/metric and allocs/metric; it fails when the sink did not
// count every line, so a writer that silently drops cannot look fast.
func measure(b *testing.B, s *sink.Sink, w writer, ms []telegraf.Metric) {
	b.Helper()
	defer w.close()
	if err := w.write(ms); err != nil { // warm the connection and pools
		b.Fatalf("warm-up write: %v", err)
	}
	s.Reset()
	var before, after runtime.MemStats
	b.ReportAllocs()
	b.ResetTimer()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range b.N {
		if err := w.write(ms); err != nil {
			b.Fatalf("write: %v", err)
		}
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	b.StopTimer()
	total := float64(b.N * len(ms))
	if got := s.Lines(); got != int64(total) {
		b.Fatalf("sink counted %d lines, want %d", got, int64(total))
	}
	b.ReportMetric(total/elapsed.Seconds(), "metrics/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/total, "ns/metric")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "B/metric")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/metric")
}

// BenchmarkProofWrite is the side-by-side comparison. Sub-benchmark names
// put the writer last so that benchstat can pivot on it:
//
//	benchstat -col /writer file
func BenchmarkProofWrite(b *testing.B) {
	for _, gz := range []bool{false, true} {
		for _, n := range proofBatches {
			ms := proofMetrics(n)
			name := fmt.Sprintf("gzip=%s/batch=%d", map[bool]string{true: "on", false: "off"}[gz], n)
			b.Run(name+"/writer=stock", func(b *testing.B) {
				s := sink.NewTest(b)
				measure(b, s, stockWriter{newStock(b, s.URL(), gz)}, ms)
			})
			b.Run(name+"/writer=ours", func(b *testing.B) {
				s := sink.NewTest(b)
				measure(b, s, oursWriter{newOurs(b, s.URL(), gz, nil)}, ms)
			})
			b.Run(name+"/writer=raw", func(b *testing.B) {
				s := sink.NewTest(b)
				measure(b, s, newRaw(b, s.URL(), gz, ms), ms)
			})
		}
	}
}

// BenchmarkProofRotatingWrite is the hot path while the token changes
// every 10 ms (each change watched, probed against the sink and promoted,
// which also closes idle connections) against a static token file. Two
// more modes attribute the difference: the same rotations without the
// probe, and a static token whose idle connections are closed every 10 ms
// as a promotion does.
func BenchmarkProofRotatingWrite(b *testing.B) {
	ms := proofMetrics(1000)
	for _, mode := range []string{"static", "rotating-10ms", "rotating-10ms-noprobe", "static-reconnect-10ms"} {
		b.Run("token="+mode, func(b *testing.B) {
			s := sink.NewTest(b)
			dir := b.TempDir()
			path := filepath.Join(dir, "token")
			publish := func(tok string) {
				tmp := path + ".tmp"
				if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
					b.Fatal(err)
				}
				if err := os.Rename(tmp, path); err != nil {
					b.Fatal(err)
				}
			}
			publish(proofToken + "-0")
			p := newOurs(b, s.URL(), false, func(p *InfluxDB) {
				p.Token = config.Secret{}
				p.TokenFile = path
				p.Probe = ProbeEmptyWrite
				if mode == "rotating-10ms-noprobe" {
					p.Probe = ProbeNone
				}
				p.TokenDebounce = config.Duration(time.Millisecond)
			})
			var stop chan struct{}
			var wg sync.WaitGroup
			var published atomic.Int64
			if mode != "static" {
				stop = make(chan struct{})
				wg.Add(1)
				go func() {
					defer wg.Done()
					tick := time.NewTicker(10 * time.Millisecond)
					defer tick.Stop()
					for i := 1; ; i++ {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
						if mode == "static-reconnect-10ms" {
							p.closeIdleConnections()
							continue
						}
						publish(proofToken + "-" + strconv.Itoa(i))
						published.Add(1)
					}
				}()
			}
			rot0 := p.stats.Rotations.Load()
			start := time.Now()
			measure(b, s, oursWriter{p}, ms)
			elapsed := time.Since(start)
			if stop != nil {
				close(stop)
				wg.Wait()
			}
			if published.Load() > 0 {
				rotations := p.stats.Rotations.Load() - rot0
				b.ReportMetric(float64(rotations)/elapsed.Seconds(), "rotations/s")
				if published.Load() > 20 && rotations == 0 {
					b.Fatalf("%d tokens published, none promoted: the benchmark measured no rotation", published.Load())
				}
			}
		})
	}
}

// BenchmarkProofRotationLatency measures token file change → read after
// the debounce → probed against a 2.x server → promoted by the next
// Current (the start of a flush), one change per iteration; run it with
// -benchtime=1000x for the documented median and p99. It runs with a 10 ms
// debounce and with the default 100 ms. It also measures the probe round
// trip (an empty write), the floor of the latency.
func BenchmarkProofRotationLatency(b *testing.B) {
	for _, d := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond} {
		b.Run("debounce="+d.String(), func(b *testing.B) { rotationLatency(b, d) })
	}
}

func rotationLatency(b *testing.B, debounce time.Duration) {
	srv, err := influxv2.New(influxv2.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	srv.CreateBucket("acme", "telegraf")
	toks := make([]string, b.N+1)
	for i := range toks {
		toks[i] = srv.WriteAuthorization("acme", "telegraf").Token
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "token")
	publish := func(tok string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(tok), 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
	}
	publish(toks[0])
	p := newOurs(b, srv.URL(), false, func(p *InfluxDB) {
		p.Token = config.Secret{}
		p.TokenFile = path
		p.Probe = ProbeEmptyWrite
		p.TokenDebounce = config.Duration(debounce)
	})
	defer p.Close()

	rtt := probeRTT(b, srv.URL(), toks[0])
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		want := rotation.Fingerprint(toks[i])
		start := time.Now()
		publish(toks[i])
		deadline := start.Add(10 * time.Second)
		for {
			if c := p.Rotator().Current(); c != nil && c.Fingerprint() == want {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("change %d not promoted within 10s", i)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(ms(rtt), "probe-rtt-ms")
	b.ReportMetric(ms(rtt+debounce+50*time.Millisecond), "target-p99-ms")
}

// probeRTT is the median of 50 empty writes, what one probe costs.
func probeRTT(b *testing.B, url, tok string) time.Duration {
	client := &http.Client{Timeout: 5 * time.Second}
	var d []time.Duration
	for range 50 {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost,
			url+"/api/v2/write?org=acme&bucket=telegraf", http.NoBody)
		req.Header.Set("Authorization", "Token "+tok)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	return d[len(d)/2]
}
