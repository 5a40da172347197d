package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/execdtest"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/server"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main("", args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

func TestFlagsVersionAndHelp(t *testing.T) {
	if code, out, _ := runMain(t, "-version"); code != 0 || !strings.HasPrefix(out, "influxdb-v2-rotating ") {
		t.Fatalf("-version: %d %q", code, out)
	}
	code, _, errOut := runMain(t, "-help")
	if code != 0 {
		t.Fatalf("-help exit %d", code)
	}
	for _, f := range []string{"-config", "-check", "-spool-dir", "-batch-size", "-flush-interval", "-buffer-limit", "-stats-interval", "-shutdown-timeout", "[[outputs.execd]]"} {
		if !strings.Contains(errOut, f) {
			t.Errorf("-help does not mention %s", f)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-batch-size", "0"},
		{"-batch-size", "100", "-buffer-limit", "10"},
		{"-flush-interval", "0s"},
		{"-shutdown-timeout", "-1s"},
		{"-max-line-bytes", "100000000"}, // longer than a spool record may be
		{"-flush-interval", "soon"},
		{"-no-such-flag"},
		{"stray"},
	} {
		if code, _, errOut := runMain(t, args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
}

func TestBadConfig(t *testing.T) {
	cases := []struct {
		name, conf, want string
	}{
		{"no file", "", "-config: missing"},
		{"unknown option", `[[outputs.influxdb_v2_rotating]]
  urls = ["http://127.0.0.1:1"]
  token_file = "/nonexistent"
  tokn = "x"
`, `tokn`},
		{"invalid option value", `[[outputs.influxdb_v2_rotating]]
  urls = ["http://127.0.0.1:1"]
  token_file = "/nonexistent"
  content_encoding = "brotli"
`, "content_encoding"},
		{"two token sources", `[[outputs.influxdb_v2_rotating]]
  urls = ["http://127.0.0.1:1"]
  token = "abc"
  token_file = "/nonexistent"
`, "token_file"},
		{"another plugin", `[[outputs.influxdb_v2_rotating]]
  urls = ["http://127.0.0.1:1"]
  token_file = "/nonexistent"
[[inputs.cpu]]
`, "cpu"},
		{"two blocks", `[[outputs.influxdb_v2_rotating]]
  token_file = "/a"
[[outputs.influxdb_v2_rotating]]
  token_file = "/b"
`, "exactly one"},
		{"client_id with a newline", `[[outputs.influxdb_v2_rotating]]
  token_file = "/nonexistent"
  client_id = "edge\n01"
`, "client_id: must not contain control characters"},
		{"negative token_reread_interval", `[[outputs.influxdb_v2_rotating]]
  token_file = "/nonexistent"
  token_reread_interval = "-1s"
`, "token_reread_interval: must not be negative"},
		{"no block", "# nothing\n", "exactly one"},
		{"not toml", "[[outputs.influxdb_v2_rotating]\n", "config"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"-check"}
			if c.conf != "" {
				args = append(args, "-config", execdtest.WriteFile(t, c.conf))
			}
			code, _, errOut := runMain(t, args...)
			if code != 1 || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errOut, c.want)
			}
		})
	}
	// A missing file names the file.
	code, _, errOut := runMain(t, "-config", "/nonexistent/x.conf")
	if code != 1 || !strings.Contains(errOut, "/nonexistent/x.conf") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestCheckProbesTheToken(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{})
	auth := srv.WriteAuthorization("acme", "telemetry")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(auth.Token+"\n"), 0o600)
	// Environment variables expand as in telegraf.conf.
	t.Setenv("E2E_BUCKET", "telemetry")
	conf := execdtest.WriteConfig(t, dir, srv.URL(), tokenFile, "acme", "${E2E_BUCKET}", "")

	code, out, errOut := runMain(t, "-check", "-config", conf)
	if code != 0 || !strings.Contains(out, "OK: token sha256:") || !strings.Contains(out, `bucket "telemetry"`) {
		t.Fatalf("valid token: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	execdtest.NoSecrets(t, map[string]string{"stdout": out, "stderr": errOut}, auth.Token)

	if err := srv.DeleteAuthorization(auth.ID); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runMain(t, "-check", "-config", conf)
	if code != 1 || !strings.Contains(out, "FAIL") {
		t.Fatalf("revoked token: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	execdtest.NoSecrets(t, map[string]string{"stdout": out, "stderr": errOut}, auth.Token)
}

// TestConfigBareIntegerDurationsAreSeconds: the config file is read by
// Telegraf's loader, so a bare integer duration is seconds, as in the
// plugin and the controller.
func TestConfigBareIntegerDurationsAreSeconds(t *testing.T) {
	p, err := server.LoadPlugin(execdtest.WriteFile(t, `[[outputs.influxdb_v2_rotating]]
  token_file = "/nonexistent"
  token_reread_interval = 90
  probe_timeout = 2.5
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(p.TokenRereadInterval); got != 90*time.Second {
		t.Errorf("token_reread_interval = 90 read as %s, want 1m30s", got)
	}
	if got := time.Duration(p.ProbeTimeout); got != 2500*time.Millisecond {
		t.Errorf("probe_timeout = 2.5 read as %s, want 2.5s", got)
	}
}

// TestDurationFlagsReadSecondsAsTelegrafDoes: a bare number given to a
// duration flag is seconds, as in the config file (Go's flag package would
// refuse it with "parse error").
func TestDurationFlagsReadSecondsAsTelegrafDoes(t *testing.T) {
	for in, want := range map[string]time.Duration{"90": 90 * time.Second, "2.5": 2500 * time.Millisecond, "0": 0, "1m30s": 90 * time.Second} {
		var d durationFlag
		if err := d.Set(in); err != nil || time.Duration(d) != want {
			t.Errorf("Set(%q) = %s, %v; want %s", in, time.Duration(d), err, want)
		}
	}
	var d durationFlag
	if err := d.Set("soon"); err == nil || !strings.Contains(err.Error(), "number of seconds") {
		t.Errorf(`Set("soon") = %v, want an error saying what is accepted`, err)
	}
	if code, _, errOut := runMain(t, "-flush-interval", "soon"); code != 2 || !strings.Contains(errOut, "-flush-interval: use a duration") {
		t.Errorf("-flush-interval soon: exit %d, stderr %q", code, errOut)
	}
}

// TestStartRecoversATornAuditLine: a crash in the middle of an audit append
// used to stop the binary at every start (and Telegraf restarted it
// forever); the torn bytes are moved aside, the recovery recorded, and the
// binary runs.
func TestStartRecoversATornAuditLine(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{})
	auth := srv.WriteAuthorization("acme", "telemetry")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(auth.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(dir, "audit.jsonl")
	l, err := rotation.OpenAuditLog(audit)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(rotation.AuditRecord{Event: "startup", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	f, err := os.OpenFile(audit, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":2,"time":"20`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	conf := execdtest.WriteConfig(t, dir, srv.URL(), tokenFile, "acme", "telemetry", fmt.Sprintf("  audit_log = %q\n", audit))

	var o, e bytes.Buffer
	code := Main("", []string{"-config", conf, "-stats-interval", "0"}, strings.NewReader(execdtest.Line(1)+"\n"), &o, &e)
	if code != 0 {
		t.Fatalf("exit %d with a torn audit line, stderr %q", code, e.String())
	}
	stored := 0
	for _, pt := range srv.Points() {
		if pt.Measurement == "m" {
			stored++
		}
	}
	if stored != 1 {
		t.Fatalf("%d points of m stored, want 1 (the line read from stdin)", stored)
	}
	af, err := os.Open(audit)
	if err != nil {
		t.Fatal(err)
	}
	defer af.Close()
	sum, err := rotation.VerifyAuditLogWith(af, rotation.AuditOptions{})
	if err != nil || len(sum.Recoveries) != 1 || sum.Recoveries[0].Seq != 2 {
		t.Fatalf("audit log after the start: %+v, %v; want valid with the recovery at seq 2", sum, err)
	}
	execdtest.NoSecrets(t, map[string]string{"stdout": o.String(), "stderr": e.String()}, auth.Token)
}

// A served run leaves no goroutine behind when it returns (the SIGHUP
// relay included), so Main can be run again in one process and the execd
// binary's tests can hold it to that.
func TestServeLeavesNoGoroutine(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{})
	auth := srv.WriteAuthorization("acme", "telemetry")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(auth.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := execdtest.WriteConfig(t, dir, srv.URL(), tokenFile, "acme", "telemetry", "")
	before := goleak.IgnoreCurrent()
	var o, e bytes.Buffer
	if code := Main("", []string{"-config", conf, "-stats-interval", "0"}, strings.NewReader(execdtest.Line(1)+"\n"), &o, &e); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, e.String())
	}
	goleak.VerifyNone(t, before)
	execdtest.NoSecrets(t, map[string]string{"stdout": o.String(), "stderr": e.String()}, auth.Token)
}
