package rotation

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeAudit appends n records to a fresh log and returns its path.
func writeAudit(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Append(AuditRecord{Event: "promote", Outcome: "ok", ClientID: "host-1",
			OldFingerprint: Fingerprint(tokenN(i)), NewFingerprint: Fingerprint(tokenN(i + 1)),
			Targets: []string{"org/bucket"}, Status: 204}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func verifyFile(t *testing.T, path string) (int, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return VerifyAuditLog(f)
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuditLogChainVerifies(t *testing.T) {
	path := writeAudit(t, 5)
	n, err := verifyFile(t, path)
	if err != nil || n != 5 {
		t.Fatalf("VerifyAuditLog = %d, %v; want 5, nil", n, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, want 0600", st.Mode().Perm())
	}
	lines := readLines(t, path)
	for _, want := range []string{`"seq":1`, `"prev_hash":""`, `"event":"promote"`, `"client_id":"host-1"`, `"hash":"`} {
		if !bytes.Contains(lines[0], []byte(want)) {
			t.Errorf("first record %s lacks %s", lines[0], want)
		}
	}
}

func TestAuditLogReopenContinuesChain(t *testing.T) {
	path := writeAudit(t, 3)
	l, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(AuditRecord{Event: "startup"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := l.Append(AuditRecord{Event: "late"}); err == nil {
		t.Error("Append after Close succeeded")
	}
	if n, err := verifyFile(t, path); err != nil || n != 4 {
		t.Fatalf("VerifyAuditLog = %d, %v; want 4, nil", n, err)
	}
}

func TestAuditLogConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if err := l.Append(AuditRecord{Event: "probe"}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	l.Close()
	if n, err := verifyFile(t, path); err != nil || n != 40 {
		t.Fatalf("VerifyAuditLog = %d, %v; want 40, nil", n, err)
	}
}

func TestAuditLogDetectsTampering(t *testing.T) {
	for name, tc := range map[string]struct {
		tamper   func([][]byte) [][]byte
		wantLine int
	}{
		"modified field": {func(l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte(`"outcome":"ok"`), []byte(`"outcome":"no"`), 1)
			return l
		}, 3},
		"modified and rehashed without chain": {func(l [][]byte) [][]byte {
			// An attacker who recomputes the record's own hash still breaks
			// the next record's prev_hash.
			rec, _ := parseRecord(bytes.TrimSuffix(l[1], []byte("\n")))
			rec.Outcome = "failed"
			rec.Hash, _ = rec.computeHash()
			b, _ := jsonLine(rec)
			l[1] = b
			return l
		}, 3},
		"deleted record":       {func(l [][]byte) [][]byte { return append(l[:2:2], l[3:]...) }, 3},
		"deleted first record": {func(l [][]byte) [][]byte { return l[1:] }, 1},
		"reordered records": {func(l [][]byte) [][]byte {
			l[1], l[2] = l[2], l[1]
			return l
		}, 2},
		"truncated last line": {func(l [][]byte) [][]byte {
			l[4] = l[4][:len(l[4])/2]
			return l
		}, 5},
		"extra spacing": {func(l [][]byte) [][]byte {
			l[0] = bytes.Replace(l[0], []byte(`,"event"`), []byte(`, "event"`), 1)
			return l
		}, 1},
		"unknown field added": {func(l [][]byte) [][]byte {
			l[3] = bytes.Replace(l[3], []byte(`{"seq"`), []byte(`{"token":"x","seq"`), 1)
			return l
		}, 4},
		"garbage line inserted": {func(l [][]byte) [][]byte {
			return append(l[:1:1], append([][]byte{[]byte("not json\n")}, l[1:]...)...)
		}, 2},
	} {
		t.Run(name, func(t *testing.T) {
			path := writeAudit(t, 5)
			writeLines(t, path, tc.tamper(readLines(t, path)))
			_, err := verifyFile(t, path)
			var ae *AuditError
			if !errors.As(err, &ae) {
				t.Fatalf("VerifyAuditLog error = %v, want *AuditError", err)
			}
			if ae.Line != tc.wantLine {
				t.Errorf("error names line %d, want %d: %v", ae.Line, tc.wantLine, err)
			}
			if !strings.Contains(err.Error(), "line") {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}
}

func TestAuditLogRefusesToExtendDamagedFile(t *testing.T) {
	path := writeAudit(t, 2)
	lines := readLines(t, path)
	lines[1] = lines[1][:20]
	writeLines(t, path, lines)
	if _, err := OpenAuditLog(path); err == nil {
		t.Fatal("OpenAuditLog extended a log with a torn last record")
	}
}

func TestAuditStreamChainVerifies(t *testing.T) {
	var buf bytes.Buffer
	l := NewAuditStream(&buf, "stdout")
	for i := 0; i < 3; i++ {
		if err := l.Append(AuditRecord{Event: "publish", Credential: "c", NewFingerprint: "sha256:0123456789ab"}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := VerifyAuditLog(bytes.NewReader(buf.Bytes()))
	if err != nil || n != 3 {
		t.Fatalf("stream: %d records, %v", n, err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	lines[1] = bytes.Replace(lines[1], []byte(`"publish"`), []byte(`"deleted"`), 1)
	if _, err := VerifyAuditLog(bytes.NewReader(append(bytes.Join(lines, []byte("\n")), '\n'))); err == nil {
		t.Fatal("a tampered stream verified")
	}
	_ = l.Close()
	if err := l.Append(AuditRecord{Event: "x"}); err == nil {
		t.Fatal("append after close")
	}
}
