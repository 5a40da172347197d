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

// StaticSource is a token given in the configuration. It never changes.
type StaticSource struct {
	cred    *Credential
	changes chan *Credential
	once    sync.Once
}

// NewStaticSource validates token with ParseToken. The error never contains
// the token.
func NewStaticSource(token string) (*StaticSource, error) {
	tok, err := ParseToken([]byte(token))
	if err != nil {
		return nil, fmt.Errorf("static token: %w", err)
	}
	return &StaticSource{
		cred:    NewCredential(tok, "", "static token"),
		changes: make(chan *Credential),
	}, nil
}

// Name returns "static token".
func (s *StaticSource) Name() string { return "static token" }

// Read returns the configured token.
func (s *StaticSource) Read(context.Context) (*Credential, error) { return s.cred, nil }

// Changes never delivers: a static token does not change. It is closed by Close.
func (s *StaticSource) Changes() <-chan *Credential { return s.changes }

// Close closes Changes.
func (s *StaticSource) Close() error {
	s.once.Do(func() { close(s.changes) })
	return nil
}

// EnvSource reads a token from an environment variable on every Read.
// A process's environment does not change from outside, so Changes never
// delivers; Rotator.Reload or a refused write (which calls Read) picks up a
// value set with os.Setenv.
type EnvSource struct {
	name    string
	changes chan *Credential
	once    sync.Once
}

// NewEnvSource returns a source for the variable name. The variable need not
// be set yet.
func NewEnvSource(name string) (*EnvSource, error) {
	if name == "" {
		return nil, errors.New("token environment variable: name is empty")
	}
	return &EnvSource{name: name, changes: make(chan *Credential)}, nil
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

// Changes never delivers, see EnvSource. It is closed by Close.
func (s *EnvSource) Changes() <-chan *Credential { return s.changes }

// Close closes Changes.
func (s *EnvSource) Close() error {
	s.once.Do(func() { close(s.changes) })
	return nil
}
