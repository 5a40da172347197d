package secretvolume

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func stat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

func TestRenameOverReplacesInodeAndKeepsMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	WriteInPlace(t, p, []byte("old"), 0o600, nil)
	before := stat(t, p)

	RenameOver(t, p, []byte("new"), 0)

	after := stat(t, p)
	if os.SameFile(before, after) {
		t.Error("rename-over kept the inode; Vault Agent's rename gives a new one")
	}
	if after.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want the existing 0600", after.Mode().Perm())
	}
	if got := read(t, p); got != "new" {
		t.Errorf("content %q", got)
	}
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("temp file left behind: %v", n)
	}

	RenameOver(t, p, []byte("newer"), 0o640)
	if m := stat(t, p).Mode().Perm(); m != 0o640 {
		t.Errorf("explicit mode %v, want 0640", m)
	}
	fresh := filepath.Join(dir, "fresh")
	RenameOver(t, fresh, []byte("x"), 0)
	if m := stat(t, fresh).Mode().Perm(); m != DefaultMode {
		t.Errorf("new file mode %v, want %v", m, DefaultMode)
	}
}

func TestWriteInPlaceExposesEmptyAndHalfStates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	WriteInPlace(t, p, []byte("first-token"), 0o600, nil)
	before := stat(t, p)

	seen := map[Stage]string{}
	WriteInPlace(t, p, []byte("0123456789"), 0, func(s Stage) {
		seen[s] = read(t, p)
	})

	if got, ok := seen[Truncated]; !ok || got != "" {
		t.Errorf("at %v a reader saw %q (called %v), want empty", Truncated, got, ok)
	}
	if got := seen[HalfWritten]; got != "01234" {
		t.Errorf("at %v a reader saw %q, want 01234", HalfWritten, got)
	}
	if len(seen) != 2 {
		t.Errorf("hook called for %v, want exactly the two stages", seen)
	}
	if got := read(t, p); got != "0123456789" {
		t.Errorf("final content %q", got)
	}
	after := stat(t, p)
	if !os.SameFile(before, after) {
		t.Error("in-place write changed the inode")
	}
	if after.Mode().Perm() != 0o600 {
		t.Errorf("existing mode not kept: %v", after.Mode().Perm())
	}
}

func TestDeleteAndRecreate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	WriteInPlace(t, p, []byte("old"), 0, nil)
	called := false
	DeleteAndRecreate(t, p, []byte("new"), 0o400, func() {
		called = true
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("file still there between the steps: %v", err)
		}
	})
	if !called {
		t.Fatal("hook not called")
	}
	// No inode check: filesystems hand the freed inode number straight back.
	after := stat(t, p)
	if after.Mode().Perm() != 0o400 || read(t, p) != "new" {
		t.Errorf("got mode %v content %q", after.Mode().Perm(), read(t, p))
	}
}

func TestRecreateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	RecreateDir(t, dir, map[string][]byte{"token": []byte("a"), "stale": []byte("s")}, 0, nil)
	called := false
	RecreateDir(t, dir, map[string][]byte{"token": []byte("b")}, 0o440, func() {
		called = true
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("dir still there between the steps: %v", err)
		}
	})
	if !called {
		t.Fatal("hook not called")
	}
	if got := strings.Join(names(t, dir), ","); got != "token" {
		t.Errorf("dir holds %s, want only token", got)
	}
	if read(t, filepath.Join(dir, "token")) != "b" || stat(t, filepath.Join(dir, "token")).Mode().Perm() != 0o440 {
		t.Error("re-created token wrong")
	}
}

func TestChmodKeepsContent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	WriteInPlace(t, p, []byte("tok"), 0o644, nil)
	Chmod(t, p, 0o400)
	if m := stat(t, p).Mode().Perm(); m != 0o400 {
		t.Errorf("mode %v", m)
	}
	if read(t, p) != "tok" {
		t.Error("content changed")
	}
}

func TestVolume(t *testing.T) {
	v := NewVolume(t, 0o440, map[string][]byte{"token": []byte("t1"), "org": []byte("acme")})
	if read(t, v.Path("token")) != "t1" {
		t.Fatal("initial token")
	}
	if fi, err := os.Lstat(v.Path("token")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("visible token is not a kubelet-style link (%v)", err)
	}
	if m := stat(t, v.Path("token")).Mode().Perm(); m != 0o440 {
		t.Errorf("mode %v", m)
	}

	v.Set("token", []byte("t2"))
	if read(t, v.Path("token")) != "t2" || read(t, v.Path("org")) != "acme" {
		t.Error("Set must change one key and keep the others")
	}
	v.Delete("org")
	if _, err := os.Lstat(v.Path("org")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("deleted key still visible: %v", err)
	}
	if read(t, v.Path("token")) != "t2" {
		t.Error("Delete touched another key")
	}
}

func TestChangersCreateAndUpdate(t *testing.T) {
	for _, c := range Changers() {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			p := c.Write(t, dir, "token", []byte("one"))
			if read(t, p) != "one" {
				t.Fatalf("create: %q", read(t, p))
			}
			if p2 := c.Write(t, dir, "token", []byte("two")); p2 != p {
				t.Errorf("path changed %s -> %s", p, p2)
			}
			if read(t, p) != "two" {
				t.Fatalf("update: %q", read(t, p))
			}
		})
	}
}
