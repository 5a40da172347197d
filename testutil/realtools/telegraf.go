package realtools

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Telegraf is a running Telegraf process.
type Telegraf struct {
	ConfigPath string

	t    testing.TB
	proc *process
}

// DefaultTelegrafStopGrace bounds Stop: Telegraf stops its inputs and
// flushes every output on SIGTERM, which takes at most a flush or two.
const DefaultTelegrafStopGrace = 20 * time.Second

type telegrafOptions struct {
	binary string
	env    []string
}

// TelegrafOption changes how StartTelegraf runs Telegraf.
type TelegrafOption func(*telegrafOptions)

// WithTelegrafBinary runs another Telegraf build, e.g. one with our output
// plugin compiled in, instead of .tools/bin/telegraf.
func WithTelegrafBinary(path string) TelegrafOption {
	return func(o *telegrafOptions) { o.binary = path }
}

// WithEnv adds KEY=VALUE variables to Telegraf's environment (the config can
// reference them as ${KEY}).
func WithEnv(kv ...string) TelegrafOption {
	return func(o *telegrafOptions) { o.env = append(o.env, kv...) }
}

// StartTelegraf writes configText to a file in t.TempDir() and starts
// Telegraf with --config on it. It returns once the process has started; use
// WaitForLog to wait for a state ("Loaded outputs", a write error...). The
// process is stopped (SIGTERM, bounded, then killed) when the test ends.
func StartTelegraf(t testing.TB, configText string, opts ...TelegrafOption) *Telegraf {
	t.Helper()
	var o telegrafOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.binary == "" {
		o.binary = Binary(t, "telegraf")
	}
	dir := t.TempDir()
	tg := &Telegraf{ConfigPath: filepath.Join(dir, "telegraf.conf"), t: t}
	if err := os.WriteFile(tg.ConfigPath, []byte(configText), 0o600); err != nil {
		t.Fatalf("realtools: telegraf config: %v", err)
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "telegraf.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("realtools: telegraf log: %v", err)
	}
	t.Cleanup(func() { _ = logFile.Close() })

	proc, err := startProcess("telegraf", o.binary, []string{"--config", tg.ConfigPath}, childEnv(nil, o.env...), logFile, nil)
	if err != nil {
		t.Fatalf("realtools: %v", err)
	}
	tg.proc = proc
	t.Cleanup(func() {
		if !proc.exited() {
			if err := proc.stop(DefaultTelegrafStopGrace); err != nil {
				t.Logf("realtools: stopping telegraf: %v", err)
			}
		}
		proc.dumpOnFailure(t, 80)
	})
	return tg
}

// Stop sends SIGTERM and waits up to DefaultTelegrafStopGrace for Telegraf
// to flush and exit; past that it kills it and returns an error. The error
// also reports a non-zero exit.
func (tg *Telegraf) Stop() error { return tg.proc.stop(DefaultTelegrafStopGrace) }

// Pid is Telegraf's process id.
func (tg *Telegraf) Pid() int { return tg.proc.cmd.Process.Pid }

// Output is everything Telegraf wrote to stdout and stderr so far.
func (tg *Telegraf) Output() string { return tg.proc.out.String() }

// WaitForLog waits until the output contains substr. The error, returned
// when the timeout passes or Telegraf exits first, carries the output's tail.
func (tg *Telegraf) WaitForLog(substr string, timeout time.Duration) error {
	return tg.proc.waitFor(substr, timeout)
}

// PluginTelegrafEnv names a Telegraf binary with our output plugin compiled
// in, to run instead of bin/telegraf (`make compat` sets it per version).
const PluginTelegrafEnv = "INFLUXROTATE_TELEGRAF"

// PluginTelegraf returns the Telegraf built with our output plugin compiled
// in: bin/telegraf (the Makefile's TELEGRAF_VERSION, built by `make
// telegraf`) or PluginTelegrafEnv. It skips the test under -short and when
// the binary is missing (fails instead under RequireToolsEnv, as make e2e
// sets it).
func PluginTelegraf(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	bin := os.Getenv(PluginTelegrafEnv)
	if bin == "" {
		root, err := RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(root, "bin", "telegraf")
	}
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm()&0o111 == 0 {
		msg := fmt.Sprintf("%s not found: run `make telegraf` to build Telegraf with our plugin", bin)
		if os.Getenv(RequireToolsEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}
