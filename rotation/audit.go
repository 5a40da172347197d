package rotation

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// AuditRecord is one line of the audit log. It holds fingerprints and
// authorization IDs, never a token.
type AuditRecord struct {
	// Seq numbers records from 1; Append sets it.
	Seq int64 `json:"seq"`
	// Time is set by Append when zero. Stored in UTC.
	Time time.Time `json:"time"`
	// Event names what happened, such as "startup", "probe", "promote",
	// "fallback", "write_refused" (Rotator) or "provision", "publish",
	// "deactivate" (controller).
	Event string `json:"event"`
	// Outcome is "ok", "failed" or a probe verdict.
	Outcome        string   `json:"outcome,omitempty"`
	ClientID       string   `json:"client_id,omitempty"`
	Credential     string   `json:"credential,omitempty"`
	RotationID     string   `json:"rotation_id,omitempty"`
	OldFingerprint string   `json:"old_fingerprint,omitempty"`
	NewFingerprint string   `json:"new_fingerprint,omitempty"`
	OldAuthID      string   `json:"old_auth_id,omitempty"`
	NewAuthID      string   `json:"new_auth_id,omitempty"`
	Targets        []string `json:"targets,omitempty"`
	Status         int      `json:"status,omitempty"`
	Message        string   `json:"message,omitempty"`
	// PrevHash is the previous record's Hash, "" for the first record.
	PrevHash string `json:"prev_hash"`
	// Hash is the hex SHA-256 of the record's JSON encoding without Hash.
	Hash string `json:"hash,omitempty"`
}

// canonical is the record's encoding with Hash empty (and so omitted), the
// bytes its hash covers. encoding/json writes struct fields in declaration
// order, so the encoding is deterministic.
func (r AuditRecord) canonical() ([]byte, error) {
	r.Hash = ""
	return json.Marshal(r)
}

func (r AuditRecord) computeHash() (string, error) {
	b, err := r.canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// AuditLog appends hash-chained records to a JSON-lines file. Each record
// carries the previous record's hash, so a modified, deleted, inserted or
// reordered record breaks the chain at that line (see VerifyAuditLog).
// Removing whole records from the end cannot be detected from the file
// alone: compare the last Seq with a copy kept elsewhere.
//
// One AuditLog per file: two processes appending to the same file would
// fork the chain. Safe for concurrent use within a process.
type AuditLog struct {
	path string
	mu   sync.Mutex
	f    *os.File
	// w is the stream of NewAuditStream, when there is no file.
	w    io.Writer
	seq  int64
	prev string
}

// NewAuditStream starts a new hash chain written to w, one JSON line per
// record (stdout, for a log collector, where a pod's files do not outlive
// it). Nothing is fsynced; VerifyAuditLog checks what w received. Safe for
// concurrent use; w sees whole lines.
func NewAuditStream(w io.Writer, name string) *AuditLog {
	return &AuditLog{path: name, w: w}
}

// OpenAuditLog opens or creates path (mode 0600) and continues the chain of
// the records already in it. A file whose last line is not a valid record
// (a torn write, an edit) is refused with an *AuditError rather than
// extended: move it aside to start a new chain.
func OpenAuditLog(path string) (*AuditLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &AuditLog{path: path, f: f}
	last, err := lastLine(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log %q: %w", path, err)
	}
	if last != nil {
		rec, err := parseRecord(last)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("audit log %q: last record: %w", path, err)
		}
		l.seq, l.prev = rec.Seq, rec.Hash
	}
	return l, nil
}

// lastLine returns the last line of f without reading the whole file, or
// nil for an empty file. A file not ending in a newline has a torn last
// record.
func lastLine(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size == 0 {
		return nil, nil
	}
	const chunk = 64 << 10
	var tail []byte
	for off := size; off > 0; {
		n := int64(chunk)
		if off < n {
			n = off
		}
		off -= n
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil {
			return nil, err
		}
		tail = append(buf, tail...)
		if tail[len(tail)-1] != '\n' {
			return nil, &AuditError{Line: -1, Reason: "last record is incomplete (no final newline)"}
		}
		if i := bytes.LastIndexByte(tail[:len(tail)-1], '\n'); i >= 0 {
			return tail[i+1 : len(tail)-1], nil
		}
		if len(tail) > 1<<20 {
			return nil, errors.New("last line longer than 1 MiB")
		}
	}
	return tail[:len(tail)-1], nil
}

// parseRecord decodes one line and checks that it is in canonical form and
// that its hash matches.
func parseRecord(line []byte) (AuditRecord, error) {
	var rec AuditRecord
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return rec, &AuditError{Reason: "not a record: " + err.Error()}
	}
	want, err := rec.computeHash()
	if err != nil {
		return rec, &AuditError{Seq: rec.Seq, Reason: err.Error()}
	}
	if rec.Hash != want {
		return rec, &AuditError{Seq: rec.Seq, Reason: "hash does not match the record (modified)"}
	}
	// Re-encoding must give the same bytes: otherwise something outside the
	// hashed fields (spacing, a duplicated key) was changed.
	again, _ := json.Marshal(rec)
	if !bytes.Equal(again, line) {
		return rec, &AuditError{Seq: rec.Seq, Reason: "record is not in canonical form (modified)"}
	}
	return rec, nil
}

// Append fills Seq, Time (when zero), PrevHash and Hash, writes the record
// as one line and fsyncs the file.
func (l *AuditLog) Append(rec AuditRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil && l.w == nil {
		return fmt.Errorf("audit log %q: closed", l.path)
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	// UTC and no monotonic reading, so that decoding and re-encoding the
	// time gives the same bytes.
	rec.Time = rec.Time.UTC().Round(0)
	rec.Seq = l.seq + 1
	rec.PrevHash = l.prev
	h, err := rec.computeHash()
	if err != nil {
		return fmt.Errorf("audit log %q: %w", l.path, err)
	}
	rec.Hash = h
	line, err := jsonLine(rec)
	if err != nil {
		return fmt.Errorf("audit log %q: %w", l.path, err)
	}
	if l.f == nil {
		if _, err := l.w.Write(line); err != nil {
			return fmt.Errorf("audit log %q: %w", l.path, err)
		}
		l.seq, l.prev = rec.Seq, rec.Hash
		return nil
	}
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("audit log %q: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit log %q: fsync: %w", l.path, err)
	}
	l.seq, l.prev = rec.Seq, rec.Hash
	return nil
}

// Close closes the file. Append fails afterwards.
func (l *AuditLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w = nil
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// AuditError describes the first line of an audit log that breaks the chain.
type AuditError struct {
	// Line is the 1-based line number, or -1 when unknown.
	Line int
	// Seq is the record's sequence number when it could be read.
	Seq    int64
	Reason string
}

func (e *AuditError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("audit log line %d: %s", e.Line, e.Reason)
	}
	return "audit log: " + e.Reason
}

// VerifyAuditLog reads a whole audit log and checks every record's hash,
// its link to the previous record and the sequence numbers. It returns the
// number of valid records and, at the first bad line, an *AuditError naming
// it: a modified record fails its own hash, a deleted or reordered one
// breaks the sequence and the link, a truncated last line fails to decode.
func VerifyAuditLog(r io.Reader) (records int, err error) {
	br := bufio.NewReader(r)
	prev := ""
	for line := 1; ; line++ {
		b, rerr := br.ReadBytes('\n')
		if len(b) == 0 && rerr == io.EOF {
			return records, nil
		}
		if rerr != nil && rerr != io.EOF {
			return records, rerr
		}
		if rerr == io.EOF {
			return records, &AuditError{Line: line, Reason: "last record is incomplete (no final newline)"}
		}
		rec, perr := parseRecord(b[:len(b)-1])
		if perr != nil {
			var ae *AuditError
			errors.As(perr, &ae)
			ae.Line = line
			return records, ae
		}
		if rec.Seq != int64(line) {
			return records, &AuditError{Line: line, Seq: rec.Seq,
				Reason: fmt.Sprintf("sequence %d where %d was expected (record deleted, inserted or reordered)", rec.Seq, line)}
		}
		if rec.PrevHash != prev {
			return records, &AuditError{Line: line, Seq: rec.Seq, Reason: "prev_hash does not match the previous record (chain broken)"}
		}
		prev = rec.Hash
		records++
	}
}

func jsonLine(rec AuditRecord) ([]byte, error) {
	b, err := json.Marshal(rec)
	return append(b, '\n'), err
}
