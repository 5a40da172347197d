package target

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/rotation"
)

// A crash between writing the temp file and renaming it leaves a live
// token in the directory: the next publish removes it, and nothing but
// such a temp file.
func TestFileRemovesTempFilesOfAnInterruptedPublish(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	f := &File{Path: filepath.Join(dir, "token"), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	outside := filepath.Join(t.TempDir(), "precious")
	mustWrite(t, outside, "keep me")
	stale := filepath.Join(dir, ".token.tmp-2938475610")
	mustWrite(t, stale, tok+"\n")
	kept := map[string]func(string) error{
		".token.tmp-123":        func(p string) error { return os.Symlink(outside, p) },
		".token.tmp-456":        func(p string) error { return os.Mkdir(p, 0o700) },
		".token.tmp-notours":    func(p string) error { return os.WriteFile(p, nil, 0o600) },
		".token.tmp-":           func(p string) error { return os.WriteFile(p, nil, 0o600) },
		".other.tmp-1234567890": func(p string) error { return os.WriteFile(p, nil, 0o600) },
	}
	for name, plant := range kept {
		if err := plant(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Publish(context.Background(), tok+"2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale temp file is still there: %v", err)
	}
	for name := range kept {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was removed: %v", name, err)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep me" {
		t.Error("a link was followed")
	}
	if !strings.Contains(logs.String(), stale) || strings.Contains(logs.String(), tok) {
		t.Errorf("log: %q", logs.String())
	}
}

// A named pipe, a directory or a link where the token file belongs is
// refused at once, without blocking, and left as it is.
func TestFileRefusesWhatIsNotARegularFile(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "elsewhere")
	mustWrite(t, outside, "old\n")
	for name, plant := range map[string]func(string) error{
		"named pipe":    func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"directory":     func(p string) error { return os.Mkdir(p, 0o700) },
		"symbolic link": func(p string) error { return os.Symlink(outside, p) },
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if err := plant(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Lstat(path)
			f := &File{Path: path, Logger: slog.New(slog.DiscardHandler)}
			err := publishWithin(t, f, tok)
			if !errors.Is(err, ErrRefused) || !errors.Is(err, rotation.ErrNotRegularFile) || !strings.Contains(err.Error(), name) {
				t.Errorf("Publish: %v", err)
			}
			if after, _ := os.Lstat(path); after == nil || after.Mode().Type() != before.Mode().Type() {
				t.Errorf("the %s was replaced", name)
			}
			if b, _ := os.ReadFile(outside); string(b) != "old\n" {
				t.Error("the link was followed")
			}
			if name != "symbolic link" {
				if _, err := f.ReadBack(context.Background()); !errors.Is(err, rotation.ErrNotRegularFile) {
					t.Errorf("ReadBack: %v", err)
				}
			}
		})
	}
}

// The token file keeps the owner, group and mode of the file it replaces,
// so that a writer running as another user can still read it.
func TestFileKeepsOwnerGroupAndMode(t *testing.T) {
	nobody, nogroup := requireRootAndNobody(t)
	path := filepath.Join(t.TempDir(), "token")
	mustWrite(t, path, "old\n")
	uid, gid := atoi(t, nobody.Uid), atoi(t, nogroup.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: path, Logger: slog.New(slog.DiscardHandler)}
	for range 2 { // a change, then no change
		if err := f.Publish(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		checkOwner(t, path, uid, gid, 0o640)
	}
	// A configured mode wins over the existing one.
	f.Mode = 0o600
	if err := f.Publish(context.Background(), tok+"2"); err != nil {
		t.Fatal(err)
	}
	checkOwner(t, path, uid, gid, 0o600)
}

// owner and group give a first write its owner; a combination the owner
// could not read is refused before anything is written.
func TestFileOwnerAndGroupForAFirstWrite(t *testing.T) {
	nobody, nogroup := requireRootAndNobody(t)
	path := filepath.Join(t.TempDir(), "token")
	f := &File{Path: path, Owner: nobody, Group: nogroup, Logger: slog.New(slog.DiscardHandler)}
	if err := f.Publish(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	checkOwner(t, path, atoi(t, nobody.Uid), atoi(t, nogroup.Gid), 0o600)

	for name, bad := range map[string]*File{
		"owner without read": {Path: filepath.Join(t.TempDir(), "token"), Owner: nobody, Mode: 0o240},
		"group without read": {Path: filepath.Join(t.TempDir(), "token"), Group: nogroup, Mode: 0o600},
	} {
		bad.Logger = slog.New(slog.DiscardHandler)
		if err := bad.Publish(context.Background(), tok); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "could not read") {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := os.Lstat(bad.Path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a file was written", name)
		}
	}
}

func requireRootAndNobody(t *testing.T) (*user.User, *user.Group) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root (CI runs these tests as root)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody to give the file to: %v", err)
	}
	nogroup, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Skipf("no group for nobody: %v", err)
	}
	return nobody, nogroup
}

func checkOwner(t *testing.T, path string, uid, gid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != mode {
		t.Errorf("%s is %d:%d %04o, want %d:%d %04o", path, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid, mode)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFileOwnerAndGroupMustExist(t *testing.T) {
	for name, cfg := range map[string]config.Target{
		"owner": {Type: config.TargetFile, Path: "/x", Owner: "no-such-user-influxrotate"},
		"group": {Type: config.TargetFile, Path: "/x", Group: "no-such-group-influxrotate"},
	} {
		if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), name+` "no-such-`) {
			t.Errorf("%s: %v", name, err)
		}
	}
	f, err := New(config.Target{Type: config.TargetFile, Path: "/x", Owner: "0", Group: "0"}, Options{})
	if err != nil || f.(*File).Owner.Uid != "0" || f.(*File).Group.Gid != "0" {
		t.Errorf("numeric ids: %+v, %v", f, err)
	}
}
