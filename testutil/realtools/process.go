package realtools

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is a started child with its output captured.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *output
	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, valid after done
}

// startProcess starts bin with its stdout and stderr going, line by line
// through filter (if not nil), to the captured output and logFile.
func startProcess(name, bin string, args, env []string, logFile io.Writer, filter func([]byte) []byte) (*process, error) {
	p := &process{name: name, out: newOutput(), done: make(chan struct{})}
	w := io.Writer(p.out)
	if logFile != nil {
		w = io.MultiWriter(p.out, logFile)
	}
	var lf *lineFilter
	if filter != nil {
		lf = &lineFilter{dst: w, filter: filter}
		w = lf
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout = w
	p.cmd.Stderr = w
	p.cmd.SysProcAttr = sysProcAttr()
	// A grandchild (an execd plugin) holding the pipe must not block Wait.
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		if lf != nil {
			lf.flush()
		}
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor waits until the output contains substr, the process exits or the
// timeout passes.
func (p *process) waitFor(substr string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s, changed := p.out.snapshot()
		if strings.Contains(s, substr) {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			// Output is complete once Wait returned.
			if strings.Contains(p.out.String(), substr) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before logging %q; last output:\n%s", p.name, p.err, substr, Tail(p.out.String(), 40))
		case <-timer.C:
			return fmt.Errorf("%s did not log %q within %v; last output:\n%s", p.name, substr, timeout, Tail(p.out.String(), 40))
		}
	}
}

// stop sends SIGTERM and waits up to grace, then kills the process group.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		return p.exitErr()
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		return fmt.Errorf("SIGTERM %s: %w", p.name, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.exitErr()
	case <-timer.C:
		p.kill()
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed", p.name, grace)
	}
}

// kill ends the process and its children at once and waits for Wait.
func (p *process) kill() {
	if !p.exited() {
		killGroup(p.cmd.Process)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

func (p *process) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("%s: %w", p.name, p.err)
	}
	return nil
}

// dumpOnFailure logs the output's tail when the test failed.
func (p *process) dumpOnFailure(t testing.TB, lines int) {
	t.Helper()
	if t.Failed() {
		t.Logf("last %d lines of %s output:\n%s", lines, p.name, Tail(p.out.String(), lines))
	}
}

// childEnv is the test's environment without variables the child would
// take as configuration (influxd reads INFLUXDB_*), plus extra.
func childEnv(dropPrefixes []string, extra ...string) []string {
	var env []string
outer:
	for _, kv := range os.Environ() {
		for _, pre := range dropPrefixes {
			if strings.HasPrefix(kv, pre) {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// lineFilter passes whole lines through filter, so a secret split across two
// writes is still seen in one piece.
type lineFilter struct {
	mu      sync.Mutex
	dst     io.Writer
	filter  func([]byte) []byte
	pending []byte
}

// maxPendingLine bounds a line without newline; past it the line is
// filtered in pieces.
const maxPendingLine = 1 << 20

func (l *lineFilter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, p...)
	for {
		i := bytes.IndexByte(l.pending, '\n')
		if i < 0 {
			break
		}
		if _, err := l.dst.Write(l.filter(l.pending[:i+1])); err != nil {
			return len(p), err
		}
		l.pending = l.pending[i+1:]
	}
	if len(l.pending) > maxPendingLine {
		l.flushLocked()
	}
	// Compact so a long-running process does not pin old lines.
	l.pending = append([]byte(nil), l.pending...)
	return len(p), nil
}

func (l *lineFilter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *lineFilter) flushLocked() {
	if len(l.pending) > 0 {
		_, _ = l.dst.Write(l.filter(l.pending))
		l.pending = nil
	}
}
