// Package stalelock owns oxios-init's instance lock and the removal of
// stale state a previous run left behind: PID files, lock files and UNIX
// sockets. Inside a new PID namespace every recorded PID is stale, but its
// number may now belong to an unrelated live process, so liveness is never
// judged by kill(pid, 0): a file is stale when no process holds a lock on
// it, a socket when connecting to it is refused. Nothing is resolved
// through a symlink, and only the paths given are ever touched.
package stalelock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// HeldError says that a live instance holds the lock.
type HeldError struct {
	Path   string
	Holder string // what the holder wrote into the lock: "pid=12 host=abc since=..."
}

func (e *HeldError) Error() string {
	h := e.Holder
	if h == "" {
		h = "an instance that wrote nothing into it"
	}
	return fmt.Sprintf("instance lock %s is held by a live instance (%s): refusing to start a second one", e.Path, h)
}

// Lock is a held instance lock; it lasts until Close or process exit.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes an exclusive flock on path without waiting, creating the
// file (never through a symlink) when missing, and writes this instance's
// PID, hostname and start time into it. The file itself is never removed:
// removing a lock file that someone may be about to flock is how two
// instances end up holding two different inodes.
func Acquire(path string) (*Lock, error) {
	dir, base := filepath.Split(path)
	dfd, err := openDirNoFollow(dir)
	if err != nil {
		return nil, fmt.Errorf("instance lock %s: %w", path, err)
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, base, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("instance lock %s is a symlink: refusing to follow it", path)
		}
		return nil, fmt.Errorf("instance lock %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("instance lock %s is not a regular file", path)
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		holder := ""
		if b, rerr := os.ReadFile("/proc/self/fd/" + strconv.Itoa(fd)); rerr == nil {
			holder = strings.TrimSpace(string(b))
		}
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &HeldError{Path: path, Holder: holder}
		}
		return nil, fmt.Errorf("instance lock %s: flock: %w", path, err)
	}
	host, _ := os.Hostname()
	info := fmt.Sprintf("pid=%d host=%s since=%s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	// Overwrite, then cut what an older, longer line left: the usual
	// line (same PID 1, same host) is as long as the last one, and a
	// truncate to zero first costs a journal commit on the start path.
	if n, err := f.WriteAt([]byte(info), 0); err == nil && st.Size > int64(n) {
		f.Truncate(int64(n))
	}
	return &Lock{f: f, path: path}, nil
}

// Path is the lock's path.
func (l *Lock) Path() string { return l.path }

// Close releases the lock (the file stays).
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	return l.f.Close()
}

// Action is what Clean did with one path.
type Action string

const (
	Removed  Action = "removed"
	Missing  Action = "missing"
	KeptLive Action = "kept: in use"
	Refused  Action = "refused"
)

// Result is one path's outcome.
type Result struct {
	Path   string
	Action Action
	Detail string
}

// Clean removes the stale files among paths. Call it only while holding
// the instance lock. A regular file (PID file, lock file) is removed unless
// some process holds a flock on it; a UNIX socket only when connecting to
// it is refused; a symlink, directory or other file type is left alone, as
// is any path with a symlink among its directories.
func Clean(paths []string) []Result {
	out := make([]Result, 0, len(paths))
	for _, p := range paths {
		out = append(out, cleanOne(p))
	}
	return out
}

func cleanOne(path string) Result {
	r := Result{Path: path}
	dir, base := filepath.Split(filepath.Clean(path))
	if base == "" || base == "." || base == ".." || base == "/" {
		r.Action, r.Detail = Refused, "not a file path"
		return r
	}
	dfd, err := openDirNoFollow(dir)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			r.Action = Missing
			return r
		}
		r.Action, r.Detail = Refused, err.Error()
		return r
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			r.Action = Missing
			return r
		}
		r.Action, r.Detail = Refused, err.Error()
		return r
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		r.Action, r.Detail = Refused, "is a symlink (never followed)"
		return r
	case unix.S_IFREG:
		if held, err := flockHeld(dfd, base); err != nil {
			r.Action, r.Detail = Refused, err.Error()
			return r
		} else if held {
			r.Action, r.Detail = KeptLive, "a live process holds a lock on it"
			return r
		}
	case unix.S_IFSOCK:
		live, err := socketLive(dfd, base)
		if err != nil {
			r.Action, r.Detail = Refused, err.Error()
			return r
		}
		if live {
			r.Action, r.Detail = KeptLive, "a process accepts connections on it"
			return r
		}
	default:
		r.Action, r.Detail = Refused, "not a regular file or socket"
		return r
	}
	if err := unix.Unlinkat(dfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		r.Action, r.Detail = Refused, err.Error()
		return r
	}
	r.Action = Removed
	return r
}

// flockHeld reports whether another open file description holds a flock
// on the file, probing with an exclusive, non-blocking lock that is dropped
// at once: exclusive, because a shared probe would not see a holder of a
// shared lock. flock needs no write access, so the file is opened read-only.
func flockHeld(dfd int, base string) (bool, error) {
	fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	unix.Flock(fd, unix.LOCK_UN)
	return false, nil
}

// socketLive connects to the socket through the already opened directory
// (/proc/self/fd/N/name), so no path component is resolved again.
func socketLive(dfd int, base string) (bool, error) {
	addr := "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + base
	if len(addr) >= 108 {
		return false, fmt.Errorf("socket name too long to probe")
	}
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_SEQPACKET, unix.SOCK_DGRAM} {
		s, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return false, err
		}
		err = unix.Connect(s, &unix.SockaddrUnix{Name: addr})
		unix.Close(s)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EPROTOTYPE):
			continue // another socket type: try the next
		case errors.Is(err, unix.ECONNREFUSED):
			return false, nil
		case errors.Is(err, unix.EAGAIN):
			return true, nil // backlog full: very much alive
		default:
			return false, fmt.Errorf("probe socket: %w", err)
		}
	}
	return false, nil
}

// openDirNoFollow opens dir with no symlink anywhere in the path.
func openDirNoFollow(dir string) (int, error) {
	if dir == "" {
		dir = "."
	}
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS}
	fd, err := unix.Openat2(unix.AT_FDCWD, dir, how)
	if err == nil {
		return fd, nil
	}
	if !errors.Is(err, unix.ENOSYS) {
		if errors.Is(err, unix.ELOOP) {
			return -1, fmt.Errorf("directory %s has a symlink in its path: refusing to follow it", dir)
		}
		return -1, err
	}
	// Kernels before 5.6: walk the components with O_NOFOLLOW.
	start := unix.AT_FDCWD
	if filepath.IsAbs(dir) {
		start = -1
	}
	cur := start
	open := func(at int, name string) (int, error) {
		if at == -1 {
			return unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		}
		return unix.Openat(at, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if cur == -1 {
		fd, err := open(-1, "/")
		if err != nil {
			return -1, err
		}
		cur = fd
	} else {
		fd, err := unix.Open(".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	for _, c := range strings.Split(dir, "/") {
		if c == "" || c == "." {
			continue
		}
		fd, err := open(cur, c)
		unix.Close(cur)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				return -1, fmt.Errorf("directory %s has a symlink in its path: refusing to follow it", dir)
			}
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}
