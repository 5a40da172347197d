//go:build unix

package fsutil

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked is returned by TryLock when another open file holds the lock.
var ErrLocked = errors.New("locked by another process")

// Lock is a held exclusive flock on a lock file. The kernel releases it
// when the process dies, even by kill -9, so a crash never leaves it stale.
type Lock struct{ f *os.File }

// TryLock opens path (creating it, mode 0600) and takes its lock without
// waiting. When the lock is held elsewhere the error wraps ErrLocked.
func TryLock(path string) (*Lock, error) {
	return lock(path, syscall.LOCK_EX|syscall.LOCK_NB)
}

// WaitLock opens path (creating it, mode 0600) and waits for its lock.
func WaitLock(path string) (*Lock, error) {
	return lock(path, syscall.LOCK_EX)
}

func lock(path string, how int) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// File is the open lock file, for a holder to note its pid in. The lock,
// not the content, is what excludes.
func (l *Lock) File() *os.File { return l.f }

// Unlock releases the lock and closes the file. It may be called more than
// once, and on a nil Lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN) // released by the close anyway
	err := l.f.Close()
	l.f = nil
	return err
}
