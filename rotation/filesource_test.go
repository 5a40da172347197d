package rotation

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/testutil/capture"
	"github.com/influxrotate/influxrotate/testutil/secretvolume"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// waitDelivery is how long a change may take to be seen; generous for a
// loaded CI machine, never reached when things work.
const waitDelivery = 10 * time.Second

func newFileSource(t *testing.T, cfg FileSourceConfig) (*FileSource, *capture.Buffer) {
	t.Helper()
	log, buf := newTestLogger()
	cfg.Logger = log
	if cfg.Stats == nil {
		cfg.Stats = new(Stats)
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 20 * time.Millisecond
	}
	if cfg.Reread == 0 {
		cfg.Reread = -1 // prove the watch works on its own
	}
	s, err := NewFileSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		assertNoSecret(t, "source log", buf.String(), tokenN(1), tokenN(2), tokenN(3), tokenN(4))
	})
	return s, buf
}

// expectToken waits for the next delivery and checks it is want.
func expectToken(t *testing.T, s *FileSource, want string) {
	t.Helper()
	select {
	case c, ok := <-s.Changes():
		if !ok {
			t.Fatal("Changes closed")
		}
		if c.Token() != want {
			t.Fatalf("delivered %v, want %s", c, Fingerprint(want))
		}
	case <-time.After(waitDelivery):
		t.Fatalf("no change delivered within %v, want %s", waitDelivery, Fingerprint(want))
	}
}

// expectNothing waits for n more completed reads and checks nothing was
// delivered.
func expectNothing(t *testing.T, s *FileSource, n int64) {
	t.Helper()
	target := s.checks.Load() + n
	wait.For(t, waitDelivery, "the source to re-read", func() bool { return s.checks.Load() >= target })
	select {
	case c := <-s.Changes():
		t.Fatalf("unexpected delivery of %v", c)
	default:
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func readToken(t *testing.T, s Source) string {
	t.Helper()
	c, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.Token()
}

func TestFileSourceKubeletSecretVolumeUpdate(t *testing.T) {
	v := secretvolume.NewVolume(t, 0o644, map[string][]byte{"token": []byte(tokenN(1) + "\n"), "org": []byte("acme")})
	s, _ := newFileSource(t, FileSourceConfig{Path: v.Path("token")})
	if got := readToken(t, s); got != tokenN(1) {
		t.Fatalf("Read: wrong token")
	}
	for _, n := range []int{2, 3, 4} {
		v.Set("token", []byte(tokenN(n)+"\n"))
		expectToken(t, s, tokenN(n))
	}
	// Another key changing alone is not a token change.
	v.Set("org", []byte("other"))
	expectNothing(t, s, 1)
	if n := s.stats.SourceErrors.Load(); n != 0 {
		t.Errorf("SourceErrors = %d during AtomicWriter updates, want 0", n)
	}
}

func TestFileSourceRenameOver(t *testing.T) {
	// Vault Agent and consul-template: temp file in the same directory,
	// fsync, chmod, rename over the destination.
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	writeFile(t, path, tokenN(1), 0o600)
	s, _ := newFileSource(t, FileSourceConfig{Path: path})
	for _, n := range []int{2, 3} {
		secretvolume.RenameOver(t, path, []byte(tokenN(n)+"\n"), 0o600)
		expectToken(t, s, tokenN(n))
	}
}

func TestFileSourceSymlinkIntoAnotherDirectory(t *testing.T) {
	// /etc/telegraf/token -> /run/secrets/token, where the real file is
	// replaced by rename: the event happens outside the parent directory.
	etc, run := t.TempDir(), t.TempDir()
	real := filepath.Join(run, "token")
	writeFile(t, real, tokenN(1), 0o600)
	path := filepath.Join(etc, "token")
	if err := os.Symlink(real, path); err != nil {
		t.Fatal(err)
	}
	s, _ := newFileSource(t, FileSourceConfig{Path: path})
	secretvolume.RenameOver(t, real, []byte(tokenN(2)), 0o600)
	expectToken(t, s, tokenN(2))
	// Re-pointing the link (ln -sfn) is an event in the parent directory.
	other := filepath.Join(t.TempDir(), "token")
	writeFile(t, other, tokenN(3), 0o600)
	link := filepath.Join(etc, ".link")
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link, path); err != nil {
		t.Fatal(err)
	}
	expectToken(t, s, tokenN(3))
	// And the new target's directory is watched instead.
	secretvolume.RenameOver(t, other, []byte(tokenN(4)), 0o600)
	expectToken(t, s, tokenN(4))
}

func TestFileSourceTruncateThenWriteInPlace(t *testing.T) {
	// `echo tok > file`: the file is truncated, then written. A read in
	// between sees an empty or half-written file.
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	writeFile(t, path, tokenN(1), 0o600)
	stats := new(Stats)
	s, logs := newFileSource(t, FileSourceConfig{Path: path, Stats: stats, Debounce: 300 * time.Millisecond})

	secretvolume.WriteInPlace(t, path, []byte(tokenN(2)+"\n"), 0, func(stage secretvolume.Stage) {
		if stage != secretvolume.Truncated {
			// Half written, then at once the rest, in one burst: the
			// debounce reads once, after the burst.
			return
		}
		// The empty moment: the source reads the empty file and refuses it.
		// The source counts the failure before it logs it: wait for the log
		// line itself.
		wait.For(t, waitDelivery, "the empty file to be logged", func() bool { return strings.Contains(logs.String(), "token is empty") })
		if n := stats.SourceErrors.Load(); n < 1 {
			t.Errorf("empty file logged but not counted: source_errors = %d", n)
		}
		expectNothing(t, s, 0)
	})
	// The whole token only is delivered.
	expectToken(t, s, tokenN(2))
}

func TestFileSourceDeleteThenRecreateLater(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	writeFile(t, path, tokenN(1), 0o600)
	stats := new(Stats)
	s, logs := newFileSource(t, FileSourceConfig{Path: path, Stats: stats})
	secretvolume.DeleteAndRecreate(t, path, []byte(tokenN(2)), 0o600, func() {
		wait.For(t, waitDelivery, "the deletion to be seen", func() bool { return stats.SourceErrors.Load() >= 1 })
		if _, err := s.Read(context.Background()); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Read of a deleted file: %v, want fs.ErrNotExist", err)
		}
	})
	expectToken(t, s, tokenN(2))
	if n := logs.Count("token file is missing"); n != 1 {
		t.Errorf("missing file logged %d times, want once", n)
	}
}

func TestFileSourceDirectoryRemovedAndRecreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "token")
	writeFile(t, path, tokenN(1), 0o600)
	stats := new(Stats)
	s, _ := newFileSource(t, FileSourceConfig{Path: path, Stats: stats})
	secretvolume.RecreateDir(t, dir, map[string][]byte{"token": []byte(tokenN(2))}, 0o600, func() {
		wait.For(t, waitDelivery, "the removal to be seen", func() bool { return stats.SourceErrors.Load() >= 1 })
	})
	expectToken(t, s, tokenN(2))
	// The new directory is watched again, not only its parent.
	writeFile(t, path, tokenN(3), 0o600)
	expectToken(t, s, tokenN(3))
}

func TestFileSourceMissingAtStart(t *testing.T) {
	// A secret mount that does not exist yet, directory included.
	dir := filepath.Join(t.TempDir(), "not", "yet")
	path := filepath.Join(dir, "token")
	s, _ := newFileSource(t, FileSourceConfig{Path: path})
	if _, err := s.Read(context.Background()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read: %v, want an error wrapping fs.ErrNotExist", err)
	} else if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, tokenN(1), 0o600)
	expectToken(t, s, tokenN(1))
}

func TestFileSourceChmod000ThenBack(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	writeFile(t, path, tokenN(1), 0o600)
	stats := new(Stats)
	s, logs := newFileSource(t, FileSourceConfig{Path: path, Stats: stats})
	// The new token arrives unreadable (as when an operator's chmod lands
	// before the right owner is set), then becomes readable.
	tmp := filepath.Join(dir, ".tmp")
	writeFile(t, tmp, tokenN(2), 0o000)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// root ignores file permissions, so mode 000 cannot make the read
		// fail here: check that the change is seen, then run this very
		// test again as an unprivileged user for the real case.
		expectToken(t, s, tokenN(2))
		runUnprivileged(t, "^TestFileSourceChmod000ThenBack$")
		return
	}
	wait.For(t, waitDelivery, "the permission error", func() bool { return stats.SourceErrors.Load() >= 1 })
	expectNothing(t, s, 0)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	expectToken(t, s, tokenN(2))
	if logs.Count("permission denied") != 1 {
		t.Errorf("permission error not logged exactly once: %s", logs)
	}
}

func TestFileSourcePeriodicRereadWithoutEvents(t *testing.T) {
	// The token is changed through a hard link in another directory, so the
	// watched directory sees no event (as with a missed event, an inotify
	// overflow or a network file system). The debounce is set so long that
	// an event-driven read could not happen during the test anyway: only the
	// periodic re-read can deliver the change.
	dir, other := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "token")
	writeFile(t, path, tokenN(1), 0o600)
	link := filepath.Join(other, "link")
	if err := os.Link(path, link); err != nil {
		t.Skipf("hard links not supported here: %v", err)
	}
	s, _ := newFileSource(t, FileSourceConfig{Path: path, Debounce: time.Hour, Reread: 30 * time.Millisecond})
	f, err := os.OpenFile(link, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Same length, one write: no truncation, so no read sees half a token.
	if _, err := f.WriteAt([]byte(tokenN(2)), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	expectToken(t, s, tokenN(2))
}

func TestFileSourceInvalidContentKeepsTokenAndLogsOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	writeFile(t, path, tokenN(1), 0o600)
	stats := new(Stats)
	s, logs := newFileSource(t, FileSourceConfig{Path: path, Stats: stats})
	secretLooking := "first-line-SECRET\nsecond-line-SECRET"
	for i := range 3 {
		// The same bad content written again and again: one log line. It is
		// renamed into place: written in place, a writer stalled between
		// truncate and write (a loaded machine) lets a read see an empty file,
		// a different failure that is rightly logged too.
		secretvolume.RenameOver(t, path, []byte(secretLooking), 0o600)
		wait.For(t, waitDelivery, "the bad content to be counted", func() bool { return stats.SourceErrors.Load() >= int64(i+1) })
	}
	_, err := s.Read(context.Background())
	if !errors.Is(err, ErrTokenMultiline) || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("Read error %q: want ErrTokenMultiline naming the file, not the content", err)
	}
	if n := logs.Count("token file cannot be used"); n != 1 {
		t.Errorf("bad content logged %d times, want once:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "SECRET") {
		t.Errorf("log repeats file content:\n%s", logs)
	}
	// A different failure is logged again.
	writeFile(t, path, "", 0o600)
	wait.For(t, waitDelivery, "the empty file to be logged", func() bool { return logs.Count("token file cannot be used") == 2 })
	writeFile(t, path, tokenN(2), 0o600)
	expectToken(t, s, tokenN(2))
	wait.For(t, waitDelivery, "recovery to be logged", func() bool { return logs.Count("readable again") == 1 })
}

func TestFileSourceRejectsEveryBadContent(t *testing.T) {
	for name, tc := range map[string]struct {
		content []byte
		want    error
	}{
		"empty file":           {nil, ErrTokenEmpty},
		"only a newline":       {[]byte("\n"), ErrTokenEmpty},
		"only a BOM":           {[]byte("\uFEFF"), ErrTokenEmpty},
		"over 4 KiB":           {[]byte(strings.Repeat("SECRETSECRET", 400)), ErrTokenTooLong},
		"two tokens":           {[]byte("SECRET-one\nSECRET-two\n"), ErrTokenMultiline},
		"NUL padded":           {[]byte("SECRET\x00\x00"), ErrTokenNonPrintable},
		"gzip instead of text": {[]byte("\x1f\x8b\x08\x00SECRET"), ErrTokenNonPrintable},
		"Latin-1 byte":         {[]byte("SECRET\xe9"), ErrTokenNonPrintable},
		"terminal escape":      {[]byte("SECRET\x1b[0m"), ErrTokenNonPrintable},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, _ := newFileSource(t, FileSourceConfig{Path: path})
			_, err := s.Read(context.Background())
			if !errors.Is(err, tc.want) {
				t.Fatalf("Read: %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q must name the file and not show its content", err)
			}
		})
	}
}

func TestFileSourceUnchangedContentIsNotDelivered(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	writeFile(t, path, tokenN(1), 0o600)
	s, _ := newFileSource(t, FileSourceConfig{Path: path})
	_ = readToken(t, s)
	writeFile(t, path, tokenN(1)+"\n", 0o600) // same token, different bytes
	expectNothing(t, s, 1)
}

func TestFileSourceCloseClosesChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	writeFile(t, path, tokenN(1), 0o600)
	s, err := NewFileSource(FileSourceConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close() // idempotent
	for range s.Changes() {
	}
}

func TestStaticSource(t *testing.T) {
	s, err := NewStaticSource(" " + tokenN(1) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if readToken(t, s) != tokenN(1) {
		t.Fatal("wrong token")
	}
	assertNoSecret(t, "Name", s.Name(), tokenN(1))
	s.Close()
	if _, ok := <-s.Changes(); ok {
		t.Error("static source delivered a change")
	}
	if _, err := NewStaticSource("a\nb"); !errors.Is(err, ErrTokenMultiline) {
		t.Errorf("multi-line static token: %v", err)
	}
}

func TestEnvSource(t *testing.T) {
	const name = "INFLUXROTATE_TEST_TOKEN"
	s, err := NewEnvSource(name)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Read(context.Background()); !errors.Is(err, ErrTokenEmpty) || !strings.Contains(err.Error(), name) {
		t.Fatalf("unset variable: %v", err)
	}
	t.Setenv(name, tokenN(1)+"\n")
	if readToken(t, s) != tokenN(1) {
		t.Fatal("wrong token")
	}
	t.Setenv(name, tokenN(2))
	if readToken(t, s) != tokenN(2) {
		t.Fatal("Read does not re-read the variable")
	}
	t.Setenv(name, "x\x01y")
	if _, err := s.Read(context.Background()); !errors.Is(err, ErrTokenNonPrintable) || strings.Contains(err.Error(), "x\x01y") {
		t.Fatalf("bad variable: %v", err)
	}
}

// runUnprivileged runs the named test of this test binary again as user
// nobody (65534) and fails t if it does not pass there. Without the right
// to switch users it says so and skips.
func runUnprivileged(t *testing.T, run string) {
	t.Helper()
	if os.Getenv("INFLUXROTATE_UNPRIVILEGED_CHILD") != "" {
		t.Fatal("still root in the unprivileged child")
	}
	self, err := os.Executable()
	if err != nil {
		t.Skipf("cannot find the test binary: %v", err)
	}
	// The go build directory is private to root: copy the binary out.
	dir, err := os.MkdirTemp("", "unprivileged")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "rotation.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", run, "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "INFLUXROTATE_UNPRIVILEGED_CHILD=1", "TMPDIR="+os.TempDir(), "HOME=/")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		t.Skipf("cannot run as an unprivileged user here (%v): only the root case was checked", err)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+strings.Trim(run, "^$")) {
		t.Fatalf("unprivileged run failed (%v):\n%s", err, out)
	}
	t.Logf("unprivileged run passed:\n%s", out)
}

// TestFileSourceSeesEveryWayOfWriting runs one change through each way a
// token file is written in the field (kubelet, rename-over, in place,
// delete and re-create).
func TestFileSourceSeesEveryWayOfWriting(t *testing.T) {
	for _, ch := range secretvolume.Changers() {
		t.Run(ch.Name, func(t *testing.T) {
			dir := t.TempDir()
			path := ch.Write(t, dir, "token", []byte(tokenN(1)+"\n"))
			s, _ := newFileSource(t, FileSourceConfig{Path: path})
			if got := readToken(t, s); got != tokenN(1) {
				t.Fatalf("Read: wrong token")
			}
			ch.Write(t, dir, "token", []byte(tokenN(2)+"\n"))
			expectToken(t, s, tokenN(2))
		})
	}
}
