package influxdb_v2_rotating

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	stock "github.com/influxdata/telegraf/plugins/outputs/influxdb_v2"
	"github.com/influxdata/telegraf/testutil"
	"github.com/influxrotate/influxrotate/internal/lineproto"
)

// The benchmarks compare this plugin with Telegraf's stock influxdb_v2 on
// the same batches against a server that reads and discards the body, so
// they measure the client side: serialisation, compression, the request.

func benchServer(b *testing.B) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

func benchMetrics(n int) []telegraf.Metric {
	out := make([]telegraf.Metric, n)
	base := time.Unix(1_700_000_000, 0)
	for i := range out {
		out[i] = metric.New("cpu",
			map[string]string{"host": "server-01.example.com", "cpu": "cpu0", "region": "eu-west-1"},
			map[string]any{"usage_user": 12.5 + float64(i), "usage_system": 3.25, "usage_idle": 84.25, "count": int64(i), "ok": true},
			base.Add(time.Duration(i)*time.Millisecond))
	}
	return out
}

func benchWrite(b *testing.B, out telegraf.Output, ms []telegraf.Metric) {
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := out.Write(ms); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(ms)*b.N)/b.Elapsed().Seconds(), "metrics/s")
}

func BenchmarkWrite(b *testing.B) {
	url := benchServer(b)
	ms := benchMetrics(1000)
	for _, enc := range []string{"identity", "gzip"} {
		b.Run("stock/"+enc, func(b *testing.B) {
			p := &stock.InfluxDB{URLs: []string{url}, Token: config.NewSecret([]byte("tok")), Organization: "o", Bucket: "b",
				Timeout: config.Duration(5 * time.Second), ContentEncoding: enc, Log: testutil.Logger{Quiet: true}}
			if err := p.Init(); err != nil {
				b.Fatal(err)
			}
			if err := p.Connect(); err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			benchWrite(b, p, ms)
		})
		b.Run("rotating/"+enc, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "token")
			if err := os.WriteFile(path, []byte("tok"), 0o600); err != nil {
				b.Fatal(err)
			}
			p := New()
			p.URLs, p.TokenFile, p.Organization, p.Bucket, p.ContentEncoding, p.Probe = []string{url}, path, "o", "b", enc, ProbeNone
			if err := p.Init(); err != nil {
				b.Fatal(err)
			}
			if err := p.Connect(); err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			benchWrite(b, p, ms)
		})
	}
}

// BenchmarkSerialize isolates serialisation (no HTTP) on the realistic
// metrics of the ProofWrite benchmarks.
func BenchmarkSerialize(b *testing.B) {
	ms := proofMetrics(1000)
	s := lineproto.NewSerializer(lineproto.Options{})
	buf := make([]byte, 0, 256*len(ms))
	b.ReportAllocs()
	for b.Loop() {
		var ts lineproto.TimeCache // one per batch, as serialize has
		buf = buf[:0]
		for _, m := range ms {
			var err error
			if buf, err = s.Append(buf, m, &ts); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ms)), "ns/metric")
}
