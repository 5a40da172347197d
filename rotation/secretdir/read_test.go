package secretdir

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadReturnsWhatWriteServes(t *testing.T) {
	dir := t.TempDir()
	if files, skipped, err := Read(dir); err != nil || len(files) != 0 || len(skipped) != 0 {
		t.Fatalf("Read of an empty directory: %v %v %v", files, skipped, err)
	}
	want := map[string][]byte{"token": []byte("t\n"), "ca.crt": []byte("cert"), "nested/key": []byte("k")}
	if err := Write(dir, want, 0o600); err != nil {
		t.Fatal(err)
	}
	got, skipped, err := Read(dir)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("Read: %v, skipped %v", err, skipped)
	}
	if len(got) != len(want) {
		t.Fatalf("Read = %q, want %q", got, want)
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// Entries beside the visible links are never read: a link to a file only
// root may read, to /dev/zero, or a named pipe would otherwise be copied
// into the payload, exhaust memory or block forever.
func TestReadIgnoresEntriesOutsideTheLayout(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, map[string][]byte{"token": []byte("t\n")}, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, os.Symlink(secret, filepath.Join(dir, "leak")))
	must(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero")))
	must(t, syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o600))
	got, skipped, err := Read(dir)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("Read: %v, skipped %v", err, skipped)
	}
	if len(got) != 1 || string(got["token"]) != "t\n" {
		t.Errorf("Read = %q", got)
	}
}

// Inside the timestamped directory, what is not a regular file is skipped
// and named, and nothing is followed.
func TestReadSkipsNonRegularEntriesOfThePayload(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, map[string][]byte{"token": []byte("t\n")}, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, DataDirName)
	must(t, os.Symlink("/dev/zero", filepath.Join(data, "zero")))
	must(t, os.Symlink("token", filepath.Join(data, "alias")))
	must(t, syscall.Mkfifo(filepath.Join(data, "pipe"), 0o600))
	got, skipped, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got["token"]) != "t\n" {
		t.Errorf("Read = %q", got)
	}
	if strings.Join(skipped, ",") != "alias,pipe,zero" {
		t.Errorf("skipped %q", skipped)
	}
}

func TestReadBoundsThePayload(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, map[string][]byte{"token": []byte("t\n"), "big": bytes.Repeat([]byte("x"), MaxPayload)}, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Read of a payload over %d bytes: %v", MaxPayload, err)
	}
}

func TestReadRefusesADataLinkOutOfTheDirectory(t *testing.T) {
	for name, target := range map[string]string{
		"absolute":          t.TempDir(),
		"parent":            "../elsewhere",
		"not a timestamped": "plain",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			must(t, os.Symlink(target, filepath.Join(dir, DataDirName)))
			if _, _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "not to a timestamped directory") {
				t.Errorf("Read with ..data -> %s: %v", target, err)
			}
		})
	}
	// A timestamped name that is itself a link out of the directory.
	dir := t.TempDir()
	must(t, os.Symlink(t.TempDir(), filepath.Join(dir, "..2026_01_01_00_00_00.1")))
	must(t, os.Symlink("..2026_01_01_00_00_00.1", filepath.Join(dir, DataDirName)))
	if _, _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Read through a linked timestamped directory: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
