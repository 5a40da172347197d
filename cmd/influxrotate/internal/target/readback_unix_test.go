//go:build unix

package target

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// The file and secret-dir targets read a token back with the one token
// reader, as the writer's FileSource reads it: a named pipe or an oversized
// file at the path is an error at once, naming the path.
func TestReadBackRefusesPipesAndOversizedFiles(t *testing.T) {
	for name, tc := range map[string]struct {
		make func(path string) error
		want error
	}{
		"named pipe": {func(p string) error { return syscall.Mkfifo(p, 0o600) }, rotation.ErrNotRegularFile},
		"oversized":  {func(p string) error { return os.WriteFile(p, []byte(strings.Repeat("a", 32<<20)), 0o600) }, rotation.ErrTokenTooLong},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "token")
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			for _, tg := range []Target{&File{Path: path}, &SecretDir{Dir: dir, Key: "token"}} {
				done := make(chan error, 1)
				go func() {
					_, err := tg.ReadBack(context.Background())
					done <- err
				}()
				var err error
				select {
				case err = <-done:
				case <-time.After(10 * time.Second):
					t.Fatalf("%s: ReadBack blocked", tg.Name())
				}
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), path) {
					t.Errorf("%s: ReadBack: %v; want %v naming %s", tg.Name(), err, tc.want, path)
				}
			}
		})
	}
}
