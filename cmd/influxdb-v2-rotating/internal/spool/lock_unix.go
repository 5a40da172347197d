//go:build unix

package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir/.lock, so that two processes never
// append to and acknowledge the same segments. The kernel releases it when
// the process dies, so a kill -9 leaves no stale lock.
func lockDir(dir string) (release func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool_dir %q: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("spool_dir %q is in use by another influxdb-v2-rotating process", dir)
		}
		return nil, fmt.Errorf("spool_dir %q: lock: %w", dir, err)
	}
	return func() { _ = f.Close() }, nil
}
