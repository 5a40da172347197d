package realtools

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a child process, so process handling is tested
// without the real tools.
const helperEnv = "REALTOOLS_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "talk-then-wait-term":
		// Prints, then waits for SIGTERM (bounded) and says goodbye on it.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		fmt.Println("ready: PASSWORD 'hunter2' set")
		fmt.Fprint(os.Stderr, "partial line without newline ")
		fmt.Fprintln(os.Stderr, "completed")
		select {
		case <-sig:
			fmt.Println("got SIGTERM, flushing")
			os.Exit(0)
		case <-time.After(60 * time.Second):
			os.Exit(3)
		}
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		time.Sleep(60 * time.Second) // the child idles; the test kills it long before
		os.Exit(3)
	case "exit-early":
		fmt.Println("bad config")
		os.Exit(2)
	}
}

func startHelper(t *testing.T, mode string, filter func([]byte) []byte) *process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProcess("helper", exe, nil, childEnv(nil, helperEnv+"="+mode), nil, filter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	return p
}

func TestProcessWaitForAndGracefulStop(t *testing.T) {
	p := startHelper(t, "talk-then-wait-term", redactLine)
	if err := p.waitFor("partial line without newline completed", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.stop(30 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	out := p.out.String()
	if !strings.Contains(out, "got SIGTERM, flushing") {
		t.Errorf("SIGTERM not delivered: %q", out)
	}
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "PASSWORD [REDACTED]") {
		t.Errorf("password not redacted: %q", out)
	}
}

func TestProcessWaitForReportsEarlyExit(t *testing.T) {
	p := startHelper(t, "exit-early", nil)
	err := p.waitFor("never printed", 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "bad config") {
		t.Fatalf("want an exit error carrying the output, got %v", err)
	}
	if p.exitErr() == nil {
		t.Error("exit status 2 not reported")
	}
}

func TestProcessWaitForTimesOut(t *testing.T) {
	p := startHelper(t, "talk-then-wait-term", nil)
	start := time.Now()
	err := p.waitFor("never printed", 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not log") {
		t.Fatalf("want a timeout error, got %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("timeout of 300ms took %v", d)
	}
}

func TestProcessStopKillsAfterGrace(t *testing.T) {
	p := startHelper(t, "ignore-term", nil)
	if err := p.waitFor("ignoring SIGTERM", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	err := p.stop(500 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("want a killed error, got %v", err)
	}
	if !p.exited() {
		t.Error("process still running after kill")
	}
}

func TestLineFilterSeesWholeLines(t *testing.T) {
	var dst bytes.Buffer
	lf := &lineFilter{dst: &dst, filter: redactLine}
	for _, chunk := range []string{"CREATE USER x WITH PASS", "WORD 'sec", "ret' ok\nSET PASSWORD FOR \"u\" = 'other'\ntail"} {
		if _, err := lf.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	lf.flush()
	got := dst.String()
	want := "CREATE USER x WITH PASSWORD [REDACTED] ok\nSET PASSWORD FOR \"u\" = [REDACTED]\ntail"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		`CREATE USER "a" WITH PASSWORD 'p' WITH ALL PRIVILEGES`: `CREATE USER "a" WITH PASSWORD [REDACTED] WITH ALL PRIVILEGES`,
		`create user a with password 'it\'s'`:                   `create user a with password [REDACTED]`,
		`SET PASSWORD FOR "a" = 'new'`:                          `SET PASSWORD FOR "a" = [REDACTED]`,
		`SELECT count(*) FROM "m" WHERE "t" = 'v'`:              `SELECT count(*) FROM "m" WHERE "t" = 'v'`,
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQuoting(t *testing.T) {
	if got := QuoteIdent(`a"b\c`); got != `"a\"b\\c"` {
		t.Errorf("QuoteIdent = %s", got)
	}
	if got := QuoteString(`it's\`); got != `'it\'s\\'` {
		t.Errorf("QuoteString = %s", got)
	}
}

func TestRepoRootFindsThisModule(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "testutil", "realtools")); err != nil {
		t.Errorf("root %s does not hold this package: %v", root, err)
	}
	if declaresModule([]byte("module github.com/influxrotate/influxrotate/sub\n")) {
		t.Error("a nested module must not count as the root")
	}
}

func TestOutputWakesWaiters(t *testing.T) {
	o := newOutput()
	_, changed := o.snapshot()
	go func() { _, _ = o.Write([]byte("x")) }()
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("write did not wake the waiter")
	}
	if o.String() != "x" {
		t.Errorf("output %q", o.String())
	}
}
