// Package safefs is how a privileged host process touches a directory that
// an untrusted party (the container) can write: every name is resolved
// relative to a directory fd, never through a symbolic link, the type of
// what is found is checked before it is used, every read is size-capped
// and every connect and exchange is bounded in time.
//
// The directory itself must be trusted up to its last component (its
// parent is not writable by the untrusted party); OpenDir refuses a
// symbolic link as that last component all the same.
package safefs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors callers branch on; each returned error wraps one of them and
// names the path.
var (
	ErrSymlink    = errors.New("is a symbolic link, refused")
	ErrNotRegular = errors.New("is not a regular file, refused")
	ErrNotSocket  = errors.New("is not a socket, refused")
	ErrTooLarge   = errors.New("is larger than the size cap, refused")
	ErrBadName    = errors.New("is not a single path component")
)

// Dir is an open directory; names are looked up relative to its fd.
type Dir struct {
	f    *os.File
	path string // for messages only
}

// OpenDir opens path as a directory without following a symbolic link in
// its last component.
func OpenDir(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathErr("open directory", path, err)
	}
	return &Dir{f: os.NewFile(uintptr(fd), path), path: path}, nil
}

// Close releases the directory fd.
func (d *Dir) Close() error { return d.f.Close() }

// Fd is the directory's descriptor (valid until Close).
func (d *Dir) Fd() int { return int(d.f.Fd()) }

// Path is the path OpenDir was given.
func (d *Dir) Path() string { return d.path }

// Stat is fstat of the directory itself.
func (d *Dir) Stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.Fd(), &st); err != nil {
		return st, pathErr("stat", d.path, err)
	}
	return st, nil
}

func (d *Dir) name(n string) (string, error) {
	if n == "" || n == "." || n == ".." || strings.ContainsRune(n, '/') {
		return "", fmt.Errorf("%q %w", n, ErrBadName)
	}
	return filepath.Join(d.path, n), nil
}

// OpenFile opens the regular file name with flag (O_RDONLY, O_WRONLY...,
// O_CREAT), adding O_NOFOLLOW and O_NONBLOCK: a FIFO planted in its place
// neither blocks the open nor passes the type check.
func (d *Dir) OpenFile(name string, flag int, perm uint32) (*os.File, error) {
	p, err := d.name(name)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(d.Fd(), name, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, perm)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, pathErr("stat", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, typeErr(p, uint32(st.Mode), ErrNotRegular)
	}
	return f, nil
}

// ReadFile reads the regular file name whole; more than max bytes is
// ErrTooLarge (a /dev/zero-like file cannot grow the reader).
func (d *Dir) ReadFile(name string, max int64) ([]byte, error) {
	f, err := d.OpenFile(name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s %w (%d bytes)", f.Name(), ErrTooLarge, max)
	}
	return b, nil
}

// WriteFileAtomic replaces name with data: written to a new temporary
// file (O_EXCL, so nothing planted under that name is opened), then
// renamed over name within the directory.
func (d *Dir) WriteFileAtomic(name string, data []byte, perm uint32) error {
	p, err := d.name(name)
	if err != nil {
		return err
	}
	tmp := "." + name + ".tmp" + strconv.Itoa(os.Getpid())
	_ = unix.Unlinkat(d.Fd(), tmp, 0) // a crashed writer's leftover
	f, err := d.OpenFile(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		unix.Unlinkat(d.Fd(), tmp, 0)
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := unix.Renameat(d.Fd(), tmp, d.Fd(), name); err != nil {
		unix.Unlinkat(d.Fd(), tmp, 0)
		return pathErr("rename", p, err)
	}
	return nil
}

// Remove unlinks name (not a directory); a missing name is not an error.
func (d *Dir) Remove(name string) error {
	p, err := d.name(name)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(d.Fd(), name, 0); err != nil && err != unix.ENOENT {
		return pathErr("remove", p, err)
	}
	return nil
}

// ReadFile is OpenDir(dir of path) + ReadFile(base of path).
func ReadFile(path string, max int64) ([]byte, error) {
	d, err := OpenDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadFile(filepath.Base(path), max)
}

func pathErr(op, p string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%s %s: %w", op, p, ErrSymlink)
	case errors.Is(err, unix.ENXIO):
		// open(2) of a socket, or of a FIFO for writing with no reader.
		return fmt.Errorf("%s %s: %w", op, p, ErrNotRegular)
	case errors.Is(err, unix.ENOTDIR) && isLink(p):
		// O_DIRECTORY|O_NOFOLLOW on a link says ENOTDIR.
		return fmt.Errorf("%s %s: %w", op, p, ErrSymlink)
	}
	return &os.PathError{Op: op, Path: p, Err: err}
}

// isLink is for messages only: the decision was made on the fd.
func isLink(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode()&os.ModeSymlink != 0
}

// typeErr names what was found instead of the wanted type.
func typeErr(p string, mode uint32, want error) error {
	if mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%s %w", p, ErrSymlink)
	}
	return fmt.Errorf("%s %w", p, want)
}

// Owner is a numeric owner and mode for MkdirOwned.
type Owner struct {
	UID, GID int // -1 leaves that id as created
	Mode     uint32
}

// MkdirOwned creates the directory name (if absent), opens it without
// following a link, and sets its owner and mode through the new fd: no
// chown or chmod by path, so nothing planted under name is changed.
func (d *Dir) MkdirOwned(name string, o Owner) (*Dir, error) {
	p, err := d.name(name)
	if err != nil {
		return nil, err
	}
	if err := unix.Mkdirat(d.Fd(), name, 0o700); err != nil && err != unix.EEXIST {
		return nil, pathErr("create directory", p, err)
	}
	fd, err := unix.Openat(d.Fd(), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathErr("open directory", p, err)
	}
	sub := &Dir{f: os.NewFile(uintptr(fd), p), path: p}
	if err := sub.chown(o); err != nil {
		sub.Close()
		return nil, err
	}
	return sub, nil
}

func (d *Dir) chown(o Owner) error {
	if o.UID >= 0 || o.GID >= 0 {
		if err := unix.Fchown(d.Fd(), o.UID, o.GID); err != nil {
			return fmt.Errorf("chown %s to %d:%d: %w", d.path, o.UID, o.GID, err)
		}
	}
	// After the chown, which clears set-id bits.
	if err := unix.Fchmod(d.Fd(), o.Mode); err != nil {
		return fmt.Errorf("chmod %s to %#o: %w", d.path, o.Mode, err)
	}
	return nil
}
