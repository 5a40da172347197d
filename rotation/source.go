package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Source is where tokens come from. Implementations are safe for concurrent
// use.
type Source interface {
	// Name describes the source for log lines, such as `file "/run/secrets/token"`.
	// It never contains the token.
	Name() string
	// Read reads the token now, bypassing any cache. The Rotator calls it at
	// start and when a write is refused, so it must not block for long.
	Read(ctx context.Context) (*Credential, error)
	// Changes delivers each credential that differs from the last one
	// delivered (or read). It is closed by Close.
	Changes() <-chan *Credential
	// Close stops any goroutine the source started and waits for it.
	Close() error
}

// FileSourceConfig configures NewFileSource.
type FileSourceConfig struct {
	// Path of the token file, which may be a symlink as in a Kubernetes
	// secret volume.
	Path string
	// Debounce waits this long after the last event of a burst before
	// reading. Default 100ms.
	Debounce time.Duration
	// Reread reads the file this often even without an event, as a safety
	// net for missed or overflowed events and file systems without inotify.
	// Default 1m; negative disables it.
	Reread time.Duration
	// Logger receives one line per distinct failure. Default: discard.
	Logger *slog.Logger
	// Stats counts source errors. Optional.
	Stats *Stats
}

// unchanging is the Changes and Close of a source whose token never
// changes by itself: Changes never delivers and Close closes it.
type unchanging struct {
	changes chan *Credential
	once    sync.Once
}

func newUnchanging() unchanging { return unchanging{changes: make(chan *Credential)} }

// Changes never delivers: the token does not change by itself. It is
// closed by Close.
func (u *unchanging) Changes() <-chan *Credential { return u.changes }

// Close closes Changes. It may be called more than once.
func (u *unchanging) Close() error {
	u.once.Do(func() { close(u.changes) })
	return nil
}

// StaticSource is a token given in the configuration. It never changes.
type StaticSource struct {
	unchanging
	cred *Credential
}

// NewStaticSource validates token with ParseToken. The error never contains
// the token.
func NewStaticSource(token string) (*StaticSource, error) {
	tok, err := ParseToken([]byte(token))
	if err != nil {
		return nil, fmt.Errorf("static token: %w", err)
	}
	return &StaticSource{
		unchanging: newUnchanging(),
		cred:       NewCredential(tok, "", "static token"),
	}, nil
}

// Name returns "static token".
func (s *StaticSource) Name() string { return "static token" }

// Read returns the configured token.
func (s *StaticSource) Read(context.Context) (*Credential, error) { return s.cred, nil }

// EnvSource reads a token from an environment variable on every Read.
// A process's environment does not change from outside, so Changes never
// delivers; Rotator.Reload or a refused write (which calls Read) picks up a
// value set with os.Setenv.
type EnvSource struct {
	unchanging
	name string
}

// NewEnvSource returns a source for the variable name. The variable need not
// be set yet.
func NewEnvSource(name string) (*EnvSource, error) {
	if name == "" {
		return nil, errors.New("token environment variable: name is empty")
	}
	return &EnvSource{unchanging: newUnchanging(), name: name}, nil
}

// Name returns `environment variable "NAME"`.
func (s *EnvSource) Name() string { return fmt.Sprintf("environment variable %q", s.name) }

// Read reads the variable now. An unset variable is an error wrapping
// ErrTokenEmpty.
func (s *EnvSource) Read(context.Context) (*Credential, error) {
	v, ok := os.LookupEnv(s.name)
	if !ok {
		return nil, fmt.Errorf("%s is not set: %w", s.Name(), ErrTokenEmpty)
	}
	tok, err := ParseToken([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	return NewCredential(tok, "", s.Name()), nil
}
