package controller

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/influxrotate/influxrotate/internal/fsutil"
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
	// key keys the chain (audit_key_file); nil for a plain chain.
	key []byte
	log *slog.Logger
	// stream is the stdout chain (same key), nil without audit_stdout.
	stream *rotation.AuditLog
}

// append appends recs in order, under one lock and one open of the log.
func (a *auditor) append(recs ...rotation.AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range recs {
		recs[i].ClientID = a.clientID
	}
	if a.path != "" {
		if err := a.appendFile(recs); err != nil {
			return err
		}
	}
	if a.stream != nil {
		return a.stream.AppendAll(recs...)
	}
	return nil
}

func (a *auditor) appendFile(recs []rotation.AuditRecord) error {
	if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
		return fmt.Errorf("audit_log: %w", err)
	}
	lock, err := fsutil.WaitLock(a.path + ".lock")
	if err != nil {
		return fmt.Errorf("audit_log lock: %w", err)
	}
	defer lock.Unlock() //nolint:errcheck // nothing was written through it
	l, err := rotation.OpenAuditLogWith(a.path, rotation.AuditOptions{Key: a.key})
	if err != nil {
		return err
	}
	if aside := l.Recovered(); aside != "" {
		a.log.Warn("audit_log ended in a torn record (a crash in the middle of an append); its bytes were moved aside and the recovery recorded",
			"path", a.path, "moved_to", aside)
	}
	if err := l.AppendAll(recs...); err != nil {
		_ = l.Close()
		return err
	}
	return l.Close()
}
