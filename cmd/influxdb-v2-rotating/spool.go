package main

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
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
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type spool struct {
	dir      string
	log      *slog.Logger
	segBytes int64

	mu      sync.Mutex
	cur     *os.File
	curSeq  int64
	curSize int64
	nextSeq int64
	// pending counts the lines of each segment not yet written to InfluxDB.
	pending map[int64]int
	unlock  func()
}

// openSpool opens (creating) dir and finds the segments left by an earlier run.
func openSpool(dir string, log *slog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool_dir %q: %w", dir, err)
	}
	release, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &spool{dir: dir, log: log, segBytes: defaultSegmentBytes, pending: make(map[int64]int), nextSeq: 1, unlock: release}
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

func (s *spool) segments() ([]int64, error) {
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

func (s *spool) path(seq int64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, spoolSuffix))
}

// replayStats says what a replay found.
type replayStats struct {
	Segments, Records, Corrupt int
	TornBytes                  int
}

// replay hands every intact record of the segments left by an earlier run
// to fn, oldest first. fn holds (see hold) the lines it buffers before
// buffering them, or returns false to stop. A segment whose lines are all
// written is removed.
func (s *spool) replay(fn func(seg int64, raw []byte) bool) (replayStats, error) {
	var st replayStats
	segs, err := s.segments()
	if err != nil {
		return st, err
	}
	for _, seq := range segs {
		if seq >= s.nextSeq {
			break
		}
		data, err := os.ReadFile(s.path(seq))
		if err != nil {
			return st, fmt.Errorf("spool_dir: reading segment: %w", err)
		}
		st.Segments++
		// Pin the segment while it is replayed, so that an early
		// acknowledgement cannot remove records not yet buffered.
		s.hold(seq, 1)
		recs, corrupt, torn := parseSegment(data)
		st.Corrupt += corrupt
		st.TornBytes += torn
		if corrupt > 0 || torn > 0 {
			s.log.Warn("spool segment damaged; replaying its intact records",
				"segment", filepath.Base(s.path(seq)), "corrupt_records", corrupt, "torn_bytes", torn)
		}
		for _, r := range recs {
			if !fn(seq, r) {
				// Stopped: the rest stays in the spool, and so does
				// this segment, still pinned.
				return st, nil
			}
			st.Records++
		}
		s.ack(map[int64]int{seq: 1})
	}
	return st, nil
}

// parseSegment splits a segment into its intact records' payloads.
func parseSegment(data []byte) (recs [][]byte, corrupt, torn int) {
	start := 0
	pos := 0
	for pos < len(data) {
		nl := bytes.IndexByte(data[pos:], '\n')
		if nl < 0 {
			break
		}
		line := data[pos : pos+nl]
		next := pos + nl + 1
		if rest, ok := bytes.CutPrefix(line, []byte(commitPrefix)); ok {
			payload := data[start:pos]
			if checkTrailer(rest, payload) {
				recs = append(recs, payload)
			} else {
				corrupt++
			}
			start = next
		}
		pos = next
	}
	return recs, corrupt, len(data) - start
}

func trailer(payload []byte) []byte {
	return fmt.Appendf(nil, "%slen=%d crc32c=%08x\n", commitPrefix, len(payload), crc32.Checksum(payload, crcTable))
}

// checkTrailer accepts only the exact trailer append writes for payload:
// length and checksum must match, and nothing else may differ.
func checkTrailer(rest, payload []byte) bool {
	want := trailer(payload)
	return bytes.Equal(rest, want[len(commitPrefix):len(want)-1])
}

// append writes one record and fsyncs it; n is its number of lines, held
// until acknowledged. It returns the record's segment.
func (s *spool) append(raw []byte, n int) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		if err := s.openSegment(); err != nil {
			return 0, err
		}
	}
	rec := make([]byte, 0, len(raw)+64)
	rec = append(rec, raw...)
	rec = append(rec, trailer(raw)...)
	if _, err := s.cur.Write(rec); err != nil {
		return 0, fmt.Errorf("spool_dir: writing %s: %w", s.cur.Name(), err)
	}
	if err := s.cur.Sync(); err != nil {
		return 0, fmt.Errorf("spool_dir: fsync %s: %w", s.cur.Name(), err)
	}
	seq := s.curSeq
	s.pending[seq] += n
	s.curSize += int64(len(rec))
	if s.curSize >= s.segBytes {
		// The next record starts a new segment; this one is removed once
		// its lines are written.
		_ = s.cur.Close()
		s.cur = nil
		if s.pending[seq] == 0 {
			s.remove(seq)
		}
	}
	return seq, nil
}

func (s *spool) openSegment() error {
	seq := s.nextSeq
	f, err := os.OpenFile(s.path(seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool_dir: %w", err)
	}
	// The new name must survive a crash too.
	_ = fsutil.SyncDir(s.dir)
	s.nextSeq++
	s.cur, s.curSeq, s.curSize = f, seq, 0
	return nil
}

func (s *spool) hold(seq int64, n int) {
	s.mu.Lock()
	s.pending[seq] += n
	s.mu.Unlock()
}

// ack records lines written (or dropped) per segment. A segment with
// nothing pending is removed, or truncated when it is the one being
// appended to.
func (s *spool) ack(segs map[int64]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for seq, n := range segs {
		s.pending[seq] -= n
		if s.pending[seq] > 0 {
			continue
		}
		if s.cur != nil && seq == s.curSeq {
			delete(s.pending, seq)
			if err := s.cur.Truncate(0); err != nil {
				s.log.Warn("spool: cannot truncate the acknowledged segment; it will be replayed", "error", err.Error())
				continue
			}
			s.curSize = 0
			continue
		}
		s.remove(seq)
	}
}

func (s *spool) remove(seq int64) {
	delete(s.pending, seq)
	if err := os.Remove(s.path(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("spool: cannot remove an acknowledged segment; it will be replayed", "error", err.Error())
	}
}

// pendingLines returns the number of lines held in the spool.
func (s *spool) pendingLines() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.pending {
		n += v
	}
	return n
}

func (s *spool) close() error {
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
