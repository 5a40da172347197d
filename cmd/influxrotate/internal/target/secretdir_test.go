package target

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/rotation/secretdir"
)

// publishWithin fails the test instead of hanging it when Publish blocks
// (on a named pipe, for instance).
func publishWithin(t *testing.T, tg Target, token string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tg.Publish(context.Background(), token) }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("%s: Publish is blocked", tg.Name())
		return nil
	}
}

// Entries another user may plant beside the visible links are not copied
// into the payload: a link to a file only root may read (which would be
// served with the target's mode), a link to /dev/zero (out of memory), a
// named pipe (blocks forever).
func TestSecretDirLeavesForeignEntriesAlone(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	s := &SecretDir{Dir: dir, Key: "token", Mode: 0o644, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := s.Publish(context.Background(), "first"); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, plant := range map[string]func(string) error{
		"leak": func(p string) error { return os.Symlink(secret, p) },
		"zero": func(p string) error { return os.Symlink("/dev/zero", p) },
		"pipe": func(p string) error { return syscall.Mkfifo(p, 0o600) },
	} {
		if err := plant(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := publishWithin(t, s, tok); err != nil {
		t.Fatal(err)
	}
	files, _, err := secretdir.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || strings.TrimSpace(string(files["token"])) != tok {
		t.Errorf("payload has %d keys: the planted entries were copied", len(files))
	}
}

// A named pipe or link inside the served directory is dropped from the
// payload, with a warning naming it.
func TestSecretDirDropsNonRegularKeys(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	s := &SecretDir{Dir: dir, Key: "token", Mode: 0o600, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := s.Publish(context.Background(), "first"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, secretdir.DataDirName, "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := publishWithin(t, s, tok); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "not regular files") || !strings.Contains(logs.String(), "pipe") {
		t.Errorf("no warning naming the pipe: %q", logs.String())
	}
	if got, err := s.ReadBack(context.Background()); err != nil || got != tok {
		t.Errorf("read back: %v", err)
	}
}
