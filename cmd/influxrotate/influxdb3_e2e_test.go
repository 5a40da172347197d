package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/realtools"
	"github.com/influxrotate/influxrotate/testutil/secscan"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// TestE2EInfluxDB3RealTelegraf rotates an InfluxDB 3 token (Core: a named
// admin token; Enterprise: a resource token that may write the database)
// three times with the influxrotate binary while a real Telegraf writes with
// it, through the plugin compiled into bin/telegraf and through the execd
// binary under stock Telegraf. Every gathered point must be stored, exactly
// one managed token remain, the audit chain verify, and no token issued
// appear in Telegraf's log, the controller's output or any file.
func TestE2EInfluxDB3RealTelegraf(t *testing.T) {
	for _, ed := range []influxv2.Edition{influxv2.Core, influxv2.Enterprise} {
		for _, writer := range []string{"plugin", "execd"} {
			t.Run(string(ed)+"/"+writer, func(t *testing.T) { rotateUnderTelegrafV3(t, ed, writer) })
		}
	}
}

func rotateUnderTelegrafV3(t *testing.T, ed influxv2.Edition, writer string) {
	var tgOpts []realtools.TelegrafOption
	if writer == "plugin" {
		tgOpts = append(tgOpts, realtools.WithTelegrafBinary(realtools.PluginTelegraf(t)))
	} else {
		realtools.Binary(t, "telegraf") // skips (or fails under make e2e) without it
	}
	bin := buildProofBinary(t)
	var scan secscan.Scanner
	srv := influxv2.NewTest(t, influxv2.Options{InfluxDB3: ed})
	front := issuing(t, srv, &scan)
	dir := t.TempDir()
	const db, measurement = "telegraf", "v3e2e"
	var initial influxv2.V3Token
	var err error
	if ed == influxv2.Enterprise {
		initial, err = srv.CreateV3ResourceToken("telegraf", 0,
			influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{db}, Actions: []string{"write"}})
	} else {
		initial, err = srv.CreateV3AdminToken("telegraf", 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	scan.AddServer(srv)

	tokenFile := filepath.Join(dir, "secret", "token")
	writeFile(t, tokenFile, initial.Token+"\n")
	writeFile(t, filepath.Join(dir, "operator-token"), srv.OperatorToken()+"\n")
	cfgPath := filepath.Join(dir, "influxrotate.toml")
	writeFile(t, cfgPath, fmt.Sprintf(`url = %q
backend = "influxdb3"
edition = %q
operator_token_file = "operator-token"
state_dir = "state"
audit_log = "audit/audit.jsonl"
allow_insecure_http = true
[[credential]]
name = "telegraf"
authorization_id = %q
max_age = "1h"
grace = "500ms"
expiry_margin = "1h"
  [[credential.target]]
  type = "file"
  path = %q
`, front.URL, ed, initial.Name, tokenFile))
	// InfluxDB 3 ignores the organization of the v2-compatible write.
	output := fmt.Sprintf(`[[outputs.influxdb_v2_rotating]]
  urls = [%q]
  organization = "ignored-by-influxdb3"
  bucket = %q
  token_file = %q
  token_debounce = "5ms"
`, front.URL, db, tokenFile)
	if writer == "execd" {
		pluginConf := filepath.Join(dir, "execd.conf")
		writeFile(t, pluginConf, output)
		cmd := []string{buildExecdBinary(t), "-config", pluginConf, "-debug", "-flush-interval", "100ms", "-batch-size", "50"}
		for i, c := range cmd {
			cmd[i] = strconv.Quote(c)
		}
		output = fmt.Sprintf("[[outputs.execd]]\n  command = [%s]\n  data_format = \"influx\"\n", strings.Join(cmd, ", "))
	}
	witness := filepath.Join(dir, "gathered.lp")
	tg := realtools.StartTelegraf(t, fmt.Sprintf(`
[agent]
  interval = "20ms"
  round_interval = false
  collection_jitter = "0s"
  flush_interval = "50ms"
  flush_jitter = "0s"
  omit_hostname = true
  debug = true

[[inputs.mock]]
  metric_name = %q
  [[inputs.mock.step]]
    name = "seq"
    start = 0.0
    step = 1.0

%s
[[outputs.file]]
  files = [%q]
  data_format = "influx"
`, measurement, output, witness), tgOpts...)

	// wroteWith waits until the server stored a point written with tok.
	wroteWith := func(tok influxv2.V3Token, what string) {
		t.Helper()
		id := strconv.FormatInt(tok.ID, 10)
		if !wait.Check(t, 60*time.Second, what, func() bool { return len(srv.PointsBy(id)) > 0 }) {
			t.Fatalf("Telegraf's log:\n%s", realtools.Tail(tg.Output(), 40))
		}
	}
	wroteWith(initial, "a point written with the initial token")

	var ctlOut bytes.Buffer
	run := func(args ...string) {
		t.Helper()
		c := exec.Command(bin, args...)
		c.Dir = dir
		out, err := c.CombinedOutput()
		ctlOut.Write(out)
		if err != nil {
			t.Fatalf("influxrotate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	managed := func() []influxv2.V3Token {
		var out []influxv2.V3Token
		for _, tk := range srv.V3Tokens() {
			if strings.Contains(tk.Name, "[influxrotate:telegraf:") {
				out = append(out, tk)
			}
		}
		return out
	}
	for i := range 3 {
		run("rotate", "-config", cfgPath, "-force", "-debug")
		m := managed()
		if len(m) != 1 {
			t.Fatalf("after rotation %d: managed tokens %v, want exactly one", i+1, m)
		}
		wroteWith(m[0], fmt.Sprintf("a point written with the token of rotation %d", i+1))
	}
	run("status", "-config", cfgPath)
	if out := ctlOut.String(); !strings.Contains(out, " phases=provision,") || strings.Contains(out, "deactivate") {
		t.Errorf("status does not list the InfluxDB 3 phases:\n%s", out)
	}
	if err := tg.Stop(); err != nil {
		t.Errorf("telegraf stop: %v", err)
	}

	gathered, lost := pointsLost(t, witness, srv, measurement)
	if gathered < 20 || lost > 0 {
		t.Errorf("%d points gathered, %d of them not stored", gathered, lost)
	}
	m := managed()
	for _, tk := range srv.V3Tokens() {
		if tk.Name != influxv2.V3OperatorName && (len(m) != 1 || tk.Name != m[0].Name) {
			t.Errorf("left over: %v", tk)
		}
	}
	run("audit", "verify", filepath.Join(dir, "audit", "audit.jsonl"))

	var everything bytes.Buffer
	everything.WriteString(tg.Output())
	everything.Write(ctlOut.Bytes())
	hits, files := scanScenario(t, &scan, srv, "Telegraf's log, the controller's output, stored points and requests", &everything, dir, tokenFile)
	t.Logf("%d tokens scanned for in %d bytes of output and %d files: %d hits; %d points gathered, %d lost",
		scan.Len(), everything.Len(), files, len(hits), gathered, lost)
}
