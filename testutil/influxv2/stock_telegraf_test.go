package influxv2_test

import (
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	stock "github.com/influxdata/telegraf/plugins/outputs/influxdb_v2"

	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

// TestStockTelegrafOutput: Telegraf's own outputs.influxdb_v2 writes to the server
// with contract checking on (NewTest), gzipped and not, and the server's refusals
// reach it as 2.x ones would. The stock output is the reference client: if it broke
// the contract or could not write here, the server would be wrong, not it.
func TestStockTelegrafOutput(t *testing.T) {
	for _, enc := range []string{"gzip", "identity"} {
		t.Run(enc, func(t *testing.T) {
			srv := influxv2.NewTest(t, influxv2.Options{})
			a := srv.WriteAuthorization("acme", "telemetry")
			out := &stock.InfluxDB{
				URLs:            []string{srv.URL()},
				Organization:    "acme",
				Bucket:          "telemetry",
				Token:           config.NewSecret([]byte(a.Token)),
				Timeout:         config.Duration(5 * time.Second),
				ContentEncoding: enc,
				Log:             discard{},
			}
			if err := out.Init(); err != nil {
				t.Fatal(err)
			}
			if err := out.Connect(); err != nil {
				t.Fatal(err)
			}
			defer out.Close()

			now := time.Unix(1700000000, 0)
			ms := []telegraf.Metric{
				metric.New("cpu", map[string]string{"host": "a"}, map[string]any{"usage": 1.5}, now),
				metric.New("cpu", map[string]string{"host": "b"}, map[string]any{"usage": 2.5}, now),
				metric.New("mem", map[string]string{"host": "a"}, map[string]any{"used": int64(42)}, now),
			}
			if err := out.Write(ms); err != nil {
				t.Fatalf("stock write: %v", err)
			}
			pts := srv.PointsBy(a.ID)
			if len(pts) != 3 || pts[0].Line != "cpu,host=a 1700000000000000000" || pts[2].Fields["used"] != int64(42) {
				t.Fatalf("points = %+v", pts)
			}

			reqs := srv.Requests()
			last := reqs[len(reqs)-1]
			wantEnc := map[string]string{"gzip": "gzip", "identity": ""}[enc]
			if last.Path != "/api/v2/write" || last.ContentEncoding != wantEnc || !strings.HasPrefix(last.UserAgent, "Telegraf/") ||
				last.BodySize == 0 || last.AuthID != a.ID {
				t.Errorf("recorded request = %+v", last)
			}

			// Deactivated: the stock output sees 2.x's 403 and its message.
			if err := srv.SetActive(a.ID, false); err != nil {
				t.Fatal(err)
			}
			err := out.Write(ms)
			if err == nil || !strings.Contains(err.Error(), "insufficient permissions for write: token is inactive") {
				t.Errorf("write with an inactive token: %v", err)
			}
			if err != nil && strings.Contains(err.Error(), a.Token) {
				t.Error("the stock output's error carries the token")
			}
			if n := len(srv.Points()); n != 3 {
				t.Errorf("%d points after a refused write, want 3", n)
			}
		})
	}
}

type discard struct{}

func (discard) Level() telegraf.LogLevel { return telegraf.None }
func (discard) AddAttribute(string, any) {}
func (discard) Errorf(string, ...any)    {}
func (discard) Error(...any)             {}
func (discard) Warnf(string, ...any)     {}
func (discard) Warn(...any)              {}
func (discard) Infof(string, ...any)     {}
func (discard) Info(...any)              {}
func (discard) Debugf(string, ...any)    {}
func (discard) Debug(...any)             {}
func (discard) Tracef(string, ...any)    {}
func (discard) Trace(...any)             {}
