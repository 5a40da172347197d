package target

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

func TestTailBufferKeepsTheEnd(t *testing.T) {
	tb := &tailBuffer{max: 8}
	for _, w := range []string{"abc", "defgh", "ij", "0123456789xyz", "!"} {
		if n, err := tb.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got := string(tb.buf); got != "56789xyz!"[1:] {
		t.Errorf("kept %q", got)
	}
	if tb.dropped != int64(len("abcdefghij0123456789xyz!")-8) {
		t.Errorf("dropped %d", tb.dropped)
	}
}

func TestTailBufferMasksATokenCutAtItsStart(t *testing.T) {
	tb := &tailBuffer{max: 20}
	fmt.Fprintf(tb, "token=%s\nfailed\n", tok)
	got := tb.masked(tok, rotation.NewScrubber(tok))
	if strings.Contains(got, tok[len(tok)-12:]) {
		t.Errorf("a piece of the token is left: %q", got)
	}
	if !strings.HasPrefix(got, "[") || !strings.Contains(got, "failed") {
		t.Errorf("masked output %q", got)
	}
}

// A command printing 200 MB keeps only the end of it in memory, and the
// error says how much was dropped.
func TestExecOutputIsBounded(t *testing.T) {
	const printed = 200 << 20
	e := &Exec{Command: []string{"/bin/sh", "-c", "head -c " + strconv.Itoa(printed) + " /dev/zero; echo the end; exit 4"},
		Logger: slog.New(slog.DiscardHandler)}
	err := e.Publish(context.Background(), tok)
	if err == nil {
		t.Fatal("a failing command reported success")
	}
	wantDropped := fmt.Sprintf("[%d earlier bytes dropped]", printed+len("the end\n")-maxOutput)
	if !strings.Contains(err.Error(), wantDropped) || !strings.Contains(err.Error(), "the end") {
		t.Errorf("error does not say what was dropped: %.200q", err)
	}
	if len(err.Error()) > 2*maxOutput {
		t.Errorf("error of %d bytes", len(err.Error()))
	}
}

// A read command printing far more than a token is refused without being
// held whole.
func TestExecReadBackRefusesAnOverlongAnswer(t *testing.T) {
	e := &Exec{Command: []string{"true"}, ReadCommand: []string{"head", "-c", "10000000", "/dev/zero"},
		Logger: slog.New(slog.DiscardHandler)}
	if _, err := e.ReadBack(context.Background()); !errors.Is(err, rotation.ErrTokenTooLong) {
		t.Errorf("read back of 10 MB: %v", err)
	}
}

// A command that outlives its timeout is killed with everything it started.
func TestExecTimeoutKillsTheProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	// The parent waits for the child's pid to be recorded, so that the
	// kill cannot come before there is a child to check.
	e := &Exec{Command: []string{"/bin/sh", "-c", `sleep 100 & echo $! > "$0"; sleep 100`, pidFile},
		Timeout: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Publish(ctx, tok) }()
	var pid int
	wait.For(t, 10*time.Second, "the command to start its child", func() bool {
		data, _ := os.ReadFile(pidFile)
		n, err := strconv.Atoi(strings.TrimSpace(string(data)))
		pid = n
		return err == nil
	})
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "killed with its process group") {
		t.Fatalf("cancelled command: %v", err)
	}
	wait.For(t, 10*time.Second, "the cancelled command's child to exit", func() bool { return !running(pid) })

	// The timeout takes the same path.
	slow := &Exec{Command: []string{"/bin/sh", "-c", "sleep 100"}, Timeout: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
	if err := slow.Publish(context.Background(), tok); err == nil || !strings.Contains(err.Error(), "timed out after 50ms: killed") {
		t.Errorf("timed-out command: %v", err)
	}
}

// running reports whether pid is a live process (a zombie waiting for a
// reaper has exited).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	_, after, _ := bytes.Cut(stat, []byte(") "))
	return len(after) > 0 && after[0] != 'Z' && after[0] != 'X'
}
