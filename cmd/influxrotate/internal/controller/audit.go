package controller

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/influxrotate/influxrotate/internal/fsutil"
	"github.com/influxrotate/influxrotate/rotation"
)

// auditor appends to the shared hash-chained audit log. The file is opened
// for each record under an flock, so that two controllers (say the daemon
// and an operator's rollback) extend one chain instead of forking it.
type auditor struct {
	mu       sync.Mutex
	path     string
	clientID string
}

func (a *auditor) append(rec rotation.AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec.ClientID = a.clientID
	if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
		return fmt.Errorf("audit_log: %w", err)
	}
	lock, err := fsutil.WaitLock(a.path + ".lock")
	if err != nil {
		return fmt.Errorf("audit_log lock: %w", err)
	}
	defer lock.Unlock() //nolint:errcheck // nothing was written through it
	l, err := rotation.OpenAuditLog(a.path)
	if err != nil {
		return err
	}
	if err := l.Append(rec); err != nil {
		_ = l.Close()
		return err
	}
	return l.Close()
}
