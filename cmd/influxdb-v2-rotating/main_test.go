package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = realMain(args, strings.NewReader(""), &o, &e)
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
		{"-no-such-flag"},
		{"stray"},
	} {
		if code, _, errOut := runMain(t, args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "influxdb_v2_rotating.conf")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
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
		{"no block", "# nothing\n", "exactly one"},
		{"not toml", "[[outputs.influxdb_v2_rotating]\n", "config"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"-check"}
			if c.conf != "" {
				args = append(args, "-config", writeFile(t, c.conf))
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
	conf := writeConfig(t, dir, srv.URL(), tokenFile, "acme", "${E2E_BUCKET}", "")

	code, out, errOut := runMain(t, "-check", "-config", conf)
	if code != 0 || !strings.Contains(out, "OK: token sha256:") || !strings.Contains(out, `bucket "telemetry"`) {
		t.Fatalf("valid token: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	noSecrets(t, map[string]string{"stdout": out, "stderr": errOut}, auth.Token)

	if err := srv.DeleteAuthorization(auth.ID); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runMain(t, "-check", "-config", conf)
	if code != 1 || !strings.Contains(out, "FAIL") {
		t.Fatalf("revoked token: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	noSecrets(t, map[string]string{"stdout": out, "stderr": errOut}, auth.Token)
}

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
	conf := writeFile(t, `[[secretstores.docker]]
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
	noSecrets(t, map[string]string{"-check": string(out)}, auth.Token)
}
