package target

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/internal/fsutil"
	"github.com/influxrotate/influxrotate/rotation"
)

func fileMode(m config.FileMode) os.FileMode {
	if m == 0 {
		return os.FileMode(config.DefaultFileMode)
	}
	return os.FileMode(m)
}

// newFile builds a file target, resolving its owner and group.
func newFile(cfg config.Target, log *slog.Logger) (*File, error) {
	f := &File{Path: cfg.Path, Mode: os.FileMode(cfg.Mode), Logger: log}
	var err error
	if cfg.Owner != "" {
		if f.Owner, err = user.Lookup(cfg.Owner); err != nil {
			if f.Owner, err = user.LookupId(cfg.Owner); err != nil {
				return nil, fmt.Errorf("file target %s: owner %q: no such user", cfg.Path, cfg.Owner)
			}
		}
	}
	if cfg.Group != "" {
		if f.Group, err = user.LookupGroup(cfg.Group); err != nil {
			if f.Group, err = user.LookupGroupId(cfg.Group); err != nil {
				return nil, fmt.Errorf("file target %s: group %q: no such group", cfg.Path, cfg.Group)
			}
		}
	}
	return f, nil
}

// File publishes the token as a whole file: temp file in the same
// directory, fsync, rename, so a reader sees the old or the new token and
// never a half-written one.
//
// The new file keeps the owner, group and mode of the one it replaces, so a
// writer running as another user can still read it; Owner, Group and Mode,
// when set, are given to it instead. A new file gets mode 0600 and the
// controller's user. Only a regular file is replaced: a named pipe, a
// device, a directory or a symbolic link at Path is refused (ErrRefused).
type File struct {
	Path string
	// Mode is the permission bits; 0 keeps the existing file's.
	Mode os.FileMode
	// Owner and Group, when set, own the file. A publish that would leave
	// the token unreadable to Owner (or, without Owner, to Group) is
	// refused: the writer running as that user would lose points.
	Owner  *user.User
	Group  *user.Group
	Logger *slog.Logger
}

// Name implements Target.
func (f *File) Name() string { return "file " + f.Path }

// Publish implements Target.
func (f *File) Publish(ctx context.Context, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The credential's lock keeps every other publisher of Path out, so a
	// temp file present now was left by a run that crashed before its rename.
	removed, err := fsutil.RemoveStaleTemps(f.Path)
	if len(removed) > 0 {
		f.Logger.Warn("removed temp files an interrupted publish left behind", "target", f.Name(), "files", removed)
	}
	if err != nil {
		return fmt.Errorf("%s: removing temp files of an interrupted publish: %w", f.Name(), err)
	}
	cur, err := openExisting(f.Path)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	defer cur.close()
	want, err := f.attributes(cur)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	if err := f.checkReadable(want); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	content := []byte(token + "\n")
	if cur.file != nil && bytes.Equal(cur.content, content) {
		// Unchanged: skip the rename so watchers see no event, but still
		// give the file the attributes it should have.
		err = cur.setAttributes(want)
	} else {
		err = fsutil.WriteFileAtomicAs(f.Path, content, want.mode, want.uid, want.gid)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	warnReadable(f.Logger, f.Name(), f.Path)
	return nil
}

// ReadBack implements Target.
func (f *File) ReadBack(ctx context.Context) (string, error) {
	return readTokenFile(f.Path)
}

// attributes are a token file's owner, group and permission bits.
type attributes struct {
	uid, gid int
	mode     os.FileMode
}

// attributes decides what the published file gets: what is configured, else
// what the existing file has, else mode 0600 and the controller's user.
func (f *File) attributes(cur *existing) (attributes, error) {
	a := attributes{uid: -1, gid: -1, mode: f.Mode}
	if cur.file != nil {
		a.uid, a.gid = cur.uid, cur.gid
		if a.mode == 0 {
			a.mode = cur.info.Mode().Perm()
		}
	}
	if a.mode == 0 {
		a.mode = os.FileMode(config.DefaultFileMode)
	}
	var err error
	if f.Owner != nil {
		if a.uid, err = strconv.Atoi(f.Owner.Uid); err != nil {
			return a, fmt.Errorf("owner %s: uid %q", f.Owner.Username, f.Owner.Uid)
		}
	}
	if f.Group != nil {
		if a.gid, err = strconv.Atoi(f.Group.Gid); err != nil {
			return a, fmt.Errorf("group %s: gid %q", f.Group.Name, f.Group.Gid)
		}
	}
	return a, nil
}

// checkReadable refuses attributes that would keep the configured owner
// (or, with no owner configured, the configured group) from reading the
// token. The owner of a file gets its owner bits only, whatever its groups,
// and root reads everything.
func (f *File) checkReadable(a attributes) error {
	switch {
	case f.Owner != nil && f.Owner.Uid != "0" && a.mode&0o400 == 0:
		return fmt.Errorf("%w: owner %s could not read the token with mode %04o", ErrRefused, f.Owner.Username, a.mode)
	case f.Owner == nil && f.Group != nil && a.mode&0o040 == 0:
		return fmt.Errorf("%w: group %s could not read the token with mode %04o", ErrRefused, f.Group.Name, a.mode)
	}
	return nil
}

// existing is the file a publish replaces, open, or none.
type existing struct {
	file     *os.File
	info     fs.FileInfo
	uid, gid int
	content  []byte
}

// openExisting opens the file at path without following a symbolic link
// and without blocking on a named pipe, and refuses anything but a regular
// file: the check is made on the opened file, so nothing can be swapped in
// between. A missing file is no error.
func openExisting(path string) (*existing, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return &existing{}, nil
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%w: %w (a symbolic link): point path at the file itself", ErrRefused, rotation.ErrNotRegularFile)
	}
	if err != nil {
		return nil, err
	}
	cur := &existing{file: f}
	if cur.info, err = f.Stat(); err != nil {
		cur.close()
		return nil, err
	}
	if !cur.info.Mode().IsRegular() {
		cur.close()
		return nil, fmt.Errorf("%w: %w", ErrRefused, rotation.NotRegularFileError(cur.info.Mode()))
	}
	st, ok := cur.info.Sys().(*syscall.Stat_t)
	if !ok {
		cur.close()
		return nil, errors.New("no owner information")
	}
	cur.uid, cur.gid = int(st.Uid), int(st.Gid)
	// A little more than a token: only equality with the new one matters.
	if cur.content, err = io.ReadAll(io.LimitReader(f, rotation.MaxTokenSize+65)); err != nil {
		cur.close()
		return nil, err
	}
	return cur, nil
}

// setAttributes gives the open file a's owner, group and mode.
func (cur *existing) setAttributes(a attributes) error {
	if a.uid != cur.uid || a.gid != cur.gid {
		if err := cur.file.Chown(a.uid, a.gid); err != nil {
			return err
		}
	}
	if a.mode != cur.info.Mode().Perm() {
		return cur.file.Chmod(a.mode)
	}
	return nil
}

func (cur *existing) close() {
	if cur.file != nil {
		_ = cur.file.Close()
	}
}

// readTokenFile reads a published token back as a writer's FileSource
// reads it, with the one token-file reader of the project.
func readTokenFile(path string) (string, error) {
	tok, err := rotation.ReadTokenFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, rotation.ErrTokenEmpty) {
		return "", ErrNoToken
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

// warnReadable warns when others may read a published token: the writer
// runs as one user, nobody else needs it.
func warnReadable(log *slog.Logger, name, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	if fi.Mode().Perm()&0o004 != 0 {
		log.Warn("published token is readable by every user; set mode = \"0600\" or \"0640\"",
			"target", name, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
}
