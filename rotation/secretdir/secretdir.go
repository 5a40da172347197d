// Package secretdir writes a directory exactly the way the kubelet updates a
// Kubernetes Secret volume.
//
// It exists for two reasons. The controller (cmd/influxrotate) publishes new
// tokens to a "secret-dir" target that pods or local agents read, and those
// readers must never see a missing or half-written file; the kubelet's
// AtomicWriter layout gives that guarantee and every consumer already copes
// with it. And the tests of the token sources need the very same sequence of
// filesystem events a real Secret update produces (events on "..data",
// "..data_tmp" and a timestamped directory, none on the visible file) without
// a cluster.
//
// The layout after a Write of {"token": ...}:
//
//	dir/..2026_11_25_18_30_00.123456789   real files, mode as requested
//	dir/..data -> ..2026_11_25_18_30_00.123456789
//	dir/token  -> ..data/token
//
// An update writes a new timestamped directory, points "..data_tmp" at it and
// renames "..data_tmp" over "..data" (the single atomic switch), then removes
// the previous timestamped directory. The visible links never change.
//
// A reader never sees a truncated or mixed file. It can, like with the real
// kubelet, get ENOENT for an instant: if it resolved "..data" just before the
// switch and the old directory is removed before it opens the file. A reader
// must therefore retry a missing file before treating it as deleted
// (rotation.FileSource must). The tests exercise this window.
package secretdir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/influxrotate/influxrotate/internal/fsutil"
)

const (
	// DataDirName is the symlink that points at the current timestamped directory.
	DataDirName = "..data"
	// NewDataDirName is the temporary symlink renamed over DataDirName.
	NewDataDirName = "..data_tmp"

	// DefaultMode is the kubelet's default for Secret volumes, used when Write
	// is given a zero mode.
	DefaultMode os.FileMode = 0o644

	// The kubelet's limits on payload paths.
	maxPathLength     = 4096
	maxFileNameLength = 255

	tsDirLayout = "..2006_01_02_15_04_05."
)

// The kubelet serialises writes to one volume; callers in one process may
// share a directory (a controller target and a test), so Write does the same.
var dirLocks sync.Map // cleaned absolute dir -> *sync.Mutex

func lockDir(dir string) func() {
	key := dir
	if abs, err := filepath.Abs(dir); err == nil {
		key = abs
	}
	m, _ := dirLocks.LoadOrStore(key, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Write makes dir contain exactly files, each with the given permission bits
// (0 means DefaultMode), using the kubelet AtomicWriter's steps. Keys are
// paths relative to dir; a key with a slash ("a/b") is served through the
// visible link of its first element ("a -> ..data/a"), as in a Secret volume
// with items. dir is created (0755) if missing.
//
// Write is a no-op when the current content and modes already match, so
// repeated calls produce no filesystem events. Unlike the kubelet, a change of
// mode alone also triggers a write (the kubelet compares bytes only), so the
// requested mode is always what readers see.
func Write(dir string, files map[string][]byte, mode os.FileMode) error {
	if mode == 0 {
		mode = DefaultMode
	}
	if mode&^os.ModePerm != 0 {
		return fmt.Errorf("secretdir: mode %v for %s: only permission bits are allowed", mode, dir)
	}
	payload, err := validatePayload(files)
	if err != nil {
		return fmt.Errorf("secretdir: %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("secretdir: %w", err)
	}
	defer lockDir(dir)()

	// (1) Which timestamped directory is current, if any.
	oldTsDir, err := currentTsDir(dir)
	if err != nil {
		return fmt.Errorf("secretdir: %w", err)
	}
	oldTsPath := filepath.Join(dir, oldTsDir)

	// (2) What must go, and whether anything must be written at all.
	stale, shouldWrite, err := planWrite(payload, oldTsDir, oldTsPath, mode)
	if err != nil {
		return fmt.Errorf("secretdir: %w", err)
	}

	// (3) and (4): a new timestamped directory, switched in atomically.
	if shouldWrite {
		if err := switchData(dir, payload, mode); err != nil {
			return fmt.Errorf("secretdir: %w", err)
		}
	}

	// (5) Visible links for new keys, removal of the ones no longer served.
	if err := createVisibleLinks(payload, dir); err != nil {
		return fmt.Errorf("secretdir: %w", err)
	}
	if err := removeVisiblePaths(stale, dir); err != nil {
		return fmt.Errorf("secretdir: %w", err)
	}

	// (6) The previous timestamped directory is no longer reachable.
	if oldTsDir != "" && shouldWrite {
		if err := os.RemoveAll(oldTsPath); err != nil {
			return fmt.Errorf("secretdir: %w", err)
		}
	}
	return nil
}

// currentTsDir returns the timestamped directory ..data points to, or ""
// before the first write.
func currentTsDir(dir string) (string, error) {
	tsDir, err := os.Readlink(filepath.Join(dir, DataDirName))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return tsDir, err
}

// planWrite compares payload with the current timestamped directory: stale are
// the paths it serves that payload no longer has, and shouldWrite is false
// when nothing changed, so that a repeated Write makes no filesystem events.
func planWrite(payload map[string][]byte, oldTsDir, oldTsPath string, mode os.FileMode) (stale map[string]bool, shouldWrite bool, err error) {
	if oldTsDir == "" {
		return nil, true, nil
	}
	if stale, err = pathsToRemove(payload, oldTsPath); err != nil {
		return nil, false, err
	}
	changed, err := payloadDiffers(payload, oldTsPath, mode)
	if err != nil {
		return nil, false, err
	}
	return stale, changed || len(stale) > 0, nil
}

// switchData writes payload into a new timestamped directory and points
// ..data at it with one rename, so that a reader sees the old files or the
// new ones, never a mix. On failure the new directory is removed and ..data
// is left as it was.
func switchData(dir string, payload map[string][]byte, mode os.FileMode) error {
	// (3) A new timestamped directory with the files.
	tsDir, err := os.MkdirTemp(dir, time.Now().UTC().Format(tsDirLayout))
	if err != nil {
		return err
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		_ = os.RemoveAll(tsDir)
		return err
	}
	if err := writePayload(payload, tsDir, mode); err != nil {
		_ = os.RemoveAll(tsDir)
		return err
	}

	// (4) The atomic switch: ..data_tmp -> tsDir, renamed over ..data.
	newDataDirPath := filepath.Join(dir, NewDataDirName)
	// A crash between Symlink and Rename leaves ..data_tmp behind; the
	// kubelet would fail here forever, so clear it first.
	if err := os.Remove(newDataDirPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = os.RemoveAll(tsDir)
		return err
	}
	if err := os.Symlink(filepath.Base(tsDir), newDataDirPath); err != nil {
		_ = os.RemoveAll(tsDir)
		return err
	}
	if err := os.Rename(newDataDirPath, filepath.Join(dir, DataDirName)); err != nil {
		_ = os.Remove(newDataDirPath)
		_ = os.RemoveAll(tsDir)
		return err
	}
	return fsutil.SyncDir(dir)
}

// validatePayload applies the kubelet's path rules and cleans the keys.
func validatePayload(files map[string][]byte) (map[string][]byte, error) {
	clean := make(map[string][]byte, len(files))
	for k, v := range files {
		if err := validatePath(k); err != nil {
			return nil, err
		}
		clean[path.Clean(k)] = v
	}
	return clean, nil
}

func validatePath(p string) error {
	if p == "" {
		return errors.New("invalid path: must not be empty")
	}
	if path.IsAbs(p) {
		return fmt.Errorf("invalid path %q: must be relative", p)
	}
	if len(p) > maxPathLength {
		return fmt.Errorf("invalid path %q: longer than %d", p, maxPathLength)
	}
	items := strings.Split(p, "/")
	for _, item := range items {
		if item == ".." {
			return fmt.Errorf("invalid path %q: must not contain '..'", p)
		}
		if len(item) > maxFileNameLength {
			return fmt.Errorf("invalid path %q: element longer than %d", p, maxFileNameLength)
		}
	}
	// "..data" and the timestamped directories live beside the visible links.
	if strings.HasPrefix(items[0], "..") && len(items[0]) > 2 {
		return fmt.Errorf("invalid path %q: must not start with '..'", p)
	}
	return nil
}

// pathsToRemove lists what the old timestamped directory holds that the new
// payload does not, keeping the parents of new files.
func pathsToRemove(payload map[string][]byte, oldTsPath string) (map[string]bool, error) {
	old := map[string]bool{}
	err := filepath.WalkDir(oldTsPath, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(oldTsPath, p)
		if err != nil || rel == "." {
			return err
		}
		old[filepath.ToSlash(rel)] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k := range payload {
		for sub := k; sub != "." && sub != "" && sub != "/"; sub = path.Dir(sub) {
			delete(old, sub)
		}
	}
	return old, nil
}

func payloadDiffers(payload map[string][]byte, oldTsPath string, mode os.FileMode) (bool, error) {
	for k, want := range payload {
		p := filepath.Join(oldTsPath, filepath.FromSlash(k))
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode || fi.Size() != int64(len(want)) {
			return true, nil
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return false, err
		}
		if !bytes.Equal(got, want) {
			return true, nil
		}
	}
	return false, nil
}

func writePayload(payload map[string][]byte, tsDir string, mode os.FileMode) error {
	dirs := map[string]bool{tsDir: true}
	for k, content := range payload {
		p := filepath.Join(tsDir, filepath.FromSlash(k))
		d := filepath.Dir(p)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		dirs[d] = true
		if err := writeFileSync(p, content, mode); err != nil {
			return err
		}
	}
	for d := range dirs {
		if err := fsutil.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

func writeFileSync(p string, content []byte, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(content); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// OpenFile's mode is filtered by the umask; the requested mode must win.
	return os.Chmod(p, mode)
}

func createVisibleLinks(payload map[string][]byte, dir string) error {
	for k := range payload {
		first, _, _ := strings.Cut(k, "/")
		visible := filepath.Join(dir, first)
		if _, err := os.Readlink(visible); err != nil && errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(filepath.Join(DataDirName, first), visible); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeVisiblePaths removes the links of keys no longer served; only
// top-level entries are links, nested ones vanish with the old directory.
func removeVisiblePaths(stale map[string]bool, dir string) error {
	var errs []error
	for p := range stale {
		if strings.Contains(p, "/") {
			continue
		}
		if err := os.Remove(filepath.Join(dir, p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// MaxPayload is the most Read returns: the limit of a Kubernetes Secret.
const MaxPayload = 1 << 20

// Read returns the files dir serves now, keyed as Write takes them: the
// regular files of the timestamped directory "..data" points to. It reads
// nothing else, so an entry put beside the visible links (a symbolic link to
// a file only root may read, to /dev/zero, a named pipe) never becomes part
// of the payload. It follows no symbolic link but "..data", which must name
// a timestamped directory in dir; entries of that directory that are not
// regular files or directories are left out and named in skipped. A payload
// over MaxPayload bytes is an error naming the file that crossed the limit.
// A directory without "..data" serves nothing yet.
func Read(dir string) (files map[string][]byte, skipped []string, err error) {
	tsDir, err := os.Readlink(filepath.Join(dir, DataDirName))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]byte{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("secretdir: %w", err)
	}
	if tsDir != filepath.Base(tsDir) || !strings.HasPrefix(tsDir, "..") || len(tsDir) <= 2 {
		return nil, nil, fmt.Errorf("secretdir: %s points to %q, not to a timestamped directory beside it",
			filepath.Join(dir, DataDirName), tsDir)
	}
	// Opened through a root at dir, the timestamped directory cannot be a
	// link out of it.
	dirRoot, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("secretdir: %w", err)
	}
	defer dirRoot.Close()
	if fi, err := dirRoot.Lstat(tsDir); err != nil {
		return nil, nil, fmt.Errorf("secretdir: %w", err)
	} else if !fi.IsDir() {
		return nil, nil, fmt.Errorf("secretdir: %s is not a directory", filepath.Join(dir, tsDir))
	}
	root, err := dirRoot.OpenRoot(tsDir)
	if err != nil {
		return nil, nil, fmt.Errorf("secretdir: %w", err)
	}
	defer root.Close()
	files = map[string][]byte{}
	var total int64
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			skipped = append(skipped, p)
			return nil
		}
		data, err := readRegular(root, p, MaxPayload-total)
		if errors.Is(err, errNotRegular) {
			skipped = append(skipped, p) // replaced since the directory was listed
			return nil
		}
		if err != nil {
			return err
		}
		total += int64(len(data))
		files[p] = data
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("secretdir: %s: %w", dir, err)
	}
	return files, skipped, nil
}

var errNotRegular = errors.New("not a regular file")

// readRegular reads name from root when it is a regular file of at most max
// bytes. The open does not block on a named pipe and the check is made on
// the opened file, so a swap after the directory was listed changes nothing.
func readRegular(root *os.Root, name string, max int64) ([]byte, error) {
	f, err := root.OpenFile(name, openNoFollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: the payload would be larger than %d bytes, the limit of a Kubernetes Secret", name, MaxPayload)
	}
	return data, nil
}
