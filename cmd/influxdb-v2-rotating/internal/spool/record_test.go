package spool

import (
	"bytes"
	"os"
	"testing"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/execdtest"
)

// parseSegment splits a whole segment into copies of its intact records'
// payloads, and counts its corrupt records and torn bytes.
func parseSegment(data []byte) (recs [][]byte, corrupt, torn int) {
	st, err := scanSegment(bytes.NewReader(data), MaxRecordBytes, func(payload []byte) bool {
		recs = append(recs, bytes.Clone(payload))
		return true
	})
	if err != nil {
		panic(err) // a bytes.Reader does not fail
	}
	return recs, st.corrupt, st.torn
}

// TestExecdtestReadsSpoolFormat keeps the other packages' tests honest:
// execdtest reads spool directories from outside, and must find exactly
// the records a replay would, skipping corrupt and torn ones.
func TestExecdtestReadsSpoolFormat(t *testing.T) {
	var seg []byte
	for _, r := range []string{"a v=1 1\n", "b v=2 2\nc v=3 3\n"} {
		seg = append(seg, r...)
		seg = append(seg, trailer([]byte(r))...)
	}
	seg = append(seg, "bad v=0 0\n#influxrotate-spool-commit len=10 crc32c=00000000\n"...)
	seg = append(seg, "d v=4 4\n"...)
	seg = append(seg, trailer([]byte("d v=4 4\n"))...)
	seg = append(seg, "torn v=5"...)

	dir := t.TempDir()
	s := &Spool{dir: dir}
	if err := os.WriteFile(s.path(1), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	want, corrupt, torn := parseSegment(seg)
	if len(want) != 3 || corrupt != 1 || torn == 0 {
		t.Fatalf("fixture: %d records, %d corrupt, %d torn bytes", len(want), corrupt, torn)
	}
	got, err := execdtest.SpooledRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("execdtest found %d records, the spool %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d: execdtest %q, spool %q", i, got[i], want[i])
		}
	}
	paths, err := execdtest.SpoolSegments(dir)
	if err != nil || len(paths) != 1 || paths[0] != s.path(1) {
		t.Fatalf("segments %v, %v; want [%s]", paths, err, s.path(1))
	}
}
