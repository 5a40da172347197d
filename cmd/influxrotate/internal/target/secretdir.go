package target

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

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

// currentFiles reads the visible keys, skipping the kubelet's "..*" entries.
func (s *SecretDir) currentFiles() (map[string][]byte, error) {
	files := map[string][]byte{}
	entries, err := os.ReadDir(s.Dir)
	if os.IsNotExist(err) {
		return files, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") || strings.HasPrefix(name, ".") || name == s.Key {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.Dir, name))
		if err != nil {
			continue // a directory or a dangling link: not a key
		}
		files[name] = data
	}
	return files, nil
}

// ReadBack implements Target.
func (s *SecretDir) ReadBack(ctx context.Context) (string, error) {
	return readTokenFile(filepath.Join(s.Dir, s.Key))
}
