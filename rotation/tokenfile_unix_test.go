//go:build unix

package rotation

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// ReadTokenFile, the reader every token file goes through, refuses a named
// pipe without blocking in open(2) and an oversized file without reading it
// whole, and follows a symlink as a Secret volume needs.
func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	writeFile(t, good, tokenN(1)+"\n", 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	writeFile(t, big, string(bytes.Repeat([]byte("a"), 64<<20)), 0o600)
	for name, tc := range map[string]struct {
		path string
		want error // nil: the token is read
	}{
		"regular file": {good, nil},
		"symlink":      {link, nil},
		"named pipe":   {fifo, ErrNotRegularFile},
		"directory":    {dir, ErrNotRegularFile},
		"oversized":    {big, ErrTokenTooLong},
		"missing":      {filepath.Join(dir, "missing"), fs.ErrNotExist},
	} {
		t.Run(name, func(t *testing.T) {
			tok, err := ReadTokenFile(tc.path)
			if tc.want == nil {
				if err != nil || tok != tokenN(1) {
					t.Fatalf("ReadTokenFile = %s, %v; want the token", Fingerprint(tok), err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadTokenFile error %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), tokenN(1)) || strings.Contains(err.Error(), "aaaaaaaa") {
				t.Fatalf("error quotes file content: %v", err)
			}
		})
	}
}
