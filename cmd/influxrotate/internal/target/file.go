package target

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/internal/fsutil"
	"github.com/influxrotate/influxrotate/rotation"
)

func fileMode(m config.FileMode) os.FileMode {
	if m == 0 {
		return os.FileMode(config.DefaultFileMode)
	}
	return os.FileMode(m)
}

// File publishes the token as a whole file: temp file in the same
// directory, fsync, rename, so a reader sees the old or the new token and
// never a half-written one.
type File struct {
	Path   string
	Mode   os.FileMode
	Logger *slog.Logger
}

// Name implements Target.
func (f *File) Name() string { return "file " + f.Path }

// Publish implements Target.
func (f *File) Publish(ctx context.Context, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	content := []byte(token + "\n")
	if cur, err := os.ReadFile(f.Path); err == nil && bytes.Equal(cur, content) {
		// Unchanged: skip the rename so watchers see no event, but still fix the mode.
		if err := os.Chmod(f.Path, f.Mode); err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
	} else if err := fsutil.WriteFileAtomic(f.Path, content, f.Mode); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	warnReadable(f.Logger, f.Name(), f.Path)
	return nil
}

// ReadBack implements Target.
func (f *File) ReadBack(ctx context.Context) (string, error) {
	return readTokenFile(f.Path)
}

func readTokenFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNoToken
	}
	if err != nil {
		return "", err
	}
	tok, err := rotation.ParseToken(data)
	if errors.Is(err, rotation.ErrTokenEmpty) {
		return "", ErrNoToken
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

// warnReadable warns when others may read a published token: the writer
// runs as one user, nobody else needs it.
func warnReadable(log *slog.Logger, name, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	if fi.Mode().Perm()&0o004 != 0 {
		log.Warn("published token is readable by every user; set mode = \"0600\" or \"0640\"",
			"target", name, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
}
