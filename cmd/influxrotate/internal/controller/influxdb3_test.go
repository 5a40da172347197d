package controller

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

// TestInfluxDB3RefusedUntilTheCycleHasNoInactivePhase: the cycle deactivates
// before it deletes, which InfluxDB 3 cannot do; a controller built for it
// must refuse to start rather than stop half-way through a rotation.
func TestInfluxDB3RefusedUntilTheCycleHasNoInactivePhase(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{InfluxDB3: influxv2.Core})
	dir := t.TempDir()
	op := filepath.Join(dir, "op")
	if err := os.WriteFile(op, []byte(srv.OperatorToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
url = "` + srv.URL() + `"
backend = "influxdb3"
edition = "core"
operator_token_file = "` + op + `"
state_dir = "` + filepath.Join(dir, "state") + `"
audit_log = "` + filepath.Join(dir, "audit.jsonl") + `"
[[credential]]
name = "telegraf"
description = "telegraf"
  [[credential.target]]
  type = "file"
  path = "` + filepath.Join(dir, "token") + `"
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Config: cfg})
	var ce *config.Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "without an inactive state") {
		t.Fatalf("New: %v, want a configuration error about the missing inactive state", err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests sent by a controller that refused to start", n)
	}
}
