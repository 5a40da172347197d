//go:build unix

package rotation

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/influxrotate/influxrotate/testutil/wait"
)

// A token path that is not a regular file is refused by kind, without
// blocking: a named pipe would otherwise hold the reader in open(2) until
// some process opened it for writing.
func TestFileSourceRefusesWhatIsNotARegularFile(t *testing.T) {
	for name, tc := range map[string]struct {
		make func(path string) error
		kind string
	}{
		"named pipe": {func(p string) error { return syscall.Mkfifo(p, 0o600) }, "a named pipe"},
		"directory":  {func(p string) error { return os.Mkdir(p, 0o700) }, "a directory"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			s, _ := newFileSource(t, FileSourceConfig{Path: path})
			_, err := s.Read(context.Background())
			if !errors.Is(err, ErrNotRegularFile) || !strings.Contains(err.Error(), tc.kind) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Read: %v; want ErrNotRegularFile naming %s and the file", err, tc.kind)
			}
		})
	}
}

// The watcher goroutine must not hang either when a valid token file is
// replaced by a named pipe: the pipe is counted as a source error, and a
// token written afterwards is still delivered.
func TestFileSourceNamedPipeDoesNotBlockTheWatcher(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	writeFile(t, path, tokenN(1), 0o600)
	stats := new(Stats)
	s, _ := newFileSource(t, FileSourceConfig{Path: path, Stats: stats})
	fifo := filepath.Join(dir, ".fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fifo, path); err != nil {
		t.Fatal(err)
	}
	wait.For(t, waitDelivery, "the named pipe to be counted as a source error", func() bool { return stats.SourceErrors.Load() > 0 })
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, tokenN(2), 0o600)
	expectToken(t, s, tokenN(2))
}
