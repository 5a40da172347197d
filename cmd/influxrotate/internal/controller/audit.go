package controller

import (
	"fmt"
	"log/slog"
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
	// key keys the chain (audit_key_file); nil for a plain chain.
	key []byte
	log *slog.Logger
}

func (a *auditor) append(rec rotation.AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec.ClientID = a.clientID
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
	l, err := rotation.OpenAuditLogWith(a.path, rotation.AuditOptions{Key: a.key})
	if err != nil {
		return err
	}
	if aside := l.Recovered(); aside != "" {
		a.log.Warn("audit_log ended in a torn record (a crash in the middle of an append); its bytes were moved aside and the recovery recorded",
			"path", a.path, "moved_to", aside)
	}
	if err := l.Append(rec); err != nil {
		_ = l.Close()
		return err
	}
	return l.Close()
}
