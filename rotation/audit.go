package rotation

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/influxrotate/influxrotate/internal/fsutil"
)

// AuditRecord is one line of the audit log. It holds fingerprints and
// authorization IDs, never a token.
type AuditRecord struct {
	// Seq numbers records from 1; Append sets it.
	Seq int64 `json:"seq"`
	// Time is set by Append when zero. Stored in UTC.
	Time time.Time `json:"time"`
	// Event names what happened, such as "startup", "probe", "promote",
	// "fallback", "write_refused" (Rotator), "provision", "publish",
	// "deactivate" (controller) or EventAuditRecovered (OpenAuditLog).
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
	// Chain is ChainHMAC for a record of a keyed chain, "" for a plain
	// SHA-256 chain (so the records written before keys existed keep
	// their bytes).
	Chain string `json:"chain,omitempty"`
	// PrevHash is the previous record's Hash, "" for the first record.
	PrevHash string `json:"prev_hash"`
	// Hash is the hex SHA-256 of the record's JSON encoding without Hash,
	// or its HMAC-SHA256 under the audit key in a keyed chain.
	Hash string `json:"hash,omitempty"`
}

// EventAuditRecovered is the event OpenAuditLog records when it moved a
// torn last line aside.
const EventAuditRecovered = "audit_recovered"

// ChainHMAC marks the records of a keyed chain.
const ChainHMAC = "hmac-sha256"

// DefaultAuditMaxLine bounds one record of the audit log: Append refuses a
// longer one, and reading stops with an error at one, so a damaged or
// hostile file never makes a reader hold more than this.
const DefaultAuditMaxLine = 1 << 20

// MinAuditKeyLength is the shortest audit key accepted, in characters:
// 32 hex digits are 128 bits.
const MinAuditKeyLength = 32

// AuditOptions select how an audit log is chained and read.
type AuditOptions struct {
	// Key, when set, makes the chain keyed: each record's Hash is an
	// HMAC-SHA256 under Key, so that only a holder of the key can write a
	// chain that verifies. Without it anyone who can rewrite the whole
	// file can rebuild a valid chain. See ReadAuditKeyFile.
	Key []byte
	// MaxLineBytes bounds one record (DefaultAuditMaxLine when 0).
	MaxLineBytes int
}

func (o AuditOptions) maxLine() int {
	if o.MaxLineBytes > 0 {
		return o.MaxLineBytes
	}
	return DefaultAuditMaxLine
}

// ReadAuditKeyFile reads an audit chain key from a file with the project's
// token-file reader, ReadTokenFile (a regular file only, bounded, one
// printable line, surrounding white space removed). Every deliverable reads
// its key through here. Errors name the file, never the key.
func ReadAuditKeyFile(path string) ([]byte, error) {
	key, err := ReadTokenFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file %q: %w", path, err)
	}
	if len(key) < MinAuditKeyLength {
		return nil, fmt.Errorf("key file %q: the key is shorter than %d characters (generate one with: openssl rand -hex 32)",
			path, MinAuditKeyLength)
	}
	return []byte(key), nil
}

// canonical is the record's encoding with Hash empty (and so omitted), the
// bytes its hash covers. encoding/json writes struct fields in declaration
// order, so the encoding is deterministic.
func (r AuditRecord) canonical() ([]byte, error) {
	r.Hash = ""
	return json.Marshal(r)
}

// computeHash hashes the record as its Chain says: HMAC-SHA256 under key
// for a keyed record, SHA-256 otherwise.
func (r AuditRecord) computeHash(key []byte) (string, error) {
	b, err := r.canonical()
	if err != nil {
		return "", err
	}
	if r.Chain == ChainHMAC {
		m := hmac.New(sha256.New, key)
		m.Write(b)
		return hex.EncodeToString(m.Sum(nil)), nil
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// AuditLog appends hash-chained records to a JSON-lines file. Each record
// carries the previous record's hash, so a modified, deleted, inserted or
// reordered record breaks the chain at that line (see VerifyAuditLog).
//
// The plain chain (SHA-256) detects tampering by anyone who cannot rewrite
// the whole file: whoever can may recompute every hash after a change, and
// the rebuilt chain verifies. A keyed chain (AuditOptions.Key, HMAC-SHA256)
// cannot be rebuilt without the key. Neither can show that whole records
// were removed from the end: compare the last Seq with a copy kept
// elsewhere.
//
// One AuditLog per file: two processes appending to the same file would
// fork the chain. Safe for concurrent use within a process.
type AuditLog struct {
	path      string
	key       []byte
	maxLine   int
	recovered string
	mu        sync.Mutex
	f         *os.File
	// w is the stream of NewAuditStream, when there is no file.
	w    io.Writer
	seq  int64
	prev string
}

// NewAuditStream starts a new chain (keyed with opts.Key) written to w, one
// JSON line per record (stdout, for a log collector, where a pod's files
// do not outlive it). Nothing is fsynced; VerifyAuditLog(With) checks what
// w received. Safe for concurrent use; w sees whole lines.
func NewAuditStream(w io.Writer, name string, opts AuditOptions) *AuditLog {
	return &AuditLog{path: name, w: w, key: opts.Key, maxLine: opts.maxLine()}
}

// OpenAuditLog opens or creates path (mode 0600) with a plain SHA-256
// chain; see OpenAuditLogWith.
func OpenAuditLog(path string) (*AuditLog, error) {
	return OpenAuditLogWith(path, AuditOptions{})
}

// OpenAuditLogWith opens or creates path (mode 0600) and continues the
// chain of the records already in it.
//
// A last line without its newline is what a crash in the middle of an
// append leaves: its bytes are moved to "<path>.torn-<UTC time>", the file
// is cut after the last complete record, and an EventAuditRecovered record
// naming the moved bytes continues the chain (see Recovered). A last
// complete line that is not a valid record (an edit), a record of the
// other kind of chain (keyed or not) or one under another key is refused
// with an *AuditError rather than extended: move the file aside to start a
// new chain.
func OpenAuditLogWith(path string, opts AuditOptions) (*AuditLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &AuditLog{path: path, f: f, key: opts.Key, maxLine: opts.maxLine()}
	fail := func(err error) (*AuditLog, error) {
		f.Close()
		return nil, fmt.Errorf("audit log %q: %w", path, err)
	}
	last, end, err := lastLine(f, l.maxLine)
	if err != nil {
		return fail(err)
	}
	if last != nil {
		rec, err := parseRecord(last, l.key)
		if err != nil {
			return fail(fmt.Errorf("last record: %w", err))
		}
		l.seq, l.prev = rec.Seq, rec.Hash
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if torn := st.Size() - end; torn > 0 {
		aside, err := moveTornTail(f, path, end, st.Size())
		if err != nil {
			return fail(fmt.Errorf("moving the torn last record aside: %w", err))
		}
		l.recovered = aside
		if err := l.Append(AuditRecord{Event: EventAuditRecovered, Outcome: "ok",
			Message: fmt.Sprintf("the last record was torn (%d bytes without a final newline, as a crash in the middle of an append leaves); its bytes were moved to %s",
				torn, filepath.Base(aside))}); err != nil {
			f.Close()
			return nil, err
		}
	}
	return l, nil
}

// Recovered returns the file the torn last line was moved to when the log
// was opened, or "".
func (l *AuditLog) Recovered() string { return l.recovered }

// moveTornTail copies f's bytes from end to size into a new file next to
// path, makes that durable, and only then cuts f at end.
func moveTornTail(f *os.File, path string, end, size int64) (string, error) {
	torn := make([]byte, size-end)
	if _, err := f.ReadAt(torn, end); err != nil {
		return "", err
	}
	aside := path + ".torn-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	af, err := os.OpenFile(aside, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = af.Write(torn)
	if err == nil {
		err = af.Sync()
	}
	if cerr := af.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsutil.SyncDir(filepath.Dir(path))
	}
	if err == nil {
		err = f.Truncate(end)
	}
	if err == nil {
		err = f.Sync()
	}
	return aside, err
}

// lastLine returns the last complete line of f (without its newline, nil
// when there is none) and end, the offset just after it. Bytes after end
// are a torn line without its newline. It reads no more than a line of
// maxLine bytes from the end, not the whole file.
func lastLine(f *os.File, maxLine int) (line []byte, end int64, err error) {
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	end = st.Size()
	if end == 0 {
		return nil, 0, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], end-1); err != nil {
		return nil, 0, err
	}
	if last[0] != '\n' {
		nl, err := lastNewline(f, end, maxLine)
		if err != nil {
			return nil, 0, fmt.Errorf("torn last line: %w", err)
		}
		end = nl + 1
		if end == 0 {
			return nil, 0, nil
		}
	}
	nl, err := lastNewline(f, end-1, maxLine)
	if err != nil {
		return nil, 0, err
	}
	line = make([]byte, end-1-(nl+1))
	if _, err := f.ReadAt(line, nl+1); err != nil {
		return nil, 0, err
	}
	return line, end, nil
}

// lastNewline returns the offset of the last newline before before, or -1
// when the file has none there; it fails when none is within maxLine bytes.
func lastNewline(f *os.File, before int64, maxLine int) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for off := before; off > 0; {
		if before-off > int64(maxLine) {
			return 0, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		n := min(int64(chunk), off)
		off -= n
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			if before-(off+int64(i)+1) > int64(maxLine) {
				return 0, fmt.Errorf("line longer than %d bytes", maxLine)
			}
			return off + int64(i), nil
		}
	}
	if before > int64(maxLine) {
		return 0, fmt.Errorf("line longer than %d bytes", maxLine)
	}
	return -1, nil
}

// parseRecord decodes one line and checks that it is in canonical form,
// that it belongs to the kind of chain key selects (keyed or not) and that
// its hash matches.
func parseRecord(line, key []byte) (AuditRecord, error) {
	var rec AuditRecord
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return rec, &AuditError{Reason: "not a record: " + err.Error()}
	}
	switch {
	case rec.Chain != "" && rec.Chain != ChainHMAC:
		return rec, &AuditError{Seq: rec.Seq, Reason: fmt.Sprintf("unknown chain %q", rec.Chain)}
	case rec.Chain == ChainHMAC && key == nil:
		return rec, &AuditError{Seq: rec.Seq, Reason: "the record is keyed (hmac-sha256): verifying it needs the audit key file"}
	case rec.Chain == "" && key != nil:
		return rec, &AuditError{Seq: rec.Seq,
			Reason: "the record is not keyed, but a key was given: it was written without the key (move the file aside to start a keyed chain), or rewritten by someone who does not have it"}
	}
	want, err := rec.computeHash(key)
	if err != nil {
		return rec, &AuditError{Seq: rec.Seq, Reason: err.Error()}
	}
	if !hmac.Equal([]byte(rec.Hash), []byte(want)) {
		reason := "hash does not match the record (modified)"
		if key != nil {
			reason = "hash does not match the record (modified, or written under another key)"
		}
		return rec, &AuditError{Seq: rec.Seq, Reason: reason}
	}
	// Re-encoding must give the same bytes: otherwise something outside the
	// hashed fields (spacing, a duplicated key) was changed.
	again, _ := json.Marshal(rec)
	if !bytes.Equal(again, line) {
		return rec, &AuditError{Seq: rec.Seq, Reason: "record is not in canonical form (modified)"}
	}
	return rec, nil
}

// Append fills Seq, Time (when zero), Chain, PrevHash and Hash, writes the
// record as one line and fsyncs the file.
func (l *AuditLog) Append(rec AuditRecord) error { return l.AppendAll(rec) }

// AppendAll appends recs as Append does, in order, with one write and one
// fsync: a controller records a fleet of hundreds of writers at once.
func (l *AuditLog) AppendAll(recs ...AuditRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil && l.w == nil {
		return fmt.Errorf("audit log %q: closed", l.path)
	}
	seq, prev := l.seq, l.prev
	var lines []byte
	for _, rec := range recs {
		if rec.Time.IsZero() {
			rec.Time = time.Now()
		}
		// UTC and no monotonic reading, so that decoding and re-encoding the
		// time gives the same bytes.
		rec.Time = rec.Time.UTC().Round(0)
		seq++
		rec.Seq = seq
		rec.PrevHash = prev
		rec.Chain = ""
		if l.key != nil {
			rec.Chain = ChainHMAC
		}
		h, err := rec.computeHash(l.key)
		if err != nil {
			return fmt.Errorf("audit log %q: %w", l.path, err)
		}
		rec.Hash = h
		line, err := jsonLine(rec)
		if err != nil {
			return fmt.Errorf("audit log %q: %w", l.path, err)
		}
		if len(line)-1 > l.maxLine {
			return fmt.Errorf("audit log %q: record %q of %d bytes is longer than the %d-byte limit", l.path, rec.Event, len(line)-1, l.maxLine)
		}
		lines = append(lines, line...)
		prev = rec.Hash
	}
	if l.f == nil {
		if _, err := l.w.Write(lines); err != nil {
			return fmt.Errorf("audit log %q: %w", l.path, err)
		}
		l.seq, l.prev = seq, prev
		return nil
	}
	if _, err := l.f.Write(lines); err != nil {
		return fmt.Errorf("audit log %q: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit log %q: fsync: %w", l.path, err)
	}
	l.seq, l.prev = seq, prev
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

// AuditSummary is what VerifyAuditLogWith found in a valid log.
type AuditSummary struct {
	Records int
	// Keyed is set when the records were verified under a key.
	Keyed bool
	// Recoveries are the EventAuditRecovered records: a torn last line was
	// moved aside there, which an operator should know about.
	Recoveries []AuditRecord
}

// VerifyAuditLog verifies a plain (unkeyed) audit log; see
// VerifyAuditLogWith.
func VerifyAuditLog(r io.Reader) (records int, err error) {
	sum, err := VerifyAuditLogWith(r, AuditOptions{})
	return sum.Records, err
}

// VerifyAuditLogWith reads an audit log line by line, holding one record
// at a time, and checks every record's hash (under opts.Key when set: then
// every record must be keyed), its link to the previous record and the
// sequence numbers. It returns what the valid records hold and, at the
// first bad line, an *AuditError naming it: a modified record fails its
// own hash, a deleted or reordered one breaks the sequence and the link, a
// truncated last line fails to decode, a line over opts.MaxLineBytes is
// refused as such.
func VerifyAuditLogWith(r io.Reader, opts AuditOptions) (AuditSummary, error) {
	maxLine := opts.maxLine()
	// One byte more than a line: the newline.
	br := bufio.NewReaderSize(r, maxLine+1)
	sum := AuditSummary{Keyed: opts.Key != nil}
	prev := ""
	for line := 1; ; line++ {
		b, rerr := br.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			return sum, &AuditError{Line: line, Reason: fmt.Sprintf("line is longer than %d bytes", maxLine)}
		}
		if len(b) == 0 && rerr == io.EOF {
			return sum, nil
		}
		if rerr != nil && rerr != io.EOF {
			return sum, rerr
		}
		if rerr == io.EOF {
			return sum, &AuditError{Line: line, Reason: "last record is incomplete (no final newline)"}
		}
		rec, perr := parseRecord(b[:len(b)-1], opts.Key)
		if perr != nil {
			var ae *AuditError
			errors.As(perr, &ae)
			ae.Line = line
			return sum, ae
		}
		if rec.Seq != int64(line) {
			return sum, &AuditError{Line: line, Seq: rec.Seq,
				Reason: fmt.Sprintf("sequence %d where %d was expected (record deleted, inserted or reordered)", rec.Seq, line)}
		}
		if rec.PrevHash != prev {
			return sum, &AuditError{Line: line, Seq: rec.Seq, Reason: "prev_hash does not match the previous record (chain broken)"}
		}
		prev = rec.Hash
		sum.Records++
		if rec.Event == EventAuditRecovered {
			sum.Recoveries = append(sum.Recoveries, rec)
		}
	}
}

func jsonLine(rec AuditRecord) ([]byte, error) {
	b, err := json.Marshal(rec)
	return append(b, '\n'), err
}
