package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// Exec publishes the token by running a command that receives it on stdin.
// The token is never put in argv (visible in ps) or the environment
// (visible in /proc/<pid>/environ); the command gets its fingerprint in
// INFLUXROTATE_FINGERPRINT. ReadCommand, when set, prints the token it holds.
//
// A command runs in its own process group, killed as a whole when it
// outlives its timeout, so a hook's children do not outlive it. Only the
// end of its output is kept, for the error message.
type Exec struct {
	Command     []string
	ReadCommand []string
	Timeout     time.Duration
	Env         []string
	Logger      *slog.Logger
	// Scrubber masks every token the process holds in a command's output;
	// nil masks the published token only.
	Scrubber *rotation.Scrubber
}

// Name implements Target.
func (e *Exec) Name() string { return "exec " + e.Command[0] }

// maxOutput bounds what is kept of a command's output (its end) for an
// error message: a command printing gigabytes costs no memory.
const maxOutput = 1 << 10

// waitDelay is how long a command's pipes are waited for once it has exited
// or been killed, in case something it started still holds them.
const waitDelay = time.Second

// Publish implements Target.
func (e *Exec) Publish(ctx context.Context, token string) error {
	out := &tailBuffer{max: maxOutput}
	env := append(append(os.Environ(), e.Env...), "INFLUXROTATE_FINGERPRINT="+rotation.Fingerprint(token))
	if err := e.run(ctx, e.Command, env, strings.NewReader(token+"\n"), out, out); err != nil {
		return fmt.Errorf("%s: %w: %s", e.Name(), err, out.masked(token, scrubberWith(e.Scrubber, token)))
	}
	return nil
}

// ReadBack implements Target.
func (e *Exec) ReadBack(ctx context.Context) (string, error) {
	if len(e.ReadCommand) == 0 {
		return "", ErrUnreadable
	}
	// stdout holds the token: a little more than a token is kept, so that
	// ParseToken refuses an overlong answer without it being held whole.
	stdout := &headBuffer{max: rotation.MaxTokenSize + 65}
	stderr := &tailBuffer{max: maxOutput}
	if err := e.run(ctx, e.ReadCommand, append(os.Environ(), e.Env...), nil, stdout, stderr); err != nil {
		// stdout may hold a token: only stderr goes into the error.
		return "", fmt.Errorf("exec %s: %w: %s", e.ReadCommand[0], err, stderr.masked("", e.Scrubber))
	}
	tok, err := rotation.ParseToken(stdout.buf)
	if errors.Is(err, rotation.ErrTokenEmpty) {
		return "", ErrNoToken
	}
	if err != nil {
		return "", fmt.Errorf("exec %s: %w", e.ReadCommand[0], err)
	}
	return tok, nil
}

// run runs argv in a process group of its own, killed as a whole when ctx
// ends or the timeout passes.
func (e *Exec) run(ctx context.Context, argv, env []string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeoutCause(ctx, e.timeout(), fmt.Errorf("timed out after %v", e.timeout()))
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The negative pid names the group the command leads.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%v: killed with its process group)", err, context.Cause(ctx))
	}
	return err
}

func (e *Exec) timeout() time.Duration {
	if e.Timeout <= 0 {
		return 30 * time.Second
	}
	return e.Timeout
}

// tailBuffer keeps the last max bytes written to it and counts the rest.
// exec.Cmd calls Write from one goroutine at a time when Stdout and Stderr
// are the same writer.
type tailBuffer struct {
	max     int
	buf     []byte
	dropped int64
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.dropped += int64(len(t.buf) + len(p) - t.max)
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.dropped += int64(over)
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// masked returns the kept output for an error message with every token
// scrub holds replaced by its fingerprint, and a piece of token left at the
// start where the earlier output was cut removed.
func (t *tailBuffer) masked(token string, scrub *rotation.Scrubber) string {
	s := string(t.buf)
	prefix := ""
	if t.dropped > 0 {
		prefix = fmt.Sprintf("[%d earlier bytes dropped] ", t.dropped)
		for k := min(len(s), len(token)-1); k > 0; k-- {
			if strings.HasPrefix(s, token[len(token)-k:]) {
				s = "…" + s[k:]
				break
			}
		}
	}
	// Also in base64 and URL-escaped form: a hook may print what it sent.
	s = scrub.Scrub(s)
	return prefix + strings.TrimSpace(s)
}

// headBuffer keeps the first max bytes written to it and discards the rest
// while still draining the writer, so a command is never blocked on a full
// pipe.
type headBuffer struct {
	max int
	buf []byte
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
