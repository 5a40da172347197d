package target

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/influxrotate/influxrotate/rotation/secretdir"
)

// SecretDir publishes the token as one key of a directory laid out the way
// the kubelet updates a Secret volume (timestamped directory, ..data
// symlink switched atomically). Other keys in the directory are kept.
type SecretDir struct {
	Dir    string
	Key    string
	Mode   os.FileMode
	Logger *slog.Logger
}

// Name implements Target.
func (s *SecretDir) Name() string { return "secret-dir " + filepath.Join(s.Dir, s.Key) }

// Publish implements Target.
func (s *SecretDir) Publish(ctx context.Context, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	files, err := s.currentFiles()
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	files[s.Key] = []byte(token + "\n")
	if err := secretdir.Write(s.Dir, files, s.Mode); err != nil {
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	warnReadable(s.Logger, s.Name(), filepath.Join(s.Dir, s.Key))
	return nil
}

// currentFiles reads the keys the directory serves now. Only the kubelet
// layout is read (secretdir.Read): whatever else lies in the directory is
// left alone and never copied into the payload.
func (s *SecretDir) currentFiles() (map[string][]byte, error) {
	files, skipped, err := secretdir.Read(s.Dir)
	if err != nil {
		return nil, err
	}
	if len(skipped) > 0 {
		s.Logger.Warn("secret directory holds entries that are not regular files; they are dropped from the payload",
			"target", s.Name(), "entries", skipped)
	}
	return files, nil
}

// ReadBack implements Target.
func (s *SecretDir) ReadBack(ctx context.Context) (string, error) {
	return readTokenFile(filepath.Join(s.Dir, s.Key))
}
