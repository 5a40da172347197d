package influxdb_v2_rotating

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	logging "github.com/influxdata/telegraf/logger"
	"github.com/influxdata/telegraf/testutil"

	"github.com/influxrotate/influxrotate/rotation"
)

// Telegraf's logging has no sink in a test binary, so it keeps every line in
// an unbounded early-log buffer and prints it to stderr. The agent-mode tests
// read the agent's lines through a callback (captureAgentLog) instead; the
// redirect runs before any test starts, so nothing logs concurrently.
func init() { logging.RedirectLogging(io.Discard) }

// captureKey is the logger attribute that tells one test's agent logger
// from the others running in parallel.
const captureKey = "influxrotate_test_capture"

var captureSeq atomic.Int64

// captureAgentLog copies every line of the agent's logger of one
// RunningOutput into capture, at every level. NewRunningOutput installs that
// logger as p.Log, and the plugin hands p.Log to the Rotator, so this one
// logger carries the RunningOutput's, the plugin's and the Rotator's lines:
// all of them must reach the test's token-leak check. Call it after
// NewRunningOutput and before Init.
func captureAgentLog(t *testing.T, p *InfluxDB, capture *testutil.CaptureLogger) {
	t.Helper()
	leveled, ok := p.Log.(interface{ SetLevel(telegraf.LogLevel) })
	if !ok {
		t.Fatalf("p.Log is %T, not the agent's logger: call captureAgentLog after NewRunningOutput", p.Log)
	}
	// The Rotator's slog handler drops records below the logger's level
	// before they reach any callback; trace lets every line through.
	leveled.SetLevel(telegraf.Trace)
	id := fmt.Sprintf("%s#%d", t.Name(), captureSeq.Add(1))
	p.Log.AddAttribute(captureKey, id)
	cb, err := logging.AddCallback(func(level telegraf.LogLevel, _ time.Time, _ string, attrs map[string]any, args ...any) {
		if attrs[captureKey] != id {
			return
		}
		text := fmt.Sprint(args...)
		switch level {
		case telegraf.Error:
			capture.Error(text)
		case telegraf.Warn:
			capture.Warn(text)
		case telegraf.Info:
			capture.Info(text)
		case telegraf.Debug:
			capture.Debug(text)
		default:
			capture.Trace(text)
		}
	})
	if err != nil {
		t.Fatalf("adding the log callback: %v", err)
	}
	// Cleanups run last-in first-out: this one is registered before the
	// caller's ro.Close, so the lines Close logs are captured too.
	t.Cleanup(func() { logging.RemoveCallback(cb) })
}

// The leak check of agent-mode tests must see the lines of every logger a
// token could reach in an agent: the RunningOutput's, the plugin's and the
// Rotator's. This test proves both halves: real lines of each arrive in the
// capture, and a token logged through the plugin's logger or the Rotator's
// slog path is reported by the same scanner the other tests' cleanup runs.
func TestAgentModeLeakCheckSeesEveryLogger(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	p, ro := e.agent(nil, 10)
	for _, m := range metrics(5, nil) {
		ro.AddMetric(m)
	}
	if err := e.write(ro); err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}
	logged := func(part string) bool {
		for _, m := range e.log.Messages() {
			if strings.Contains(m.Text, part) {
				return true
			}
		}
		return false
	}
	// The Rotator logs the token it starts with by fingerprint, the
	// RunningOutput the batch it wrote.
	if fp := rotation.Fingerprint(a.Token); !logged(fp) {
		t.Errorf("no captured line names the starting token %s: the Rotator's lines are not captured", fp)
	}
	if !logged("Wrote batch of 5 metrics") {
		t.Errorf("the RunningOutput's lines are not captured")
	}

	fake := "leaktest-" + rotation.Fingerprint(t.Name()) + "-not-a-real-token"
	e.remember(fake)
	if leaks := e.tokenLeaks(); len(leaks) != 0 {
		t.Fatalf("leaks before any was logged: %q", leaks)
	}
	p.Log.Warnf("plugin line carrying %s", fake)
	newSlogLogger(p.Log).Debug("rotator line", "secret", fake)
	e.errs = append(e.errs, "write error carrying "+fake)
	if leaks := e.tokenLeaks(); len(leaks) != 3 {
		t.Errorf("the scanner found %d leaks, want 3 (one per logger path and the write error): %q", len(leaks), leaks)
	}
	// The planted token proved the scanner; forget it so the cleanup check
	// judges only the real tokens.
	e.mu.Lock()
	e.tokens = e.tokens[:len(e.tokens)-1]
	e.errs = e.errs[:len(e.errs)-1]
	e.mu.Unlock()
}
