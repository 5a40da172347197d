package influxdb_v2_rotating

import (
	"math"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/influxrotate/influxrotate/internal/lineproto"
)

func TestSerializeRejectsOnlyBadMetrics(t *testing.T) {
	ts := time.Unix(1_700_000_000, 0)
	ms := []telegraf.Metric{
		metric.New("good", nil, map[string]any{"v": 1.0}, ts),
		metric.New("nofields", nil, map[string]any{"nan": math.NaN()}, ts),
		metric.New("m", map[string]string{"k": "new\nline"}, map[string]any{"v": 1.0}, ts),
		metric.New("good", map[string]string{"k": "a b"}, map[string]any{"v": 2.0}, ts),
	}
	s := serializer{lines: lineproto.NewSerializer(lineproto.Options{})}
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
