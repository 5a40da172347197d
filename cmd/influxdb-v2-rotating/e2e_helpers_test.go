package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/testutil/capture"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/realtools"
)

var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
	buildDir  string
)

// TestMain removes the binary the end-to-end tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// execdBinary builds this command once per test run, so the end-to-end
// tests always run the code under test. It skips under -short.
func execdBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	buildOnce.Do(func() {
		if p := os.Getenv("INFLUXROTATE_EXECD_BIN"); p != "" {
			builtPath = p
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "influxdb-v2-rotating-e2e-")
		if buildErr != nil {
			return
		}
		builtPath = filepath.Join(buildDir, "influxdb-v2-rotating")
		cmd := exec.Command("go", "build", "-o", builtPath, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the binary: %v", buildErr)
	}
	return builtPath
}

// child is the binary run directly, with a pipe on stdin.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *capture.Buffer
	done   chan struct{}
	err    error
}

func startChild(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(bin, args...), stderr: &capture.Buffer{}, done: make(chan struct{})}
	c.cmd.Stderr = c.stderr
	c.cmd.Stdout = c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("binary output:\n%s", realtools.Tail(c.stderr.String(), 60))
		}
	})
	return c
}

func (c *child) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(d):
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		t.Fatalf("binary did not exit within %s", d)
		return nil
	}
}

// seqPoints returns the seq field of every stored point of measurement m,
// sorted, and checks that no series+timestamp arrived twice.
func seqPoints(t *testing.T, srv *influxv2.Server, m string) []int64 {
	t.Helper()
	seen := map[string]bool{}
	var out []int64
	for _, p := range srv.Points() {
		if p.Measurement != m {
			continue
		}
		if seen[p.Line] {
			continue // a re-sent batch: InfluxDB overwrites, no loss
		}
		seen[p.Line] = true
		switch v := p.Fields["seq"].(type) {
		case float64:
			out = append(out, int64(v))
		case int64:
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// gapless reports the first missing value of 0..max in sorted seqs, or -1.
func gapless(seqs []int64) int64 {
	for i, v := range seqs {
		if v != int64(i) {
			return int64(i)
		}
	}
	return -1
}
