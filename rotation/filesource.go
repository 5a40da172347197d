package rotation

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/influxrotate/influxrotate/internal/lifecycle"
	"github.com/influxrotate/influxrotate/internal/slot"
)

// FileSource reads a token from a file and reports changes to it.
//
// It watches the file's parent directory, not the file: atomic writers
// (kubelet Secret volumes, Vault Agent, consul-template, editors) replace the
// file or a symlink above it, which drops a watch on the file itself. On any
// event in the directory, after a quiet period (Debounce), the path's
// symlinks are resolved again and the content is compared by hash, so the
// kind of event does not matter. When the directory itself disappears the
// nearest existing ancestor is watched until it comes back. A periodic
// re-read (Reread) covers lost events, inotify queue overflows and file
// systems without inotify.
//
// A read that fails or yields invalid content never replaces a good token:
// it is counted in Stats.SourceErrors and logged once per distinct failure.
type FileSource struct {
	path    string
	dir     string
	cfg     FileSourceConfig
	log     *slog.Logger
	stats   *Stats
	changes chan *Credential

	watcher *fsnotify.Watcher
	loop    *lifecycle.Goroutine

	// watchingDir is whether the parent directory itself is watched, else
	// ancestor is. target is the directory of the resolved file when a
	// symlink leads outside the parent directory. Owned by run.
	watchingDir bool
	ancestor    string
	target      string

	// checks counts completed reads by the watcher goroutine, so tests can
	// wait for one instead of sleeping.
	checks atomic.Int64

	// loadMu makes "read the file, compare, publish" one step for both
	// Read and the watcher, so neither can publish an older token after
	// the other published a newer one.
	loadMu sync.Mutex

	mu      sync.Mutex
	last    [sha256.Size]byte // hash of the last token delivered or read
	hasLast bool
	lastErr string // the failure last logged, "" after a success
}

// NewFileSource starts watching cfg.Path. A missing file is not an error: a
// secret mount may not exist yet. Read then fails with an error wrapping
// fs.ErrNotExist and Changes delivers the token once it appears.
func NewFileSource(cfg FileSourceConfig) (*FileSource, error) {
	if cfg.Path == "" {
		return nil, errors.New("token file: path is empty")
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("token file %q: %w", cfg.Path, err)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	if cfg.Reread == 0 {
		cfg.Reread = time.Minute
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("token file %q: watch: %w", path, err)
	}
	s := &FileSource{
		path:    path,
		dir:     filepath.Dir(path),
		cfg:     cfg,
		log:     cfg.Logger,
		stats:   cfg.Stats,
		changes: make(chan *Credential, 1),
		watcher: w,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.stats == nil {
		s.stats = new(Stats)
	}
	s.log = s.log.With("source", s.Name())
	// Watch first, then read: a change after the watch starts is an event,
	// one before it is in this read, which sets the baseline that Changes
	// compares against (the content at start is not a change).
	s.ensureWatch()
	if c, resolved, err := s.load(); err != nil {
		s.failed(err)
	} else {
		s.watchTarget(resolved)
		s.last, s.hasLast = sha256.Sum256([]byte(c.Token())), true
	}
	s.loop = lifecycle.Go(s.run)
	return s, nil
}

// Name returns `file "<path>"`.
func (s *FileSource) Name() string { return fmt.Sprintf("file %q", s.path) }

// Read reads and validates the file now. A missing file gives an error
// wrapping fs.ErrNotExist; invalid content an error wrapping one of the
// ErrToken* values. Errors name the file, never its content.
func (s *FileSource) Read(context.Context) (*Credential, error) {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	c, _, err := s.load()
	if err != nil {
		s.failed(err)
		return nil, err
	}
	// An undelivered change is older than what the caller now holds.
	slot.Clear(s.changes)
	s.mu.Lock()
	s.last, s.hasLast = sha256.Sum256([]byte(c.Token())), true
	s.mu.Unlock()
	s.recovered()
	return c, nil
}

// Changes delivers each valid token that differs from the last one
// delivered or read. Only the newest undelivered token is kept: a slow
// receiver gets the latest, never a stale one. Closed by Close.
func (s *FileSource) Changes() <-chan *Credential { return s.changes }

// Close stops the watcher goroutine, waits for it and closes Changes.
func (s *FileSource) Close() error {
	s.loop.Stop()
	return nil
}

// load reads the token. A missing file is retried twice at once: an
// AtomicWriter update can remove the directory a just-resolved symlink
// pointed to before the open, which is not a deletion of the file.
func (s *FileSource) load() (c *Credential, resolved string, err error) {
	for range 3 {
		if c, resolved, err = s.loadOnce(); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return c, resolved, err
		}
	}
	return nil, "", err
}

// loadOnce reads the token through ReadTokenFile's reader.
func (s *FileSource) loadOnce() (*Credential, string, error) {
	tok, resolved, err := readTokenFile(s.path)
	if err != nil {
		return nil, "", fmt.Errorf("token file %q: %w", s.path, err)
	}
	return NewCredential(tok, "", s.Name()), resolved, nil
}

// failed counts a failed read and logs it unless it is the failure already
// logged, so a missing file re-read every minute or a burst of events on
// a half-written file gives one line, not hundreds.
func (s *FileSource) failed(err error) {
	s.stats.SourceErrors.Add(1)
	msg := err.Error()
	s.mu.Lock()
	repeat := msg == s.lastErr
	s.lastErr = msg
	s.mu.Unlock()
	if repeat {
		return
	}
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("token file is missing; keeping the current token and waiting for it", "error", err)
		return
	}
	s.log.Warn("token file cannot be used; keeping the current token", "error", err)
}

func (s *FileSource) recovered() {
	s.mu.Lock()
	was := s.lastErr
	s.lastErr = ""
	s.mu.Unlock()
	if was != "" {
		s.log.Info("token file is readable again")
	}
}

// check reads the file and delivers its token if it changed.
func (s *FileSource) check() {
	defer s.checks.Add(1)
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	c, resolved, err := s.load()
	if err != nil {
		s.failed(err)
		return
	}
	s.watchTarget(resolved)
	s.recovered()
	sum := sha256.Sum256([]byte(c.Token()))
	s.mu.Lock()
	same := s.hasLast && sum == s.last
	s.last, s.hasLast = sum, true
	s.mu.Unlock()
	if same {
		return
	}
	s.log.Info("token file changed", "credential", c)
	slot.Replace(s.changes, c)
}

// ensureWatch watches the parent directory, or while it does not exist the
// nearest existing ancestor, so that its re-creation is seen. inotify drops
// the watch of a deleted directory by itself, hence the check on every
// call. Called from run only (and once before run starts).
func (s *FileSource) ensureWatch() {
	if s.watched(s.dir) {
		s.watchingDir = true
		return
	}
	if err := s.watcher.Add(s.dir); err == nil {
		s.watchingDir = true
		if s.ancestor != "" {
			_ = s.watcher.Remove(s.ancestor)
			s.ancestor = ""
		}
		return
	}
	s.watchingDir = false
	for anc := filepath.Dir(s.dir); ; anc = filepath.Dir(anc) {
		if anc == s.ancestor && s.watched(anc) {
			return
		}
		if err := s.watcher.Add(anc); err == nil {
			if s.ancestor != "" && s.ancestor != anc {
				_ = s.watcher.Remove(s.ancestor)
			}
			s.ancestor = anc
			return
		}
		if anc == filepath.Dir(anc) {
			return // nothing to watch; the periodic re-read still runs
		}
	}
}

// watchTarget also watches the directory of the file the path resolves to
// when a symlink leads out of the parent directory (a token linked from
// /etc to /run/secrets): a rename-over there produces no event in the
// parent. Targets inside the parent directory, such as the kubelet's
// timestamped directories, need nothing more. Called from run only.
func (s *FileSource) watchTarget(resolved string) {
	td := filepath.Dir(resolved)
	if rel, err := filepath.Rel(s.dir, td); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		td = "" // inside the watched directory
	}
	if td == s.target && (td == "" || s.watched(td)) {
		return
	}
	if s.target != "" {
		_ = s.watcher.Remove(s.target)
		s.target = ""
	}
	if td != "" && s.watcher.Add(td) == nil {
		s.target = td
	}
}

func (s *FileSource) watched(dir string) bool {
	return slices.Contains(s.watcher.WatchList(), dir)
}

// run is the one goroutine that owns the watcher.
func (s *FileSource) run(ctx context.Context) {
	defer close(s.changes)
	defer s.watcher.Close()

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	var reread <-chan time.Time
	if s.cfg.Reread > 0 {
		t := time.NewTicker(s.cfg.Reread)
		defer t.Stop()
		reread = t.C
	}
	for {
		select {
		case <-ctx.Done():
			debounce.Stop()
			return
		case ev, ok := <-s.watcher.Events:
			if !ok {
				return
			}
			if !s.watchingDir && !onPathTo(ev.Name, s.dir) && filepath.Dir(ev.Name) != s.target {
				continue // unrelated activity in an ancestor directory
			}
			debounce.Reset(s.cfg.Debounce)
		case err, ok := <-s.watcher.Errors:
			if !ok {
				return
			}
			// An overflow means events were lost: read now rather than wait
			// for the periodic re-read.
			s.log.Warn("token file watch error; re-reading", "error", err)
			debounce.Reset(s.cfg.Debounce)
		case <-debounce.C:
			s.ensureWatch()
			s.check()
		case <-reread:
			s.ensureWatch()
			s.check()
		}
	}
}

// onPathTo reports whether name is dir or one of its ancestors.
func onPathTo(name, dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		if d == name {
			return true
		}
		if d == filepath.Dir(d) {
			return false
		}
	}
}
