package controller

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/influxrotate/influxrotate/rotation"
)

// auditor appends to the shared hash-chained audit log and, with
// audit_stdout, to a chain of this process on stdout. The file is opened
// for each record under an flock, so that two controllers (say the daemon
// and an operator's rollback) extend one chain instead of forking it.
type auditor struct {
	mu       sync.Mutex
	path     string
	clientID string
	// stream is the stdout chain, nil without audit_stdout.
	stream *rotation.AuditLog
}

func newAuditor(path, clientID string, stdout io.Writer) *auditor {
	a := &auditor{path: path, clientID: clientID}
	if stdout != nil {
		a.stream = rotation.NewAuditStream(stdout, "stdout")
	}
	return a
}

func (a *auditor) append(rec rotation.AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec.ClientID = a.clientID
	if a.path != "" {
		if err := a.appendFile(rec); err != nil {
			return err
		}
	}
	if a.stream != nil {
		return a.stream.Append(rec)
	}
	return nil
}

func (a *auditor) appendFile(rec rotation.AuditRecord) error {
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
	if err := l.Append(rec); err != nil {
		_ = l.Close()
		return err
	}
	return l.Close()
}
