package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/realtools"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// TestE2EProofSecurityRealTelegraf is the security scan with a real
// stock Telegraf (.tools/bin/telegraf, the newest supported version): inputs.mock into outputs.execd running our binary (and
// outputs.file as a witness of what was gathered), three rotations by the
// influxrotate binary with the old token deleted after each, Telegraf's
// whole log at debug level (the binary's stderr included) scanned for every
// token issued; and every gathered point stored.
func TestE2EProofSecurityRealTelegraf(t *testing.T) {
	realtools.Binary(t, "telegraf") // skips (or fails under make test) without it
	bin := buildProofBinary(t)
	execdBin := buildExecdBinary(t)
	var scan secscan.Scanner
	srv := influxv2.NewTest(t, influxv2.Options{})
	front := issuing(t, srv, &scan)
	dir := t.TempDir()
	const org, bucket = "acme", "telegraf"
	srv.CreateBucket(org, bucket)
	initial := srv.WriteAuthorization(org, bucket)
	scan.AddServer(srv)

	tokenFile := filepath.Join(dir, "secret", "token")
	writeFile(t, tokenFile, initial.Token+"\n")
	writeFile(t, filepath.Join(dir, "operator-token"), srv.OperatorToken()+"\n")
	cfgPath := filepath.Join(dir, "influxrotate.toml")
	writeFile(t, cfgPath, fmt.Sprintf(`url = %q
backend = "influxdb2"
operator_token_file = "operator-token"
state_dir = "state"
audit_log = "audit/audit.jsonl"
allow_insecure_http = true
[[credential]]
name = "telegraf"
org = %q
authorization_id = %q
max_age = "1h"
grace = "500ms"
observe = "100ms"
  [[credential.target]]
  type = "file"
  path = %q
`, front.URL, org, initial.ID, tokenFile))
	pluginConf := filepath.Join(dir, "execd.conf")
	writeFile(t, pluginConf, fmt.Sprintf(`[[outputs.influxdb_v2_rotating]]
  urls = [%q]
  organization = %q
  bucket = %q
  token_file = %q
  token_debounce = "5ms"
  audit_log = %q
`, front.URL, org, bucket, tokenFile, filepath.Join(dir, "execd-audit", "audit.jsonl")))
	if err := os.MkdirAll(filepath.Join(dir, "execd-audit"), 0o700); err != nil {
		t.Fatal(err)
	}
	witness := filepath.Join(dir, "gathered.lp")
	cmd := []string{execdBin, "-config", pluginConf, "-debug", "-flush-interval", "100ms", "-batch-size", "50", "-stats-interval", "200ms"}
	for i, c := range cmd {
		cmd[i] = strconv.Quote(c)
	}
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
  metric_name = "proofsec"
  [[inputs.mock.step]]
    name = "seq"
    start = 0.0
    step = 1.0

[[outputs.execd]]
  command = [%s]
  data_format = "influx"

[[outputs.file]]
  files = [%q]
  data_format = "influx"
`, strings.Join(cmd, ", "), witness))
	if err := tg.WaitForLog("Loaded outputs", 60*time.Second); err != nil {
		t.Fatal(err)
	}

	var ctlOut bytes.Buffer
	for i := 0; i < 3; i++ {
		c := exec.Command(bin, "rotate", "-config", cfgPath, "-force", "-debug")
		c.Dir = dir
		out, err := c.CombinedOutput()
		ctlOut.Write(out)
		if err != nil {
			t.Fatalf("rotation %d: %v\n%s", i+1, err, out)
		}
	}
	if err := tg.Stop(); err != nil {
		t.Errorf("telegraf stop: %v", err)
	}
	log := tg.Output()
	if n := strings.Count(log, "rotated"); n < 3 {
		t.Errorf("Telegraf's log shows %d rotations of the execd binary, want 3: the scenario did not exercise it\n%s", n, realtools.Tail(log, 40))
	}

	gathered, lost := pointsLost(t, witness, srv, "proofsec")
	if gathered < 50 || lost > 0 {
		t.Errorf("%d points gathered, %d of them not stored", gathered, lost)
	}

	var everything bytes.Buffer
	everything.WriteString(log)
	everything.Write(ctlOut.Bytes())
	hits, files := scanScenario(t, &scan, srv, "Telegraf's log, the controller's output, stored points and requests", &everything, dir, tokenFile)
	t.Logf("%d tokens scanned for in %d bytes of output and %d files: %d hits; %d points gathered, %d lost",
		scan.Len(), everything.Len(), files, len(hits), gathered, lost)
}

// pointsLost compares what Telegraf gathered of measurement (outputs.file's
// witness, one field per line) with what srv stored, by timestamp: it
// returns how many points were gathered and how many of them are missing.
func pointsLost(t *testing.T, witness string, srv *influxv2.Server, measurement string) (gathered, lost int) {
	t.Helper()
	seen := map[string]bool{}
	f, err := os.Open(witness)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && strings.HasPrefix(fields[0], measurement) {
			seen[fields[2]] = true // the timestamp: one series
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, p := range srv.Points() {
		if p.Measurement == measurement {
			stored[strconv.FormatInt(p.Time.UnixNano(), 10)] = true
		}
	}
	for ts := range seen {
		if !stored[ts] {
			lost++
		}
	}
	return len(seen), lost
}
