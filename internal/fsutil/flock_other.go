//go:build !unix

package fsutil

import (
	"errors"
	"os"
)

// ErrLocked is returned by TryLock when another open file holds the lock.
var ErrLocked = errors.New("locked by another process")

// Lock stands for a lock where flock is unavailable: it opens the lock file
// but excludes nobody, so run one process per lock there.
type Lock struct{ f *os.File }

// TryLock opens path; it never reports ErrLocked here.
func TryLock(path string) (*Lock, error) { return WaitLock(path) }

// WaitLock opens path; it never waits here.
func WaitLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &Lock{f: f}, nil
}

// File is the open lock file.
func (l *Lock) File() *os.File { return l.f }

// Unlock closes the lock file. It may be called more than once.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
