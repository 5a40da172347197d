// Package fsutil holds the file operations that must survive a crash or a
// power cut, and the flock that keeps a directory or a journal to one
// owner: shared by the controller's journal, its audit log and file
// targets, the execd binary's spool and rotation/secretdir.
package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// WriteFileAtomic writes data to a temp file in path's directory, fsyncs it,
// renames it over path and fsyncs the directory so that the rename survives
// a power cut: a crash leaves either the old or the new file, never a mix.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return WriteFileAtomicAs(path, data, mode, -1, -1)
}

// WriteFileAtomicAs is WriteFileAtomic giving the file to uid and gid (-1
// leaves the process's) before it is renamed into place, so that no reader
// ever sees it with the wrong owner.
func WriteFileAtomicAs(path string, data []byte, mode os.FileMode, uid, gid int) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if uid != -1 || gid != -1 {
		if err = f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// tempPrefix starts the name of WriteFileAtomic's temp files for path;
// os.CreateTemp appends a decimal number.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// RemoveStaleTemps removes the temp files a WriteFileAtomic of path
// interrupted by a crash left behind (they may hold a live token), and
// returns their names. Only regular files named as WriteFileAtomic names
// them are removed; a link is never followed. The caller must hold what
// keeps other writers of path out (a credential's Lock).
func RemoveStaleTemps(path string) ([]string, error) {
	dir, prefix := filepath.Dir(path), tempPrefix(path)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		suffix, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() || !isDigits(suffix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
