package lines

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/influxrotate/influxrotate/internal/lineproto"
)

// benchInput is 10,000 lines shaped like Telegraf's cpu and mem metrics.
func benchInput() [][]byte {
	var lines [][]byte
	for i := 0; i < 5000; i++ {
		lines = append(lines,
			fmt.Appendf(nil, "cpu,cpu=cpu%d,host=web-%02d usage_guest=0,usage_idle=97.4%d,usage_iowait=0.1,usage_system=0.9,usage_user=1.5 %d", i%8, i%50, i, 1_700_000_000_000_000_000+int64(i)),
			fmt.Appendf(nil, "mem,host=web-%02d active=%di,available=%di,available_percent=71.2,buffered=%di,free=%di,used_percent=28.8 %d", i%50, 1<<30+i, 3<<30+i, 1<<20, 2<<30, 1_700_000_000_000_000_000+int64(i)),
		)
	}
	return lines
}

func benchLines(b *testing.B, rewrite bool) {
	lines := benchInput()
	size := 0
	for _, l := range lines {
		size += len(l) + 1
	}
	h := NewHandler(Options{Options: lineproto.Options{UintSupport: true}, DefaultBucket: "b"}, discard())
	out := make([]byte, 0, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		out = out[:0]
		for _, l := range lines {
			if _, _, err := h.check(l); err != nil {
				b.Fatal(err)
			}
			if rewrite {
				enc, err := h.rewriteChecked(l)
				if err != nil {
					b.Fatal(err)
				}
				out = append(out, enc...)
			} else {
				out = append(out, l...)
				out = append(out, '\n')
			}
		}
	}
	b.ReportMetric(float64(b.N*len(lines))/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkLinesValidateForward is what the binary does when no option
// changes a line: decode every part to validate it, forward the bytes.
func BenchmarkLinesValidateForward(b *testing.B) { benchLines(b, false) }

// BenchmarkLinesValidateReencode rewrites every line, as bucket_tag with
// exclude_bucket_tag, uints without influx_uint_support or
// influx_omit_timestamp require (Telegraf-shaped lines: by editing bytes).
func BenchmarkLinesValidateReencode(b *testing.B) { benchLines(b, true) }

// BenchmarkLineReader is the whole stdin path: reads, line splitting,
// validation and blocks.
func BenchmarkLineReader(b *testing.B) {
	var in bytes.Buffer
	lines := benchInput()
	for _, l := range lines {
		in.Write(l)
		in.WriteByte('\n')
	}
	data := in.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		h := NewHandler(Options{Options: lineproto.Options{UintSupport: true}, DefaultBucket: "b"}, discard())
		lr := NewReader(bytes.NewReader(data), h)
		n := 0
		for {
			blk := &Block{}
			err := lr.Next(blk)
			n += blk.Count()
			if err != nil {
				break
			}
		}
		if n != len(lines) {
			b.Fatalf("read %d lines, want %d", n, len(lines))
		}
	}
	b.ReportMetric(float64(b.N*len(lines))/b.Elapsed().Seconds(), "lines/s")
}
