//go:build unix

package influxdb_v2_rotating

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// With strict = true a token_file that is a named pipe or an oversized file
// fails Init at once with an error naming the option, the file and what is
// wrong with it: the pipe does not block Init until a writer appears, the
// large file is not read whole.
func TestStrictRefusesPipesAndOversizedFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("a", 32<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		path string
		want error
		text string
	}{
		"named pipe": {fifo, rotation.ErrNotRegularFile, "a named pipe"},
		"oversized":  {big, rotation.ErrTokenTooLong, "longer than"},
	} {
		t.Run(name, func(t *testing.T) {
			p := New()
			p.Bucket = "b"
			p.TokenFile = tc.path
			p.Strict = true
			done := make(chan error, 1)
			go func() { done <- p.Init() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Init blocked on the token file")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) ||
				!strings.Contains(err.Error(), `token_file "`+tc.path+`"`) || !strings.Contains(err.Error(), "strict = true") {
				t.Fatalf("Init: %v; want %v naming token_file, the path and strict", err, tc.want)
			}
			if strings.Contains(err.Error(), "aaaaaaaa") {
				t.Fatal("the error quotes the file's content")
			}
		})
	}
}
