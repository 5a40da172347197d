package rotation

import (
	"context"
	"log/slog"
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
