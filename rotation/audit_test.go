package rotation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
			rec, _ := parseRecord(bytes.TrimSuffix(l[1], []byte("\n")), nil)
			rec.Outcome = "failed"
			rec.Hash, _ = rec.computeHash(nil)
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

func TestAuditLogRefusesToExtendAnEditedLastRecord(t *testing.T) {
	path := writeAudit(t, 2)
	lines := readLines(t, path)
	lines[1] = bytes.Replace(lines[1], []byte(`"outcome":"ok"`), []byte(`"outcome":"no"`), 1)
	writeLines(t, path, lines)
	before, _ := os.ReadFile(path)
	var ae *AuditError
	if _, err := OpenAuditLog(path); !errors.As(err, &ae) {
		t.Fatalf("OpenAuditLog on an edited last record: %v, want an *AuditError", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("OpenAuditLog changed a log it refused")
	}
}

// TestAuditLogRecoversATornLastLine: what a crash in the middle of an
// append leaves is moved aside, recorded, and the chain goes on.
func TestAuditLogRecoversATornLastLine(t *testing.T) {
	for name, keep := range map[string]int{"after records": 3, "only a torn line": 0} {
		t.Run(name, func(t *testing.T) {
			path := writeAudit(t, keep+1)
			lines := readLines(t, path)
			torn := lines[keep][:len(lines[keep])/2]
			writeLines(t, path, append(lines[:keep:keep], torn))

			l, err := OpenAuditLog(path)
			if err != nil {
				t.Fatalf("OpenAuditLog on a torn last line: %v", err)
			}
			aside := l.Recovered()
			if aside == "" || !strings.HasPrefix(aside, path+".torn-") {
				t.Fatalf("Recovered() = %q, want %s.torn-<time>", aside, path)
			}
			if got, err := os.ReadFile(aside); err != nil || !bytes.Equal(got, torn) {
				t.Fatalf("moved-aside bytes %q (%v), want %q", got, err, torn)
			}
			if err := l.Append(AuditRecord{Event: "startup"}); err != nil {
				t.Fatal(err)
			}
			l.Close()

			f, _ := os.Open(path)
			defer f.Close()
			sum, err := VerifyAuditLogWith(f, AuditOptions{})
			if err != nil || sum.Records != keep+2 {
				t.Fatalf("verify after recovery: %+v, %v; want %d records", sum, err, keep+2)
			}
			if len(sum.Recoveries) != 1 || sum.Recoveries[0].Seq != int64(keep+1) ||
				!strings.Contains(sum.Recoveries[0].Message, filepath.Base(aside)) ||
				!strings.Contains(sum.Recoveries[0].Message, fmt.Sprintf("%d bytes", len(torn))) {
				t.Fatalf("recoveries %+v, want one at seq %d naming %s and the torn size", sum.Recoveries, keep+1, filepath.Base(aside))
			}
		})
	}
}

// TestVerifyAuditLogReadsWithABoundedBuffer: a log larger than the line
// bound verifies (it is read line by line, not whole), and a line over the
// bound is refused by name instead of being read into memory.
func TestVerifyAuditLogReadsWithABoundedBuffer(t *testing.T) {
	const bound = 512
	opts := AuditOptions{MaxLineBytes: bound}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenAuditLogWith(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		if err := l.Append(AuditRecord{Event: "probe", Outcome: "valid"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Append(AuditRecord{Event: "probe", Message: strings.Repeat("x", bound)}); err == nil ||
		!strings.Contains(err.Error(), "longer than the 512-byte limit") {
		t.Fatalf("Append of an over-long record: %v, want a refusal naming the limit", err)
	}
	l.Close()
	if st, _ := os.Stat(path); st.Size() <= 4*bound {
		t.Fatalf("log of %d bytes is not larger than the buffer", st.Size())
	}
	f, _ := os.Open(path)
	sum, err := VerifyAuditLogWith(f, opts)
	f.Close()
	if err != nil || sum.Records != 40 {
		t.Fatalf("verify: %+v, %v; want 40 records", sum, err)
	}

	// A record over the bound, written with the default bound.
	l, err = OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(AuditRecord{Event: "probe", Message: strings.Repeat("x", bound)}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	f, _ = os.Open(path)
	defer f.Close()
	_, err = VerifyAuditLogWith(f, opts)
	var ae *AuditError
	if !errors.As(err, &ae) || ae.Line != 41 || !strings.Contains(err.Error(), "longer than 512 bytes") {
		t.Fatalf("verify of a line over the bound: %v, want line 41 named as too long", err)
	}
	if _, err := OpenAuditLogWith(path, opts); err == nil || !strings.Contains(err.Error(), "longer than 512 bytes") {
		t.Fatalf("open with a last line over the bound: %v, want it named as too long", err)
	}
}

// rebuildChain drops record drop (0-based) and recomputes every sequence
// number, link and hash, as someone who can rewrite the file can.
func rebuildChain(t *testing.T, lines [][]byte, drop int, chain string, key []byte) [][]byte {
	t.Helper()
	var out [][]byte
	prev := ""
	for i, line := range lines {
		if i == drop {
			continue
		}
		var rec AuditRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		rec.Seq, rec.PrevHash, rec.Chain = int64(len(out)+1), prev, chain
		rec.Hash, _ = rec.computeHash(key)
		b, _ := jsonLine(rec)
		out = append(out, b)
		prev = rec.Hash
	}
	return out
}

func verifyWith(t *testing.T, path string, key []byte) (AuditSummary, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return VerifyAuditLogWith(f, AuditOptions{Key: key})
}

// TestAuditChainRebuiltUnkeyedVerifies documents the limit of the plain
// chain: whoever can rewrite the whole file can drop a record and rebuild
// a chain that verifies.
func TestAuditChainRebuiltUnkeyedVerifies(t *testing.T) {
	path := writeAudit(t, 5)
	writeLines(t, path, rebuildChain(t, readLines(t, path), 2, "", nil))
	if n, err := verifyFile(t, path); err != nil || n != 4 {
		t.Fatalf("a rebuilt plain chain: %d, %v; it verifies (4 records), which is the documented limit", n, err)
	}
}

// TestAuditChainKeyed: a keyed chain verifies with its key only, and a
// chain rebuilt without the key does not.
func TestAuditChainKeyed(t *testing.T) {
	key := []byte(strings.Repeat("k", MinAuditKeyLength))
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenAuditLogWith(path, AuditOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := l.Append(AuditRecord{Event: "promote", Outcome: "ok", NewFingerprint: Fingerprint(tokenN(i))}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if sum, err := verifyWith(t, path, key); err != nil || sum.Records != 5 || !sum.Keyed {
		t.Fatalf("keyed chain with its key: %+v, %v", sum, err)
	}
	if _, err := verifyWith(t, path, nil); err == nil || !strings.Contains(err.Error(), "needs the audit key file") {
		t.Fatalf("keyed chain without a key: %v, want a refusal saying a key is needed", err)
	}
	if _, err := OpenAuditLog(path); err == nil {
		t.Fatal("a keyed chain was extended without its key")
	}
	if _, err := verifyWith(t, path, []byte(strings.Repeat("x", MinAuditKeyLength))); err == nil {
		t.Fatal("a keyed chain verified under another key")
	}

	original := readLines(t, path)
	for name, rebuilt := range map[string][][]byte{
		"as a plain chain":         rebuildChain(t, original, 2, "", nil),
		"keyed with a guessed key": rebuildChain(t, original, 2, ChainHMAC, []byte("guess")),
	} {
		t.Run(name, func(t *testing.T) {
			writeLines(t, path, rebuilt)
			var ae *AuditError
			if _, err := verifyWith(t, path, key); !errors.As(err, &ae) || ae.Line != 1 {
				t.Fatalf("a chain rebuilt without the key: %v, want line 1 refused", err)
			}
		})
	}

	plain := writeAudit(t, 1)
	if _, err := OpenAuditLogWith(plain, AuditOptions{Key: key}); err == nil || !strings.Contains(err.Error(), "not keyed") {
		t.Fatalf("a plain chain extended with a key: %v, want a refusal", err)
	}
}

func TestReadAuditKeyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	key := strings.Repeat("ab", MinAuditKeyLength/2)
	if err := os.WriteFile(good, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadAuditKeyFile(good); err != nil || string(got) != key {
		t.Fatalf("ReadAuditKeyFile = %q, %v", got, err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAuditKeyFile(short); err == nil || !strings.Contains(err.Error(), "shorter than") || strings.Contains(err.Error(), "abc") {
		t.Fatalf("short key: %v, want a refusal that does not quote it", err)
	}
	if _, err := ReadAuditKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing key file: %v", err)
	}
	if _, err := ReadAuditKeyFile(dir); !errors.Is(err, ErrNotRegularFile) {
		t.Fatalf("a directory as the key file: %v", err)
	}
}

func TestAuditStreamChainVerifies(t *testing.T) {
	var buf bytes.Buffer
	l := NewAuditStream(&buf, "stdout", AuditOptions{})
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

func TestAuditLogAppendAllExtendsTheChain(t *testing.T) {
	path := writeAudit(t, 2)
	l, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AppendAll(AuditRecord{Event: "adopted", Message: "a"}, AuditRecord{Event: "adopted", Message: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(AuditRecord{Event: "adopt"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if n, err := verifyFile(t, path); err != nil || n != 5 {
		t.Fatalf("VerifyAuditLog = %d, %v; want 5, nil", n, err)
	}
	if lines := readLines(t, path); !bytes.Contains(lines[3], []byte(`"seq":4`)) || !bytes.Contains(lines[3], []byte(`"message":"b"`)) {
		t.Errorf("fourth record %s, want seq 4 message b", lines[3])
	}
}
