package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/execdtest"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

// TestE2ECheckWithSecretStore reads the token through a Telegraf secret
// store, which Telegraf's execd shim cannot do. It runs the binary: Telegraf
// keeps secrets in process-wide state that a second config load in the same
// process trips over.
func TestE2ECheckWithSecretStore(t *testing.T) {
	bin := execdBinary(t)
	srv := influxv2.NewTest(t, influxv2.Options{})
	auth := srv.WriteAuthorization("acme", "telemetry")
	secrets := t.TempDir()
	os.WriteFile(filepath.Join(secrets, "influx_token"), []byte(auth.Token), 0o600)
	conf := execdtest.WriteFile(t, `[[secretstores.docker]]
  id = "files"
  path = "`+secrets+`"
  dynamic = true

[[outputs.influxdb_v2_rotating]]
  urls = ["`+srv.URL()+`"]
  token = "@{files:influx_token}"
  organization = "acme"
  bucket = "telemetry"
`)
	out, err := exec.Command(bin, "-check", "-config", conf).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK: token sha256:") {
		t.Fatalf("%v\n%s", err, out)
	}
	execdtest.NoSecrets(t, map[string]string{"-check": string(out)}, auth.Token)
}
