// Package spool is the execd binary's write-ahead log: what is read from
// stdin is fsynced here before it is buffered, replayed at start, and
// removed once InfluxDB has it.
package spool

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/influxrotate/influxrotate/internal/fsutil"
)

// The spool is a write-ahead log of what was read from stdin. Segments are
// plain line protocol files; each record (the valid lines of one read) is
// closed by a comment line carrying its length and CRC-32C, so a segment can
// be inspected, or even posted, by hand. A record without its trailer (a
// write torn by a crash) or with a wrong checksum is skipped, never the
// records after it.
const (
	spoolSuffix  = ".lp"
	commitPrefix = "#influxrotate-spool-commit "
	// defaultSegmentBytes starts a new segment once the current one is this
	// large, so acknowledged data is removed in reasonable steps.
	defaultSegmentBytes = 8 << 20
	// MaxRecordBytes bounds one record (one read of stdin: at most
	// readSize bytes and the partial line before them, up to
	// -max-line-bytes), and so the memory a replay holds.
	MaxRecordBytes = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// segmentFile is what the spool needs of an open segment; tests wrap an
// *os.File to fail part-way through a write, as a full disk does.
type segmentFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
	Name() string
}

// Spool is the on-disk write-ahead log of what the binary read.
type Spool struct {
	dir      string
	log      *slog.Logger
	segBytes int64
	// maxRecord bounds a record, with its trailer (MaxRecordBytes
	// outside tests).
	maxRecord int
	// create opens a new segment file (os.OpenFile outside tests).
	create func(path string) (segmentFile, error)

	mu  sync.Mutex
	cur segmentFile
	// curSize is the length of the intact records in cur: the offset a
	// failed append truncates back to.
	curSize int64
	curSeq  int64
	nextSeq int64
	// broken is set when a failed append could not be truncated away: the
	// segment ends in a torn record, and a record appended after it would
	// be read back as part of it (and lost), so appends are refused until
	// the segment is emptied by an acknowledgement.
	broken error
	// unacked counts the lines of each segment not yet written to InfluxDB.
	unacked map[int64]int
	unlock  func()
}

// Open opens (creating) dir and finds the segments left by an earlier run.
func Open(dir string, log *slog.Logger) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool_dir %q: %w", dir, err)
	}
	release, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, log: log, segBytes: defaultSegmentBytes, maxRecord: MaxRecordBytes, create: createSegment,
		unacked: make(map[int64]int), nextSeq: 1, unlock: release}
	segs, err := s.segments()
	if err != nil {
		release()
		return nil, err
	}
	if len(segs) > 0 {
		s.nextSeq = segs[len(segs)-1] + 1
	}
	return s, nil
}

// lockDir takes an exclusive lock on dir/.lock, so that two processes never
// append to and acknowledge the same segments.
func lockDir(dir string) (release func(), err error) {
	l, err := fsutil.TryLock(filepath.Join(dir, ".lock"))
	switch {
	case errors.Is(err, fsutil.ErrLocked):
		return nil, fmt.Errorf("spool_dir %q is in use by another influxdb-v2-rotating process", dir)
	case err != nil:
		return nil, fmt.Errorf("spool_dir %q: %w", dir, err)
	}
	return func() { _ = l.Unlock() }, nil
}

func (s *Spool) segments() ([]int64, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool_dir %q: %w", s.dir, err)
	}
	var segs []int64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), spoolSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if seq, err := strconv.ParseInt(name, 10, 64); err == nil && seq > 0 {
			segs = append(segs, seq)
		}
	}
	slices.Sort(segs)
	return segs, nil
}

func (s *Spool) path(seq int64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, spoolSuffix))
}

// ReplayStats says what a replay found.
type ReplayStats struct {
	Segments, Records, Corrupt int
	// Oversized counts the corrupt records skipped for being longer than
	// any record append writes.
	Oversized int
	TornBytes int
}

// Replay hands every intact record of the segments left by an earlier run
// to fn, oldest first. fn holds (see hold) the lines it buffers before
// buffering them, or returns false to stop. A segment whose lines are all
// written is removed. Segments are read record by record: at most one
// record (maxRecord bytes) is held, whatever the size of the file.
func (s *Spool) Replay(fn func(seg int64, raw []byte) bool) (ReplayStats, error) {
	var st ReplayStats
	segs, err := s.segments()
	if err != nil {
		return st, err
	}
	for _, seq := range segs {
		if seq >= s.nextSeq {
			break
		}
		f, err := os.Open(s.path(seq))
		if err != nil {
			return st, fmt.Errorf("spool_dir: reading segment: %w", err)
		}
		st.Segments++
		// Pin the segment while it is replayed, so that an early
		// acknowledgement cannot remove records not yet buffered.
		s.Hold(seq, 1)
		ss, err := scanSegment(f, s.maxRecord, func(payload []byte) bool {
			if !fn(seq, payload) {
				return false
			}
			st.Records++
			return true
		})
		_ = f.Close()
		st.Corrupt += ss.corrupt
		st.Oversized += ss.oversized
		st.TornBytes += ss.torn
		if err != nil {
			return st, fmt.Errorf("spool_dir: reading segment %s: %w", filepath.Base(s.path(seq)), err)
		}
		if ss.corrupt > 0 || ss.torn > 0 {
			s.log.Warn("spool segment damaged; replayed its intact records",
				"segment", filepath.Base(s.path(seq)), "corrupt_records", ss.corrupt, "torn_bytes", ss.torn)
		}
		if ss.oversized > 0 {
			s.log.Warn("spool segment holds records longer than any the spool writes; skipped them as corrupt",
				"segment", filepath.Base(s.path(seq)), "records", ss.oversized, "max_record_bytes", s.maxRecord)
		}
		if ss.stopped {
			// Stopped: the rest stays in the spool, and so does this
			// segment, still pinned.
			return st, nil
		}
		s.Ack(map[int64]int{seq: 1})
	}
	return st, nil
}

// Append writes one record and fsyncs it; n is its number of lines, held
// until acknowledged. It returns the record's segment. A write or fsync
// that fails (part-way, as on a full disk) is truncated back to the end of
// the last intact record, so the next record does not follow a torn one.
func (s *Spool) Append(raw []byte, n int) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return 0, s.broken
	}
	if s.cur == nil {
		if err := s.openSegment(); err != nil {
			return 0, err
		}
	}
	rec := make([]byte, 0, len(raw)+64)
	rec = append(rec, raw...)
	rec = append(rec, trailer(raw)...)
	if len(rec) > s.maxRecord {
		// Replay would skip it: refuse it now, the lines stay in memory.
		return 0, fmt.Errorf("spool_dir: a record of %d bytes is longer than the %d-byte limit", len(rec), s.maxRecord)
	}
	if _, err := s.cur.Write(rec); err != nil {
		return 0, s.undo(fmt.Errorf("spool_dir: writing %s: %w", s.cur.Name(), err))
	}
	if err := s.cur.Sync(); err != nil {
		// What reached the disk is unknown: remove the record, the caller
		// keeps its lines in memory.
		return 0, s.undo(fmt.Errorf("spool_dir: fsync %s: %w", s.cur.Name(), err))
	}
	seq := s.curSeq
	s.unacked[seq] += n
	s.curSize += int64(len(rec))
	if s.curSize >= s.segBytes {
		// The next record starts a new segment; this one is removed once
		// its lines are written.
		_ = s.cur.Close()
		s.cur = nil
		if s.unacked[seq] == 0 {
			s.remove(seq)
		}
	}
	return seq, nil
}

// undo truncates the current segment back to its last intact record after
// a failed append, and returns the append's error. When even that fails,
// the spool refuses further appends (see broken).
func (s *Spool) undo(appendErr error) error {
	err := s.cur.Truncate(s.curSize)
	if err == nil {
		err = s.cur.Sync()
	}
	if err != nil {
		s.broken = fmt.Errorf("spool_dir: %s ends in a torn record that could not be removed (%v); "+
			"refusing further appends so that no record follows it (metrics stay in memory)", s.cur.Name(), err)
		return fmt.Errorf("%w; %w", appendErr, s.broken)
	}
	return appendErr
}

func createSegment(path string) (segmentFile, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o600)
}

func (s *Spool) openSegment() error {
	seq := s.nextSeq
	f, err := s.create(s.path(seq))
	if err != nil {
		return fmt.Errorf("spool_dir: %w", err)
	}
	// The new name must survive a crash too.
	_ = fsutil.SyncDir(s.dir)
	s.nextSeq++
	s.cur, s.curSeq, s.curSize = f, seq, 0
	return nil
}

// Hold counts n lines of segment seq as unacknowledged: a replay holds
// the lines it buffers, as Append does for new ones.
func (s *Spool) Hold(seq int64, n int) {
	s.mu.Lock()
	s.unacked[seq] += n
	s.mu.Unlock()
}

// Ack records lines written (or dropped) per segment. A segment with
// nothing unacknowledged is removed, or truncated when it is the one being
// appended to.
func (s *Spool) Ack(segs map[int64]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for seq, n := range segs {
		s.unacked[seq] -= n
		if s.unacked[seq] > 0 {
			continue
		}
		if s.cur != nil && seq == s.curSeq {
			delete(s.unacked, seq)
			if err := s.cur.Truncate(0); err != nil {
				s.log.Warn("spool: cannot truncate the acknowledged segment; it will be replayed", "error", err.Error())
				continue
			}
			s.curSize = 0
			if s.broken != nil {
				// The torn record went with the rest.
				s.broken = nil
				s.log.Info("spool: the segment with a torn record is empty again; appending resumes")
			}
			continue
		}
		s.remove(seq)
	}
}

func (s *Spool) remove(seq int64) {
	delete(s.unacked, seq)
	if err := os.Remove(s.path(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("spool: cannot remove an acknowledged segment; it will be replayed", "error", err.Error())
	}
}

// Unacked returns the number of lines held in the spool and not yet
// acknowledged.
func (s *Spool) Unacked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.unacked {
		n += v
	}
	return n
}

// Close closes the current segment and releases the directory lock.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.cur != nil {
		err = s.cur.Close()
		s.cur = nil
	}
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
	return err
}
