package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// replayAll reads every record of a spool in dir.
func replayAll(t *testing.T, dir string) ([]string, ReplayStats, *Spool) {
	t.Helper()
	s, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	var recs []string
	st, err := s.Replay(func(seg int64, raw []byte) bool {
		recs = append(recs, string(raw))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs, st, s
}

func TestSpoolReplaysWhatWasAppended(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	s.segBytes = 40 // a few records per segment
	want := []string{"a v=1 1\n", "a v=2 2\nb v=3 3\n", "c v=4 4\n", "d v=5 5\n"}
	for _, r := range want {
		if _, err := s.Append([]byte(r), strings.Count(r, "\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := s.segments()
	if len(segs) < 2 {
		t.Fatalf("expected several segments, got %v", segs)
	}
	got, st, _ := replayAll(t, dir)
	if !slices.Equal(got, want) {
		t.Fatalf("replayed %q, want %q", got, want)
	}
	if st.Corrupt != 0 || st.TornBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Nothing was held by the replay callback, so every segment is gone.
	if segs, _ := (&Spool{dir: dir}).segments(); len(segs) != 0 {
		t.Fatalf("segments left after a replay that buffered nothing: %v", segs)
	}
}

func TestSpoolTornAndCorruptRecordsDoNotStopReplay(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, discard())
	for _, r := range []string{"a v=1 1\n", "b v=2 2\n", "c v=3 3\n"} {
		if _, err := s.Append([]byte(r), 1); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	first := s.path(1)
	data, _ := os.ReadFile(first)
	// Flip a byte inside the second record's payload: its checksum fails.
	i := strings.Index(string(data), "b v=2")
	data[i+2] = 'X'
	// And a torn record at the end, as a crash in the middle of a write leaves.
	data = append(data, "d v=4 4\ne v="...)
	if err := os.WriteFile(first, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// A later segment must still be replayed.
	if err := os.WriteFile(s.path(2), append([]byte("f v=6 6\n"), trailer([]byte("f v=6 6\n"))...), 0o600); err != nil {
		t.Fatal(err)
	}
	got, st, _ := replayAll(t, dir)
	want := []string{"a v=1 1\n", "c v=3 3\n", "f v=6 6\n"}
	if !slices.Equal(got, want) {
		t.Fatalf("replayed %q, want %q", got, want)
	}
	if st.Corrupt != 1 || st.TornBytes != len("d v=4 4\ne v=") {
		t.Fatalf("stats %+v", st)
	}
}

func TestSpoolAckRemovesAndTruncates(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, discard())
	s.segBytes = 20
	seg1, _ := s.Append([]byte("a v=1 1\nb v=2 2\n"), 2) // fills segment 1
	s.segBytes = 1 << 20
	seg2, _ := s.Append([]byte("c v=3 3\n"), 1)
	if seg1 == seg2 {
		t.Fatal("segment did not rotate")
	}
	s.Ack(map[int64]int{seg1: 1})
	if _, err := os.Stat(s.path(seg1)); err != nil {
		t.Fatal("segment removed with a line pending")
	}
	s.Ack(map[int64]int{seg1: 1})
	if _, err := os.Stat(s.path(seg1)); !os.IsNotExist(err) {
		t.Fatal("fully written segment not removed")
	}
	s.Ack(map[int64]int{seg2: 1})
	fi, err := os.Stat(s.path(seg2))
	if err != nil || fi.Size() != 0 {
		t.Fatalf("current segment not truncated once written: %v %v", fi, err)
	}
	// And appending after the truncation still replays.
	s.Append([]byte("d v=4 4\n"), 1)
	s.Close()
	got, _, _ := replayAll(t, dir)
	if !slices.Equal(got, []string{"d v=4 4\n"}) {
		t.Fatalf("replayed %q", got)
	}
	if s.Unacked() != 1 {
		t.Fatalf("unacked = %d", s.Unacked())
	}
}

func TestSpoolIgnoresForeignFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "abc.lp"), []byte("x"), 0o600)
	got, st, _ := replayAll(t, dir)
	if len(got) != 0 || st.Segments != 0 {
		t.Fatalf("replayed foreign files: %q %+v", got, st)
	}
}

func TestSpoolIsExclusive(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, discard()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v; want an in-use error", err)
	}
	s.Close()
	s2, err := Open(dir, discard())
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
}

// TestSpoolCutAtEveryOffset simulates a crash at every byte of a segment:
// replay yields exactly the records written completely before the cut.
func TestSpoolCutAtEveryOffset(t *testing.T) {
	recs := []string{"a v=1 1\n", "b v=2 2\nc v=3 3\n", "d v=4 4\n"}
	var seg []byte
	var ends []int
	for _, r := range recs {
		seg = append(seg, r...)
		seg = append(seg, trailer([]byte(r))...)
		ends = append(ends, len(seg))
	}
	for cut := 0; cut <= len(seg); cut++ {
		got, corrupt, _ := parseSegment(seg[:cut])
		complete := 0
		for _, e := range ends {
			if e <= cut {
				complete++
			}
		}
		if corrupt != 0 || len(got) != complete {
			t.Fatalf("cut at %d: %d records (%d corrupt), want %d", cut, len(got), corrupt, complete)
		}
		for i, r := range got {
			if string(r) != recs[i] {
				t.Fatalf("cut at %d: record %d = %q", cut, i, r)
			}
		}
	}
}

// FuzzSpoolSegment: whatever a segment holds, parsing never panics and
// every record it returns matches its checksum.
func FuzzSpoolSegment(f *testing.F) {
	f.Add(append([]byte("a v=1 1\n"), trailer([]byte("a v=1 1\n"))...))
	f.Add([]byte("#influxrotate-spool-commit len=0 crc32c=00000000\n"))
	f.Add([]byte("x\n#influxrotate-spool-commit len=2 crc32c=zz\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, _, torn := parseSegment(data)
		if torn < 0 || torn > len(data) {
			t.Fatalf("torn = %d of %d", torn, len(data))
		}
		for _, r := range recs {
			if !bytes.Contains(data, append(append([]byte(nil), r...), trailer(r)...)) {
				t.Fatalf("record %q is not followed by its own trailer", r)
			}
		}
		// With a small bound, only records within it come out, intact.
		const bound = 64
		if _, err := scanSegment(bytes.NewReader(data), bound, func(r []byte) bool {
			whole := append(bytes.Clone(r), trailer(r)...)
			if len(whole) > bound || !bytes.Contains(data, whole) {
				t.Fatalf("record %q over the bound or not followed by its own trailer", r)
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// diskFullFile writes only the first half of a write once failWrites is
// set and reports ENOSPC, as a full disk does; failTruncate makes the
// truncation back fail too.
type diskFullFile struct {
	*os.File
	failWrites, failTruncate bool
}

func (f *diskFullFile) Write(p []byte) (int, error) {
	if !f.failWrites {
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:len(p)/2])
	return n, syscall.ENOSPC
}

func (f *diskFullFile) Truncate(size int64) error {
	if f.failTruncate {
		return syscall.EIO
	}
	return f.File.Truncate(size)
}

func openDiskFullSpool(t *testing.T, dir string) (*Spool, *diskFullFile) {
	t.Helper()
	s, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	var f *diskFullFile
	s.create = func(path string) (segmentFile, error) {
		of, err := createSegment(path)
		if err != nil {
			return nil, err
		}
		f = &diskFullFile{File: of.(*os.File)}
		return f, nil
	}
	if _, err := s.Append([]byte("a v=1 1\n"), 1); err != nil {
		t.Fatal(err)
	}
	return s, f
}

// TestSpoolAppendFailingPartWayIsTruncatedBack: a record torn by ENOSPC is
// removed, so the record fsynced after it is replayed.
func TestSpoolAppendFailingPartWayIsTruncatedBack(t *testing.T) {
	dir := t.TempDir()
	s, f := openDiskFullSpool(t, dir)
	f.failWrites = true
	if _, err := s.Append([]byte("b v=2 2\nb v=3 3\n"), 2); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	f.failWrites = false
	if _, err := s.Append([]byte("c v=4 4\n"), 1); err != nil {
		t.Fatalf("append after the disk has room again: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, st, _ := replayAll(t, dir)
	if want := []string{"a v=1 1\n", "c v=4 4\n"}; !slices.Equal(got, want) {
		t.Fatalf("replayed %q, want %q (stats %+v)", got, want, st)
	}
	if st.Corrupt != 0 || st.TornBytes != 0 {
		t.Fatalf("the failed append left damage: %+v", st)
	}
}

// TestSpoolRefusesAppendsAfterAnUntruncatableTornRecord: when the torn
// record cannot be removed, nothing is appended after it (where it would
// be lost at replay) until the segment is emptied by an acknowledgement.
func TestSpoolRefusesAppendsAfterAnUntruncatableTornRecord(t *testing.T) {
	dir := t.TempDir()
	s, f := openDiskFullSpool(t, dir)
	seg := s.curSeq
	f.failWrites, f.failTruncate = true, true
	if _, err := s.Append([]byte("b v=2 2\n"), 1); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	f.failWrites = false
	_, err := s.Append([]byte("c v=3 3\n"), 1)
	if err == nil || !strings.Contains(err.Error(), "refusing further appends") || !strings.Contains(err.Error(), "torn record") {
		t.Fatalf("append after a torn record that could not be removed: %v, want a clear refusal", err)
	}
	f.failTruncate = false
	s.Ack(map[int64]int{seg: 1}) // "a" written: the segment is emptied, the torn record with it
	if _, err := s.Append([]byte("d v=4 4\n"), 1); err != nil {
		t.Fatalf("append after the segment was emptied: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, st, _ := replayAll(t, dir)
	if want := []string{"d v=4 4\n"}; !slices.Equal(got, want) || st.Corrupt != 0 || st.TornBytes != 0 {
		t.Fatalf("replayed %q (stats %+v), want %q", got, st, want)
	}
}

// TestSpoolReplayHoldsOneBoundedRecord: replay reads a segment record by
// record through a bounded buffer, so a segment many times larger than the
// bound replays, and a record over the bound (which append refuses to
// write) is skipped as corrupt without stopping the records after it.
func TestSpoolReplayHoldsOneBoundedRecord(t *testing.T) {
	const bound = 256
	dir := t.TempDir()
	s, err := Open(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	s.maxRecord = bound
	var want []string
	for i := range 40 {
		r := fmt.Sprintf("m,host=a v=%di %d\n", i, i)
		want = append(want, r)
		if _, err := s.Append([]byte(r), 1); err != nil {
			t.Fatal(err)
		}
	}
	long := "m,host=a s=\"" + strings.Repeat("x", bound) + "\" 1\n"
	if _, err := s.Append([]byte(long), 1); err == nil || !strings.Contains(err.Error(), "longer than the 256-byte limit") {
		t.Fatalf("append of a record over the bound: %v, want a refusal naming the limit", err)
	}
	seg := s.curSeq
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A record over the bound (longer than a buffered read, too), written
	// by hand with a valid trailer, then one more good record.
	huge := strings.Repeat("y", 100<<10) + "\n" + long
	tail := "z v=1 1\n"
	f, err := os.OpenFile(s.path(seg), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(append([]byte(huge), trailer([]byte(huge))...))
	f.Write(append([]byte(tail), trailer([]byte(tail))...))
	f.Close()
	if st, _ := os.Stat(s.path(seg)); st.Size() < 100*bound {
		t.Fatalf("segment of %d bytes is not much larger than the bound", st.Size())
	}

	var logs bytes.Buffer
	r, err := Open(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.maxRecord = bound
	var got []string
	st, err := r.Replay(func(_ int64, raw []byte) bool {
		got = append(got, string(raw))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := append(want, tail); !slices.Equal(got, want) {
		t.Fatalf("replayed %d records %q, want %d", len(got), got, len(want))
	}
	if st.Corrupt != 1 || st.Oversized != 1 || st.TornBytes != 0 {
		t.Fatalf("stats %+v, want one oversized corrupt record", st)
	}
	if !strings.Contains(logs.String(), "longer than any the spool writes") || !strings.Contains(logs.String(), "max_record_bytes=256") {
		t.Fatalf("no clear log line for the oversized record:\n%s", logs.String())
	}
}
