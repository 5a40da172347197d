package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/target"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/capture"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/secscan"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds influxrotate once per test process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "influxrotate-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "influxrotate")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

type crashEnv struct {
	t       *testing.T
	srv     *influxv2.Server
	dir     string
	cfg     string
	initial influxv2.Authorization
	outputs []string
}

func newCrashEnv(t *testing.T, hashed bool) *crashEnv {
	return newCrashEnvOn(t, influxv2.Options{HashedTokens: hashed})
}

// newCrashEnvOn is newCrashEnv on a server with opts: InfluxDB 2.x, or
// InfluxDB 3 (opts.InfluxDB3) with an initial token named "telegraf".
func newCrashEnvOn(t *testing.T, opts influxv2.Options) *crashEnv {
	srv := influxv2.NewTest(t, opts)
	e := &crashEnv{t: t, srv: srv, dir: t.TempDir()}
	backend := "backend = \"influxdb2\"\n"
	cred := "org = \"acme\"\nobserve = \"30ms\"\n"
	switch opts.InfluxDB3 {
	case "":
		srv.CreateOrg("acme")
		srv.CreateBucket("acme", "telemetry")
		e.initial = srv.WriteAuthorization("acme", "telemetry")
	default:
		var tok influxv2.V3Token
		var err error
		if opts.InfluxDB3 == influxv2.Enterprise {
			tok, err = srv.CreateV3ResourceToken("telegraf", 0,
				influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{"telemetry"}, Actions: []string{"write"}})
		} else {
			tok, err = srv.CreateV3AdminToken("telegraf", 0)
		}
		if err != nil {
			t.Fatal(err)
		}
		e.initial = influxv2.Authorization{ID: tok.Name, Token: tok.Token, Description: tok.Name, Active: true}
		backend = fmt.Sprintf("backend = \"influxdb3\"\nedition = %q\n", opts.InfluxDB3)
		cred = "expiry_margin = \"1h\"\n"
	}
	write := func(name, content string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("operator-token", srv.OperatorToken()+"\n", 0o600)
	write("publish.sh", "#!/bin/sh\nset -e\ncat > \"$1.tmp\"\nmv \"$1.tmp\" \"$1\"\n", 0o700)
	write("token", e.initial.Token+"\n", 0o600)
	write("exec-token", e.initial.Token+"\n", 0o600)
	e.cfg = filepath.Join(e.dir, "influxrotate.toml")
	write("influxrotate.toml", fmt.Sprintf(`
url = %q
%soperator_token_file = "operator-token"
state_dir = "state"
audit_log = "audit.jsonl"
[retry]
initial = "1ms"
max = "5ms"
[[credential]]
name = "telegraf"
%sauthorization_id = %q
grace = "30ms"
  [[credential.target]]
  type = "file"
  path = "token"
  [[credential.target]]
  type = "secret-dir"
  dir = "mount"
  [[credential.target]]
  type = "exec"
  command = ["/bin/sh", %q, %q]
  read_command = ["/bin/cat", %q]
`, srv.URL(), backend, cred, e.initial.ID, filepath.Join(e.dir, "publish.sh"), filepath.Join(e.dir, "exec-token"), filepath.Join(e.dir, "exec-token")), 0o600)
	return e
}

// run runs the binary to its end and returns its exit code.
func (e *crashEnv) run(args ...string) int {
	e.t.Helper()
	cmd := exec.Command(binary(e.t), args...)
	cmd.Env = append(os.Environ(), "INFLUXROTATE_TEST_PAUSE_AT=")
	out, err := cmd.CombinedOutput()
	e.outputs = append(e.outputs, string(out))
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		e.t.Fatal(err)
	}
	return 0
}

// runAndKill starts a rotation that pauses at point, waits for its marker,
// and kills it with SIGKILL. It reports whether the point was reached.
func (e *crashEnv) runAndKill(point string) bool {
	e.t.Helper()
	cmd := exec.Command(binary(e.t), "rotate", "-config", e.cfg, "-force")
	cmd.Env = append(os.Environ(), "INFLUXROTATE_TEST_PAUSE_AT="+point)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	marker := make(chan bool, 1)
	var captured strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		found := false
		for sc.Scan() {
			captured.WriteString(sc.Text() + "\n")
			if !found && sc.Text() == "INFLUXROTATE_TEST_PAUSED "+point {
				found = true
				marker <- true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		if !found {
			marker <- false
		}
	}()
	var reached bool
	select {
	case reached = <-marker:
	case <-time.After(60 * time.Second):
		e.t.Errorf("no marker for %s within 60s", point)
	}
	_ = cmd.Process.Kill() // SIGKILL: no deferred cleanup, no signal handler
	_ = cmd.Wait()
	if reached {
		<-time.After(0) // the scanner goroutine ends with the pipe
	}
	e.outputs = append(e.outputs, stdout.String(), captured.String())
	return reached
}

// tokens lists the server's authorizations, or its InfluxDB 3 tokens as
// authorizations named after them, the operator's excluded.
func (e *crashEnv) tokens() []influxv2.Authorization {
	if e.srv.Edition() == "" {
		var out []influxv2.Authorization
		for _, a := range e.srv.Authorizations() {
			if a.ID != e.srv.OperatorAuthorization().ID {
				out = append(out, a)
			}
		}
		return out
	}
	var out []influxv2.Authorization
	for _, tk := range e.srv.V3Tokens() {
		if tk.Name != influxv2.V3OperatorName {
			out = append(out, influxv2.Authorization{ID: tk.Name, Token: tk.Token, Description: tk.Name, Active: true})
		}
	}
	return out
}

func (e *crashEnv) managed() []influxv2.Authorization {
	var out []influxv2.Authorization
	for _, a := range e.tokens() {
		if strings.Contains(a.Description, "[influxrotate:telegraf:") {
			out = append(out, a)
		}
	}
	return out
}

func (e *crashEnv) checkEndState() {
	t := e.t
	t.Helper()
	managed := e.managed()
	if len(managed) != 1 || !managed[0].Active {
		t.Fatalf("managed authorizations %v, want exactly one active", managed)
	}
	cur := managed[0]
	for _, a := range e.tokens() {
		if a.ID != cur.ID {
			t.Errorf("left over: %v (%q)", a, a.Description)
		}
	}
	for _, tc := range []target.Target{
		&target.File{Path: filepath.Join(e.dir, "token")},
		&target.SecretDir{Dir: filepath.Join(e.dir, "mount"), Key: "token"},
		&target.File{Path: filepath.Join(e.dir, "exec-token")},
	} {
		tok, err := tc.ReadBack(context.Background())
		if err != nil || tok != cur.Token {
			t.Errorf("%s holds %s (%v), want %s", tc.Name(), rotation.Fingerprint(tok), err, rotation.Fingerprint(cur.Token))
		}
	}
	if code := e.run("audit", "verify", filepath.Join(e.dir, "audit.jsonl")); code != 0 {
		t.Errorf("audit verify exit %d: %s", code, e.outputs[len(e.outputs)-1])
	}
	var scan secscan.Scanner
	scan.Add(e.initial.Token, cur.Token)
	scan.AddServer(e.srv)
	for i, out := range e.outputs {
		scan.Check(t, fmt.Sprintf("output of run %d", i+1), []byte(out))
	}
	// Every file the controller wrote besides the targets themselves.
	hits, files, err := scan.ScanTree(e.dir, func(path string) bool {
		rel, _ := filepath.Rel(e.dir, path)
		return rel == "token" || rel == "exec-token" || rel == "operator-token" || strings.HasPrefix(rel, "mount")
	})
	if err != nil || files < 3 {
		t.Fatalf("scanned %d files: %v", files, err)
	}
	for _, h := range hits {
		t.Errorf("secret leak: %s", h)
	}
}

// TestKillAtEveryPhase kills the real binary with SIGKILL at every phase
// boundary and inside phases, reruns it, and checks that the rotation
// completes with nothing left behind.
func TestKillAtEveryPhase(t *testing.T) {
	points := []string{
		"provision:before", "provision:created", "provision:after",
		"publish:before", "publish:target-0", "publish:target-1", "publish:after",
		"verify:before", "verify:after",
		"grace:before", "grace:after",
		"deactivate:before", "deactivate:patched", "deactivate:after",
		"observe:before", "observe:after",
		"delete:before", "delete:deleted", "delete:after",
	}
	type tc struct {
		point  string
		hashed bool
	}
	var cases []tc
	for _, p := range points {
		cases = append(cases, tc{p, true})
	}
	// Without hashing, the orphan's token is reused rather than deleted.
	cases = append(cases, tc{"provision:created", false}, tc{"provision:after", false}, tc{"publish:target-0", false})
	for _, c := range cases {
		name := c.point
		if !c.hashed {
			name += "/tokens-shown"
		}
		t.Run(name, func(t *testing.T) {
			e := newCrashEnv(t, c.hashed)
			if !e.runAndKill(c.point) {
				t.Fatalf("the binary never reached %s:\n%s", c.point, strings.Join(e.outputs, "\n"))
			}
			if code := e.run("status", "-config", e.cfg); code != 0 || !strings.Contains(e.outputs[len(e.outputs)-1], "interrupted=") {
				t.Errorf("status after the kill (exit %d): %s", code, e.outputs[len(e.outputs)-1])
			}
			if code := e.run("rotate", "-config", e.cfg); code != 0 {
				t.Fatalf("rerun exit %d:\n%s", code, strings.Join(e.outputs, "\n"))
			}
			e.checkEndState()
		})
	}
}

// TestKillAtEveryPhaseInfluxDB3 is TestKillAtEveryPhase on InfluxDB 3, both
// editions: its cycle has no deactivate and observe, and a token is shown
// only by its creation, so a process killed before publishing it leaves a
// token nobody can publish, which the next process must delete and make again.
func TestKillAtEveryPhaseInfluxDB3(t *testing.T) {
	points := []string{
		"provision:before", "provision:created", "provision:after",
		"publish:before", "publish:target-0", "publish:target-1", "publish:after",
		"verify:before", "verify:after",
		"grace:before", "grace:after",
		"delete:before", "delete:deleted", "delete:after",
	}
	for _, ed := range []influxv2.Edition{influxv2.Core, influxv2.Enterprise} {
		for _, point := range points {
			t.Run(string(ed)+"/"+point, func(t *testing.T) {
				e := newCrashEnvOn(t, influxv2.Options{InfluxDB3: ed})
				if !e.runAndKill(point) {
					t.Fatalf("the binary never reached %s:\n%s", point, strings.Join(e.outputs, "\n"))
				}
				if code := e.run("status", "-config", e.cfg); code != 0 || !strings.Contains(e.outputs[len(e.outputs)-1], "interrupted=") {
					t.Errorf("status after the kill (exit %d): %s", code, e.outputs[len(e.outputs)-1])
				}
				if code := e.run("rotate", "-config", e.cfg); code != 0 {
					t.Fatalf("rerun exit %d:\n%s", code, strings.Join(e.outputs, "\n"))
				}
				e.checkEndState()
			})
		}
	}
}

func TestPauseHookIsInertWhenUnset(t *testing.T) {
	e := newCrashEnv(t, false)
	if code := e.run("rotate", "-config", e.cfg, "-force"); code != 0 {
		t.Fatalf("exit %d:\n%s", code, strings.Join(e.outputs, "\n"))
	}
	for _, out := range e.outputs {
		if strings.Contains(out, "INFLUXROTATE_TEST_PAUSED") {
			t.Error("the pause hook fired without being set")
		}
	}
	e.checkEndState()
}

// TestRunStopsOnSIGTERM runs the daemon binary: SIGTERM while it waits in
// grace exits 3 (the journal holds the cycle); the next daemon resumes the
// cycle at start and exits 0 on SIGTERM once idle.
func TestRunStopsOnSIGTERM(t *testing.T) {
	e := newCrashEnv(t, true)
	orig, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	setConfig := func(grace, maxAge string) {
		cfg := strings.Replace(string(orig), `grace = "30ms"`, fmt.Sprintf("grace = %q\nmax_age = %q", grace, maxAge), 1)
		if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	daemon := func() (*exec.Cmd, *capture.Buffer) {
		cmd := exec.Command(binary(t), "run", "-config", e.cfg)
		cmd.Env = append(os.Environ(), "INFLUXROTATE_TEST_PAUSE_AT=")
		lines := &capture.Buffer{}
		cmd.Stdout, cmd.Stderr = lines, lines
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, lines
	}
	waitFor := func(lines *capture.Buffer, what string) {
		t.Helper()
		if !wait.Check(t, 30*time.Second, fmt.Sprintf("%q in the daemon's output", what),
			func() bool { return strings.Contains(lines.String(), what) }) {
			t.Fatalf("the daemon's output:\n%s", lines.String())
		}
	}
	terminate := func(cmd *exec.Cmd, lines *capture.Buffer) int {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			e.outputs = append(e.outputs, lines.String())
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode()
			}
			if err != nil {
				t.Fatal(err)
			}
			return 0
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("the daemon ignored SIGTERM")
			return -1
		}
	}
	// A token older than max_age is due at once; a long grace holds the
	// daemon in its wait.
	setConfig("1h", "1ms")
	cmd, lines := daemon()
	waitFor(lines, "phase=grace")
	if code := terminate(cmd, lines); code != 3 {
		t.Fatalf("SIGTERM during grace: exit %d, want 3:\n%s", code, lines.String())
	}
	setConfig("30ms", "1h")
	cmd, lines = daemon()
	waitFor(lines, "outcome=ok")
	if code := terminate(cmd, lines); code != 0 {
		t.Fatalf("SIGTERM while idle: exit %d, want 0:\n%s", code, lines.String())
	}
	if !strings.Contains(lines.String(), "resuming interrupted rotation") {
		t.Errorf("the second daemon did not resume:\n%s", lines.String())
	}
	e.checkEndState()
}
