package controller

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/target"
	"github.com/influxrotate/influxrotate/testutil/capture"
	"github.com/influxrotate/influxrotate/testutil/realtools"
	"github.com/influxrotate/influxrotate/testutil/secscan"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// ourTelegraf is bin/telegraf, Telegraf with outputs.influxdb_v2_rotating
// compiled in (`make telegraf`); the test is skipped without it, and fails
// under INFLUXROTATE_REQUIRE_TOOLS=1.
func ourTelegraf(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	root, err := realtools.RepoRoot()
	must(t, err)
	bin := filepath.Join(root, "bin", "telegraf")
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm()&0o111 == 0 {
		msg := bin + " not found: run `make telegraf`"
		if os.Getenv(realtools.RequireToolsEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// TestE2EAdoptionGateRealTelegrafInfluxDB18: a real Telegraf with our
// output writes its adoption reports to a real influxd 1.8; the controller
// rotates the "user:password" token, reads the reports with real InfluxQL,
// and deactivates the old user only once the agent reported the new one.
// Every point Telegraf produced is stored.
func TestE2EAdoptionGateRealTelegrafInfluxDB18(t *testing.T) {
	bin := ourTelegraf(t)
	d := realtools.StartInfluxd(t)
	oldPass := realtools.RandomSecret()
	must(t, d.CreateUser("edge", oldPass, d.DB))
	oldToken := realtools.V1Token("edge", oldPass)
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "token")
	must(t, os.WriteFile(tokenPath, []byte(oldToken+"\n"), 0o600))
	produced := filepath.Join(dir, "mock.out")
	tg := realtools.StartTelegraf(t, fmt.Sprintf(`[agent]
  interval = "200ms"
  flush_interval = "300ms"
  flush_jitter = "0s"
  round_interval = false
  precision = "1ms"
  metric_buffer_limit = 100000
  omit_hostname = true

[[inputs.mock]]
  metric_name = "mock"
  [[inputs.mock.constant]]
    name = "constant"
    value = 1

[[outputs.file]]
  files = [%q]
  data_format = "influx"

[[outputs.influxdb_v2_rotating]]
  urls = [%q]
  token_file = %q
  token_debounce = "50ms"
  organization = ""
  bucket = %q
  client_id = "edge-telegraf"
`, produced, d.URL, tokenPath, d.DB), realtools.WithTelegrafBinary(bin))
	count := func(q string) int64 {
		n, err := d.Count(q)
		must(t, err)
		return n
	}
	wait.For(t, 30*time.Second, "the agent's first adoption report", func() bool {
		return count(`SELECT count("fingerprint") FROM "influxrotate_adoption"`) > 0
	})

	must(t, os.WriteFile(filepath.Join(dir, "op"), []byte(realtools.V1Token(d.AdminUser, d.AdminPassword)), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "c.toml"), []byte(fmt.Sprintf(`
url = %q
backend = "influxdb1"
operator_token_file = "op"
state_dir = "state"
audit_log = "audit.jsonl"
[[credential]]
name = "edge"
authorization_id = "edge"
description = "edge"
grace = "10m"
observe = "10ms"
  [credential.adoption]
  bucket = %q
  lookback = "1m"
  clients = ["edge-telegraf"]
  timeout = "60s"
  poll_interval = "200ms"
  [[credential.target]]
  type = "file"
  path = "token"
`, d.URL, d.DB)), 0o600))
	cfg, err := config.Load(filepath.Join(dir, "c.toml"))
	must(t, err)
	var logs, stdout capture.Buffer
	var cy state.Cycle
	var oldDuringAdopt int
	c, err := New(Options{Config: cfg, Stdout: &stdout, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Hook: func(p string) {
			switch p {
			case "adopt:before":
				oldDuringAdopt = v1Write(t, d, oldToken)
			case "observe:before":
				st, err := state.NewStore(filepath.Join(dir, "state")).Load("edge")
				if err == nil && st.Cycle != nil {
					cy = *st.Cycle
				}
			}
		}})
	must(t, err)
	res := c.Rotate(context.Background(), &cfg.Credentials[0], RotateOptions{Force: true})
	if res.Outcome != OutcomeOK {
		t.Fatalf("rotate: %+v\n%s", res, logs.String())
	}
	if oldDuringAdopt != 204 {
		t.Errorf("the old user could not write while the gate waited: %d", oldDuringAdopt)
	}
	if cy.Adoption == nil || strings.Join(cy.Adoption.Adopted, ",") != "edge-telegraf" || cy.AdoptedAt.IsZero() {
		t.Fatalf("adoption %+v, want the agent adopted", cy.Adoption)
	}
	if cy.AdoptedAt.Sub(cy.PublishedAt) >= 10*time.Minute {
		t.Errorf("the gate waited %s: the grace, not the reports", cy.AdoptedAt.Sub(cy.PublishedAt))
	}
	newToken, err := (&target.File{Path: tokenPath}).ReadBack(context.Background())
	must(t, err)
	ws, err := c.Writers(context.Background(), &cfg.Credentials[0])
	must(t, err)
	if len(ws) != 1 || ws[0].ClientID != "edge-telegraf" || ws[0].Token != "current" {
		t.Errorf("writers after the rotation: %+v, want the agent on the current token", ws)
	}
	// A few more flushes with the new user, then every point is stored.
	after := count(`SELECT count("constant") FROM "mock"`)
	wait.For(t, 30*time.Second, "writes with the new user", func() bool {
		return count(`SELECT count("constant") FROM "mock"`) >= after+5
	})
	must(t, tg.Stop())
	lines := 0
	f, err := os.Open(produced)
	must(t, err)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "mock") {
			lines++
		}
	}
	f.Close()
	if got := count(`SELECT count("constant") FROM "mock"`); got != int64(lines) {
		t.Fatalf("influxd holds %d mock points, Telegraf produced %d", got, lines)
	}
	scan := &secscan.Scanner{}
	for _, tok := range []string{oldToken, newToken, realtools.V1Token(d.AdminUser, d.AdminPassword)} {
		_, pass, _ := strings.Cut(tok, ":")
		scan.Add(tok, pass)
	}
	reports, err := d.Query(`SELECT * FROM "influxrotate_adoption"`)
	must(t, err)
	scan.Check(t, "adoption reports", []byte(fmt.Sprint(reports)))
	scan.Check(t, "telegraf output", []byte(tg.Output()))
	scan.Check(t, "controller logs", []byte(logs.String()))
	scan.Check(t, "stdout", []byte(stdout.String()))
	scan.Check(t, "writers", []byte(fmt.Sprint(ws)))
	hits, _, err := scan.ScanTree(dir, func(p string) bool { return p == tokenPath || filepath.Base(p) == "op" })
	must(t, err)
	for _, h := range hits {
		t.Errorf("secret leak: %s", h)
	}
	t.Logf("publish → gate %s, %s", cy.AdoptedAt.Sub(cy.PublishedAt).Round(time.Millisecond), strings.TrimSpace(stdout.String()))
}
