package secretdir

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

var tsDirPattern = regexp.MustCompile(`^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$`)

// entries lists dir's names with what each is: "link:<target>", "dir" or "file".
func entries(t *testing.T, dir string) map[string]string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		switch {
		case de.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			out[de.Name()] = "link:" + target
		case de.IsDir():
			out[de.Name()] = "dir"
		default:
			out[de.Name()] = "file"
		}
	}
	return out
}

func tsDirs(t *testing.T, dir string) []string {
	t.Helper()
	var ts []string
	for name, kind := range entries(t, dir) {
		if kind == "dir" && tsDirPattern.MatchString(name) {
			ts = append(ts, name)
		}
	}
	sort.Strings(ts)
	return ts
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFirstWriteLayout(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{"token": []byte("tok-1"), "org": []byte("acme")}
	if err := Write(dir, files, 0o640); err != nil {
		t.Fatal(err)
	}

	ts := tsDirs(t, dir)
	if len(ts) != 1 {
		t.Fatalf("want one timestamped dir, got %v in %v", ts, entries(t, dir))
	}
	want := map[string]string{
		ts[0]:    "dir",
		"..data": "link:" + ts[0],
		"token":  "link:..data/token",
		"org":    "link:..data/org",
	}
	got := entries(t, dir)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("layout\n got %v\nwant %v", got, want)
	}
	if got := mustRead(t, filepath.Join(dir, "token")); got != "tok-1" {
		t.Errorf("token = %q", got)
	}
	fi, err := os.Stat(filepath.Join(dir, ts[0]))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("timestamped dir mode %v, want 0755", fi.Mode().Perm())
	}
}

func TestTimestampIsUTC(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, map[string][]byte{"k": []byte("v")}, 0); err != nil {
		t.Fatal(err)
	}
	ts := tsDirs(t, dir)[0]
	stamp, err := time.Parse("..2006_01_02_15_04_05", ts[:len("..2006_01_02_15_04_05")])
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(stamp); d < -time.Minute || d > time.Minute {
		t.Errorf("timestamp %s is %v away from now in UTC", ts, d)
	}
}

func TestModeRespected(t *testing.T) {
	old := syscall.Umask(0o077) // a restrictive umask must not change the result
	defer syscall.Umask(old)
	for _, mode := range []os.FileMode{0o400, 0o440, 0o644, 0o666} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			if err := Write(dir, map[string][]byte{"token": []byte("x")}, mode); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(dir, "token"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != mode {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), mode)
			}
		})
	}
	t.Run("zero means 0644", func(t *testing.T) {
		dir := t.TempDir()
		if err := Write(dir, map[string][]byte{"token": []byte("x")}, 0); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(filepath.Join(dir, "token"))
		if fi.Mode().Perm() != DefaultMode {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), DefaultMode)
		}
	})
	t.Run("mode change alone rewrites", func(t *testing.T) {
		dir := t.TempDir()
		files := map[string][]byte{"token": []byte("x")}
		if err := Write(dir, files, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Write(dir, files, 0o600); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(filepath.Join(dir, "token"))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
	})
}

func TestUpdateSwitchesDataLink(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, map[string][]byte{"token": []byte("old")}, 0); err != nil {
		t.Fatal(err)
	}
	first := tsDirs(t, dir)[0]
	visibleBefore, err := os.Lstat(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}

	if err := Write(dir, map[string][]byte{"token": []byte("new")}, 0); err != nil {
		t.Fatal(err)
	}
	ts := tsDirs(t, dir)
	if len(ts) != 1 || ts[0] == first {
		t.Fatalf("want exactly one new timestamped dir, had %s, now %v", first, ts)
	}
	got := entries(t, dir)
	if got["..data"] != "link:"+ts[0] {
		t.Errorf("..data = %s, want link to %s", got["..data"], ts[0])
	}
	if _, ok := got[NewDataDirName]; ok {
		t.Errorf("%s left behind", NewDataDirName)
	}
	if got := mustRead(t, filepath.Join(dir, "token")); got != "new" {
		t.Errorf("token = %q, want new", got)
	}
	// The visible link is untouched: watchers of it see no event.
	visibleAfter, err := os.Lstat(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(visibleBefore, visibleAfter) {
		t.Error("visible link was replaced; the kubelet leaves it alone")
	}
}

func TestUnchangedContentIsNoOp(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{"token": []byte("same"), "sub/inner": []byte("x")}
	if err := Write(dir, files, 0o600); err != nil {
		t.Fatal(err)
	}
	before := entries(t, dir)
	tsBefore, _ := os.Lstat(filepath.Join(dir, tsDirs(t, dir)[0]))

	// A copy of the map with equal bytes, as a caller re-rendering would pass.
	again := map[string][]byte{"token": []byte("same"), "sub/inner": []byte("x")}
	if err := Write(dir, again, 0o600); err != nil {
		t.Fatal(err)
	}
	after := entries(t, dir)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("no-op write changed the layout\nbefore %v\n after %v", before, after)
	}
	tsAfter, err := os.Lstat(filepath.Join(dir, tsDirs(t, dir)[0]))
	if err != nil || !os.SameFile(tsBefore, tsAfter) {
		t.Fatalf("timestamped dir replaced on a no-op write (%v)", err)
	}
}

func TestRemovedKeysDisappear(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, map[string][]byte{
		"token": []byte("a"), "old": []byte("b"), "nested/x": []byte("c"), "gone/y": []byte("d"),
	}, 0); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, map[string][]byte{"token": []byte("a"), "nested/z": []byte("e")}, 0); err != nil {
		t.Fatal(err)
	}
	got := entries(t, dir)
	for _, name := range []string{"old", "gone"} {
		if _, ok := got[name]; ok {
			t.Errorf("stale visible entry %q still there: %v", name, got)
		}
	}
	if got["nested"] != "link:..data/nested" {
		t.Errorf("nested = %q", got["nested"])
	}
	if _, err := os.Stat(filepath.Join(dir, "nested", "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("nested/x should be gone, stat err = %v", err)
	}
	if got := mustRead(t, filepath.Join(dir, "nested", "z")); got != "e" {
		t.Errorf("nested/z = %q", got)
	}
	if n := len(tsDirs(t, dir)); n != 1 {
		t.Errorf("%d timestamped dirs, want 1", n)
	}
}

func TestLeftoverDataTmpIsReplaced(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, map[string][]byte{"token": []byte("a")}, 0); err != nil {
		t.Fatal(err)
	}
	// What a crash between Symlink and Rename leaves behind.
	if err := os.Symlink("..nowhere", filepath.Join(dir, NewDataDirName)); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, map[string][]byte{"token": []byte("b")}, 0); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(dir, "token")); got != "b" {
		t.Errorf("token = %q", got)
	}
}

func TestInvalidPaths(t *testing.T) {
	for _, key := range []string{"", "/abs", "../up", "a/../../b", "..data", "..x/y", strings.Repeat("a", 256)} {
		t.Run(fmt.Sprintf("%.20q", key), func(t *testing.T) {
			dir := t.TempDir()
			err := Write(dir, map[string][]byte{key: []byte("v")}, 0)
			if err == nil {
				t.Fatalf("Write accepted key %q", key)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the directory", err)
			}
			if got := entries(t, dir); len(got) != 0 {
				t.Errorf("rejected write left %v", got)
			}
		})
	}
	if err := Write(t.TempDir(), map[string][]byte{"k": nil}, os.ModeSetuid|0o644); err == nil {
		t.Error("setuid mode accepted")
	}
}

// TestConcurrentReaderNeverSeesPartialState is the property consumers rely
// on: a reader opening the visible path at any moment during a stream of
// updates gets one complete version, never a truncated or mixed file, and a
// missing file only for the instant of the switch.
func TestConcurrentReaderNeverSeesPartialState(t *testing.T) {
	dir := t.TempDir()
	const updates = 150
	version := func(i int) []byte {
		// Large enough that a partial write would be visible.
		return bytes.Repeat([]byte(fmt.Sprintf("v%04d;", i)), 2048)
	}
	if err := Write(dir, map[string][]byte{"token": version(0)}, 0); err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	var reads, misses int
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline := time.Now().Add(30 * time.Second)
		for i := 0; i < 10_000_000 && time.Now().Before(deadline); i++ {
			select {
			case <-done:
				return
			default:
			}
			b, err := os.ReadFile(filepath.Join(dir, "token"))
			// The kubelet has the same window: a reader that resolved ..data
			// just before the switch can find the old directory already
			// removed. It is transient — the next open resolves the new
			// directory — so consumers must retry, and so does this reader.
			for retry := 0; retry < 3 && errors.Is(err, fs.ErrNotExist); retry++ {
				misses++
				b, err = os.ReadFile(filepath.Join(dir, "token"))
			}
			if err != nil {
				readErr = fmt.Errorf("read %d: %w (after retries)", i, err)
				return
			}
			if len(b) != len(version(0)) || !bytes.Equal(b, bytes.Repeat(b[:6], 2048)) {
				readErr = fmt.Errorf("read %d: partial or mixed content (%d bytes, starts %q)", i, len(b), b[:min(len(b), 12)])
				return
			}
			reads++
		}
	}()

	for i := 1; i <= updates; i++ {
		if err := Write(dir, map[string][]byte{"token": version(i)}, 0); err != nil {
			close(done)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	if reads == 0 {
		t.Fatal("reader never ran")
	}
	t.Logf("%d reads, %d transient misses", reads, misses)
	if got := mustRead(t, filepath.Join(dir, "token")); got != string(version(updates)) {
		t.Errorf("final content is not the last version")
	}
	if n := len(tsDirs(t, dir)); n != 1 {
		t.Errorf("%d timestamped dirs left, want 1", n)
	}
}

func TestConcurrentWritersSerialise(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if err := Write(dir, map[string][]byte{"token": []byte(fmt.Sprintf("w%d-%d", w, i))}, 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(tsDirs(t, dir)); n != 1 {
		t.Errorf("%d timestamped dirs left, want 1: %v", n, entries(t, dir))
	}
}

// TestUpdateEventsSpareTheVisibleFile pins what a watcher of the directory
// sees on an update, the reason token sources watch the parent directory and
// re-resolve: events on ..data_tmp, ..data and the timestamped directories,
// none on the visible name.
func TestUpdateEventsSpareTheVisibleFile(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, map[string][]byte{"token": []byte("old")}, 0); err != nil {
		t.Fatal(err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, map[string][]byte{"token": []byte("new")}, 0); err != nil {
		t.Fatal(err)
	}
	// inotify delivers a watch's events in order: once the sentinel's
	// creation arrives, everything the update caused has arrived too.
	sentinel := filepath.Join(dir, "zz-sentinel")
	if err := os.WriteFile(sentinel, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	seen := map[string][]string{}
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-w.Events:
			if ev.Name == sentinel {
				done = true
				continue
			}
			seen[filepath.Base(ev.Name)] = append(seen[filepath.Base(ev.Name)], ev.Op.String())
		case err := <-w.Errors:
			t.Fatal(err)
		case <-timeout:
			t.Fatalf("sentinel event never arrived; saw %v", seen)
		}
	}
	if ops, ok := seen["token"]; ok {
		t.Errorf("visible file got events %v; the kubelet never touches it", ops)
	}
	if len(seen[DataDirName]) == 0 || len(seen[NewDataDirName]) == 0 {
		t.Errorf("no events on %s / %s: %v", DataDirName, NewDataDirName, seen)
	}
	var tsEvents int
	for name := range seen {
		if tsDirPattern.MatchString(name) {
			tsEvents++
		}
	}
	if tsEvents < 2 {
		t.Errorf("want events on the new and the removed timestamped dir, saw %v", seen)
	}
	t.Logf("events: %v", seen)
}
