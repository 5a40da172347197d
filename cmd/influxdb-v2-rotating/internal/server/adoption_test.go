package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/execdtest"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

// The binary writes adoption reports through the plugin's WriteRaw, as the
// plugin does in an agent: on by default with token_file, off when asked.
func TestServeReportsAdoption(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{})
	auth := srv.WriteAuthorization("acme", "telemetry")
	cases := []struct {
		client, extra string
		reports       int
	}{
		{"edge-default", "", 1},
		{"edge-off", "adoption_report = false\n", 0},
	}
	for _, c := range cases {
		t.Run(c.client, func(t *testing.T) {
			dir := t.TempDir()
			tokenFile := filepath.Join(dir, "token")
			if err := os.WriteFile(tokenFile, []byte(auth.Token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			conf := execdtest.WriteConfig(t, dir, srv.URL(), tokenFile, "acme", "telemetry", "  client_id = \""+c.client+"\"\n  "+c.extra)
			p, err := LoadPlugin(conf)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Connect(); err != nil {
				t.Fatal(err)
			}
			set := testSettings()
			set.ClientID = p.ClientID
			r := start(t, set, PluginBackend{Plugin: p})
			before := len(srv.Points())
			writeLines(t, r.stdin, 0, 25)
			r.stdin.Close()
			if code := r.exit(t, 10*time.Second); code != 0 {
				t.Fatalf("exit %d\n%s", code, r.logs)
			}
			var metrics, reports int
			for _, pt := range srv.Points()[before:] {
				switch {
				case pt.Measurement == "m":
					metrics++
				case pt.Measurement == rotation.DefaultAdoptionMeasurement && pt.Tags["client_id"] == c.client:
					reports++
					if pt.Fields["fingerprint"] != rotation.Fingerprint(auth.Token) || pt.AuthID != auth.ID || pt.Bucket != "telemetry" {
						t.Fatalf("report %v by %s in %s", pt.Fields, pt.AuthID, pt.Bucket)
					}
				}
			}
			if metrics != 25 || reports != c.reports {
				t.Fatalf("%d metrics and %d reports stored, want 25 and %d", metrics, reports, c.reports)
			}
		})
	}
}
