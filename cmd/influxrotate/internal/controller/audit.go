package controller

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

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

// append appends recs in order, under one lock and one open of the log.
func (a *auditor) append(recs ...rotation.AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
		return fmt.Errorf("audit_log: %w", err)
	}
	lf, err := os.OpenFile(a.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit_log lock: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("audit_log lock: %w", err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) //nolint:errcheck // released by close anyway
	l, err := rotation.OpenAuditLog(a.path)
	if err != nil {
		return err
	}
	for i := range recs {
		recs[i].ClientID = a.clientID
	}
	if err := l.AppendAll(recs...); err != nil {
		_ = l.Close()
		return err
	}
	return l.Close()
}
