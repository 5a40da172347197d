//go:build unix

package controller

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// operator_token_file and metrics.token_file are read with the one token
// reader: a named pipe or an oversized file is a configuration error at
// once, not a controller blocked in open(2) or reading a huge file whole.
func TestOperatorTokenFileRefusesPipesAndOversizedFiles(t *testing.T) {
	for name, tc := range map[string]struct {
		make func(path string) error
		want error
		text string
	}{
		"named pipe": {func(p string) error { return syscall.Mkfifo(p, 0o600) }, rotation.ErrNotRegularFile, "a named pipe"},
		"oversized": {func(p string) error { return os.WriteFile(p, []byte(strings.Repeat("a", 32<<20)), 0o600) },
			rotation.ErrTokenTooLong, "longer than"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			path := filepath.Join(e.dir, "operator-token")
			must(t, os.Remove(path))
			must(t, tc.make(path))
			done := make(chan error, 1)
			go func() {
				_, err := New(Options{Config: e.config(), Logger: slog.New(slog.NewTextHandler(e.logs, nil)), Kube: e.kube})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("New blocked reading operator_token_file")
			}
			if !ConfigError(err) || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "operator_token_file") ||
				!strings.Contains(err.Error(), tc.text) {
				t.Fatalf("New: %v; want a configuration error naming operator_token_file and %q", err, tc.text)
			}
			if strings.Contains(err.Error(), "aaaaaaaa") {
				t.Fatal("the error quotes the file's content")
			}
		})
	}
}
