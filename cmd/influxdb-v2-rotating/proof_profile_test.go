package main

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/cli"
	"github.com/influxrotate/influxrotate/testutil/sink"
)

// BenchmarkProofExecdInProcess runs the binary's cli.Main in the test
// process over 200,000 lines, so that -cpuprofile and -memprofile show where
// the pipeline spends its time (the child-process benchmark cannot).
func BenchmarkProofExecdInProcess(b *testing.B) {
	block := proofBlock()
	s := sink.NewTest(b)
	conf := filepath.Join(b.TempDir(), "ours.conf")
	writeConf(b, conf, fmt.Sprintf(`[[outputs.influxdb_v2_rotating]]
  urls = [%q]
  token = "proof-execd-token-0123456789"
  organization = "acme"
  bucket = "telegraf"
  content_encoding = "identity"
  probe = "none"
`, s.URL()))
	const lines = 200_000
	b.ResetTimer()
	for range b.N {
		s.Reset()
		r, w := io.Pipe()
		go func() {
			for sent := 0; sent < lines; sent += 10000 {
				if _, err := w.Write(block); err != nil {
					break
				}
			}
			w.Close()
		}()
		var stderr bytes.Buffer
		code := cli.Main("", []string{"-config", conf, "-batch-size", "1000", "-flush-interval", "1s",
			"-buffer-limit", "10000", "-stats-interval", "0", "-shutdown-timeout", "60s", "-quiet"}, r, io.Discard, &stderr)
		if code != 0 || s.Lines() != lines {
			b.Fatalf("exit %d, %d of %d lines\n%s", code, s.Lines(), lines, stderr.String())
		}
	}
	b.ReportMetric(float64(lines*b.N)/b.Elapsed().Seconds(), "lines/s")
}
