package target

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// Exec publishes the token by running a command that receives it on stdin.
// The token is never put in argv (visible in ps) or the environment
// (visible in /proc/<pid>/environ); the command gets its fingerprint in
// INFLUXROTATE_FINGERPRINT. ReadCommand, when set, prints the token it holds.
type Exec struct {
	Command     []string
	ReadCommand []string
	Timeout     time.Duration
	Env         []string
	Logger      *slog.Logger
}

// Name implements Target.
func (e *Exec) Name() string { return "exec " + e.Command[0] }

// maxOutput bounds what is kept of a command's output for an error message.
const maxOutput = 512

// Publish implements Target.
func (e *Exec) Publish(ctx context.Context, token string) error {
	ctx, cancel := context.WithTimeout(ctx, e.timeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Command[0], e.Command[1:]...)
	cmd.Env = append(append(os.Environ(), e.Env...), "INFLUXROTATE_FINGERPRINT="+rotation.Fingerprint(token))
	cmd.Stdin = strings.NewReader(token + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.ReplaceAll(out.String(), token, rotation.Fingerprint(token))
		if len(msg) > maxOutput {
			msg = msg[:maxOutput] + "…"
		}
		return fmt.Errorf("%s: %w: %s", e.Name(), err, strings.TrimSpace(msg))
	}
	return nil
}

// ReadBack implements Target.
func (e *Exec) ReadBack(ctx context.Context) (string, error) {
	if len(e.ReadCommand) == 0 {
		return "", ErrUnreadable
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, e.ReadCommand[0], e.ReadCommand[1:]...)
	cmd.Env = append(os.Environ(), e.Env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if err != nil {
		// stdout may hold a token: only stderr goes into the error.
		msg := stderr.String()
		if len(msg) > maxOutput {
			msg = msg[:maxOutput] + "…"
		}
		return "", fmt.Errorf("exec %s: %w: %s", e.ReadCommand[0], err, strings.TrimSpace(msg))
	}
	tok, err := rotation.ParseToken(out)
	if errors.Is(err, rotation.ErrTokenEmpty) {
		return "", ErrNoToken
	}
	if err != nil {
		return "", fmt.Errorf("exec %s: %w", e.ReadCommand[0], err)
	}
	return tok, nil
}

func (e *Exec) timeout() time.Duration {
	if e.Timeout <= 0 {
		return 30 * time.Second
	}
	return e.Timeout
}
