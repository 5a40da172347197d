package influxdb_v2_rotating

import (
	"math"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// The fast path must produce exactly what the line-protocol Encoder
// produces, and leave to it everything it cannot do.
func TestFastPathMatchesTheEncoder(t *testing.T) {
	ts := time.Unix(1_700_000_000, 123456789)
	cases := []telegraf.Metric{
		metric.New("cpu", map[string]string{"host": "a", "cpu": "cpu0"}, map[string]any{"v": 1.5, "n": int64(-3), "u": uint64(7), "ok": true, "s": `say "hi" \ there`}, ts),
		metric.New("my measurement,x", map[string]string{"k ey": "v,a=l ue"}, map[string]any{"f=x": 1.0}, ts),
		metric.New("m=1\"q", nil, map[string]any{"big": uint64(math.MaxUint64), "tiny": 1e-300, "neg": -0.0}, ts),
		metric.New("m", map[string]string{"empty": ""}, map[string]any{"nan": math.NaN(), "v": 2.0}, ts),
		metric.New("ünïcode", map[string]string{"k": "välue"}, map[string]any{"v": 1.0}, ts),
		metric.New("m", map[string]string{"k": `trailing\`}, map[string]any{"v": 1.0}, ts),
		metric.New("m", map[string]string{"k": "new\nline"}, map[string]any{"v": 1.0}, ts),
		metric.New("m", nil, map[string]any{"v": 1.0}, time.Unix(0, 0)),
		metric.New("strings", nil, map[string]any{"plain": "ok", "utf8": "grüße", "empty": ""}, ts),
		metric.New("m", nil, map[string]any{"v": 1.0}, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
	compared := 0
	for _, uint := range []bool{false, true} {
		for _, omit := range []bool{false, true} {
			s := serializer{uintSupport: uint, omitTimestamp: omit}
			for i, m := range cases {
				fast, ok := s.appendFast(nil, m)
				st := encoderPool.Get().(*encoderState)
				st.enc.SetBuffer(nil)
				err := s.encode(&st.enc, m)
				slow := string(st.enc.Bytes())
				st.enc.SetBuffer(nil)
				encoderPool.Put(st)
				if !ok {
					continue // the Encoder decides; its errors are tested below
				}
				if err != nil {
					t.Fatalf("case %d (uint=%t omit=%t): fast path accepted what the Encoder rejects (%v): %q", i, uint, omit, err, fast)
				}
				if string(fast) != slow {
					t.Fatalf("case %d (uint=%t omit=%t):\nfast    %q\nencoder %q", i, uint, omit, fast, slow)
				}
				compared++
			}
		}
	}
	// Unicode names, the trailing backslash, the newline and the string
	// needing escapes go to the Encoder; the year 2300 too unless timestamps
	// are omitted; the other five cases take the fast path in all 4 modes.
	if compared != 5*4+2 {
		t.Fatalf("fast path taken %d times, want 22", compared)
	}
}

func TestSerializeRejectsOnlyBadMetrics(t *testing.T) {
	ts := time.Unix(1_700_000_000, 0)
	ms := []telegraf.Metric{
		metric.New("good", nil, map[string]any{"v": 1.0}, ts),
		metric.New("nofields", nil, map[string]any{"nan": math.NaN()}, ts),
		metric.New("m", map[string]string{"k": "new\nline"}, map[string]any{"v": 1.0}, ts),
		metric.New("good", map[string]string{"k": "a b"}, map[string]any{"v": 2.0}, ts),
	}
	s := serializer{}
	c, rejected, errs, err := s.serialize(nil, createBatches(ms, "b", 10)[0], math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	if c.count != 2 || len(rejected) != 2 || rejected[0] != 1 || rejected[1] != 2 || len(errs) != 2 {
		t.Fatalf("count=%d rejected=%v errs=%v body=%q", c.count, rejected, errs, c.body)
	}
	want := "good v=1 1700000000000000000\ngood,k=a\\ b v=2 1700000000000000000\n"
	if string(c.body) != want {
		t.Fatalf("body %q, want %q", c.body, want)
	}
	if c.ends[0] != len("good v=1 1700000000000000000\n") || c.indices[1] != 3 {
		t.Fatalf("ends %v indices %v", c.ends, c.indices)
	}
	first, second, ok := c.split()
	if !ok || string(first.body)+string(second.body) != want || first.indices[0] != 0 || second.indices[0] != 3 || second.ends[0] != len(second.body) {
		t.Fatalf("split: %q | %q", first.body, second.body)
	}
}
