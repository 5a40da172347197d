// Package secretvolume changes a token file in tests the ways it changes in
// the field, so a token source can be tested against each of them.
//
// The field has more writers than the kubelet: Vault Agent and
// consul-template render to a temp file and rename it over the target; a
// shell `echo tok > file` truncates first and writes after, so a reader can
// see an empty or half file; operators delete and re-create files or whole
// directories, and change modes. Each helper reproduces one of those with the
// same system calls, and the two-step ones take a hook called between the
// steps so a test can observe the intermediate state (for example: assert
// the source has not adopted an empty token) before the write completes.
//
// Volume wraps rotation/secretdir for Secret-volume (kubelet) updates.
//
// Helpers fail the test on any filesystem error; they are for tests only.
package secretvolume

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/influxrotate/influxrotate/internal/fsutil"
	"github.com/influxrotate/influxrotate/rotation/secretdir"
)

// DefaultMode is what a new file gets when a helper is given mode 0 and
// there is no existing file to take the mode from (consul-template's rule).
const DefaultMode os.FileMode = 0o644

// RenameOver replaces path the way Vault Agent and consul-template render a
// file: a temp file in the same directory, write, fsync, close, chmod, then
// rename over path. Readers see the old or the new content, never a mix; a
// watcher of path itself loses it (the inode changes). Mode 0 keeps the
// existing file's mode, else DefaultMode.
func RenameOver(t testing.TB, path string, content []byte, mode os.FileMode) {
	t.Helper()
	mode = modeFor(path, mode)
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp")
	if err != nil {
		t.Fatalf("secretvolume: rename-over %s: %v", path, err)
	}
	tmp := f.Name()
	fail := func(err error) {
		_ = f.Close()
		_ = os.Remove(tmp)
		t.Fatalf("secretvolume: rename-over %s: %v", path, err)
	}
	if _, err := f.Write(content); err != nil {
		fail(err)
	}
	if err := f.Sync(); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		fail(err)
	}
	syncDir(t, dir)
}

// Stage names the intermediate states of WriteInPlace.
type Stage int

const (
	// Truncated: the file exists, with the same inode, and is empty.
	Truncated Stage = iota
	// HalfWritten: the file holds the first half of the new content.
	HalfWritten
)

func (s Stage) String() string {
	switch s {
	case Truncated:
		return "truncated"
	case HalfWritten:
		return "half-written"
	}
	return "unknown stage"
}

// WriteInPlace rewrites path keeping its inode, like `echo tok > file`, `cp`
// or an editor saving in place: open with O_TRUNC, write the first half, then
// the rest. between (may be nil) is called after the truncation and after the
// first half, while the file is in that state, so a test can check what a
// reader does with an empty or partial token. The file is created with mode
// (0: DefaultMode) if missing; an existing file keeps its mode.
func WriteInPlace(t testing.TB, path string, content []byte, mode os.FileMode, between func(Stage)) {
	t.Helper()
	if mode == 0 {
		mode = DefaultMode
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatalf("secretvolume: write in place %s: %v", path, err)
	}
	defer f.Close()
	step := func(part []byte, stage Stage, call bool) {
		t.Helper()
		if _, err := f.Write(part); err != nil {
			t.Fatalf("secretvolume: write in place %s: %v", path, err)
		}
		// Flush to the file so another process or goroutine reading it sees
		// exactly this stage.
		if err := f.Sync(); err != nil {
			t.Fatalf("secretvolume: write in place %s: %v", path, err)
		}
		if call && between != nil {
			between(stage)
		}
	}
	half := len(content) / 2
	step(nil, Truncated, true)
	step(content[:half], HalfWritten, true)
	step(content[half:], HalfWritten, false)
	if err := f.Close(); err != nil {
		t.Fatalf("secretvolume: write in place %s: %v", path, err)
	}
}

// DeleteAndRecreate removes path, calls between (may be nil) while it is
// missing, then creates it anew (a new inode) with content and mode
// (0: DefaultMode).
func DeleteAndRecreate(t testing.TB, path string, content []byte, mode os.FileMode, between func()) {
	t.Helper()
	if mode == 0 {
		mode = DefaultMode
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("secretvolume: delete %s: %v", path, err)
	}
	syncDir(t, filepath.Dir(path))
	if between != nil {
		between()
	}
	writeNew(t, path, content, mode)
}

// RecreateDir removes dir with everything in it, calls between (may be nil)
// while it is missing, then creates it again holding files (plain files,
// mode 0 meaning DefaultMode). A watch on dir is lost; a watcher must notice
// and re-establish it.
func RecreateDir(t testing.TB, dir string, files map[string][]byte, mode os.FileMode, between func()) {
	t.Helper()
	if mode == 0 {
		mode = DefaultMode
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatalf("secretvolume: remove dir %s: %v", dir, err)
	}
	if between != nil {
		between()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("secretvolume: create dir %s: %v", dir, err)
	}
	for name, content := range files {
		writeNew(t, filepath.Join(dir, name), content, mode)
	}
	syncDir(t, dir)
}

// Chmod changes path's mode only; a watcher gets a Chmod event and the
// content is unchanged, so a source must not report a new token.
func Chmod(t testing.TB, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatalf("secretvolume: chmod %s: %v", path, err)
	}
}

// Volume is a directory laid out and updated like a Kubernetes Secret volume.
type Volume struct {
	// Dir is the mount point; keys appear as Dir/<key>.
	Dir  string
	Mode os.FileMode

	t     testing.TB
	files map[string][]byte
}

// NewVolume creates a Secret volume in a fresh temp dir holding files, with
// mode (0: the kubelet default 0644).
func NewVolume(t testing.TB, mode os.FileMode, files map[string][]byte) *Volume {
	t.Helper()
	v := &Volume{Dir: filepath.Join(t.TempDir(), "secret"), Mode: mode, t: t}
	v.Update(files)
	return v
}

// Path is the visible path of key, the one a token source is configured with.
func (v *Volume) Path(key string) string { return filepath.Join(v.Dir, key) }

// Update replaces the volume's whole content, as the kubelet does when the
// Secret object changes.
func (v *Volume) Update(files map[string][]byte) {
	v.t.Helper()
	if err := secretdir.Write(v.Dir, files, v.Mode); err != nil {
		v.t.Fatalf("secretvolume: %v", err)
	}
	v.files = maps.Clone(files)
}

// Set changes one key and keeps the others, like `kubectl patch secret`.
func (v *Volume) Set(key string, value []byte) {
	v.t.Helper()
	files := maps.Clone(v.files)
	if files == nil {
		files = map[string][]byte{}
	}
	files[key] = value
	v.Update(files)
}

// Delete removes one key; its visible link disappears.
func (v *Volume) Delete(key string) {
	v.t.Helper()
	files := maps.Clone(v.files)
	delete(files, key)
	v.Update(files)
}

// A Changer is one way a single token file is written in the field, for
// table-driven tests of a source over all of them.
type Changer struct {
	Name string
	// Write puts content at dir/name, creating or updating it, and returns
	// the path a reader is configured with.
	Write func(t testing.TB, dir, name string, content []byte) string
}

// Changers lists every way of Write this package knows; two-step ones run
// without a hook here.
func Changers() []Changer {
	return []Changer{
		{Name: "kubelet", Write: func(t testing.TB, dir, name string, content []byte) string {
			t.Helper()
			if err := secretdir.Write(dir, map[string][]byte{name: content}, 0); err != nil {
				t.Fatalf("secretvolume: %v", err)
			}
			return filepath.Join(dir, name)
		}},
		{Name: "rename-over", Write: func(t testing.TB, dir, name string, content []byte) string {
			t.Helper()
			RenameOver(t, filepath.Join(dir, name), content, 0)
			return filepath.Join(dir, name)
		}},
		{Name: "in-place", Write: func(t testing.TB, dir, name string, content []byte) string {
			t.Helper()
			WriteInPlace(t, filepath.Join(dir, name), content, 0, nil)
			return filepath.Join(dir, name)
		}},
		{Name: "delete-recreate", Write: func(t testing.TB, dir, name string, content []byte) string {
			t.Helper()
			DeleteAndRecreate(t, filepath.Join(dir, name), content, 0, nil)
			return filepath.Join(dir, name)
		}},
	}
}

func modeFor(path string, mode os.FileMode) os.FileMode {
	if mode != 0 {
		return mode
	}
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	return DefaultMode
}

func writeNew(t testing.TB, path string, content []byte, mode os.FileMode) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatalf("secretvolume: create %s: %v", path, err)
	}
	if _, err := f.Write(content); err != nil {
		_ = f.Close()
		t.Fatalf("secretvolume: create %s: %v", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		t.Fatalf("secretvolume: create %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("secretvolume: create %s: %v", path, err)
	}
	// The umask filtered OpenFile's mode; the requested one must win.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatalf("secretvolume: chmod %s: %v", path, err)
	}
}

func syncDir(t testing.TB, dir string) {
	t.Helper()
	if err := fsutil.SyncDir(dir); err != nil {
		t.Fatalf("secretvolume: sync dir %s: %v", dir, err)
	}
}
