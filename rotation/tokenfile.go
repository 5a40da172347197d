package rotation

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ReadTokenFile reads and validates the token in the file at path. It is the
// one token-file reader of the project: FileSource, the plugin's strict
// start-up check and the controller's token files all read through it.
//
// Symlinks are followed, as a Secret volume needs. The file is opened
// without blocking and must be a regular file, so a named pipe put where
// the token belongs fails at once with ErrNotRegularFile instead of
// blocking until a writer appears; at most a little more than MaxTokenSize
// is read, so a wrong large file fails with ErrTokenTooLong at no cost.
// A missing file gives an error wrapping fs.ErrNotExist, invalid content
// one wrapping an ErrToken* value.
//
// Errors say what is wrong, not which file: callers name their option and
// the path. They never contain the file's content.
func ReadTokenFile(path string) (string, error) {
	tok, _, err := readTokenFile(path)
	return tok, err
}

// readTokenFile is ReadTokenFile that also returns the path the symlinks
// resolved to, which FileSource watches.
func readTokenFile(path string) (tok, resolved string, err error) {
	resolved, err = filepath.EvalSymlinks(path)
	if err != nil {
		return "", "", unwrapPathError(err)
	}
	// Non-blocking open, then a check on the opened file itself: a stat
	// before the open would leave a window for a rename to swap a pipe in.
	f, err := os.OpenFile(resolved, openTokenFlags, 0)
	if err != nil {
		return "", "", unwrapPathError(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", "", unwrapPathError(err)
	}
	if !info.Mode().IsRegular() {
		return "", "", NotRegularFileError(info.Mode())
	}
	content, err := io.ReadAll(io.LimitReader(f, MaxTokenSize+65))
	if err != nil {
		return "", "", unwrapPathError(err)
	}
	tok, err = ParseToken(content)
	if err != nil {
		return "", "", err
	}
	return tok, resolved, nil
}

// ErrNotRegularFile is returned for a token path that is a directory, a
// named pipe, a socket or a device rather than a file.
var ErrNotRegularFile = errors.New("not a regular file")

// NotRegularFileError is ErrNotRegularFile naming what the file is instead,
// for anyone who opened a token path (without blocking on a named pipe) and
// found something else there.
func NotRegularFileError(m fs.FileMode) error {
	return fmt.Errorf("%w (%s)", ErrNotRegularFile, fileKind(m))
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "type " + m.Type().String()
}

// unwrapPathError keeps the cause of a *fs.PathError (which errors.Is still
// matches) without repeating a resolved path such as a kubelet timestamped
// directory.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
