package task

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LockTimeoutError: another oxios held the start lock for too long.
type LockTimeoutError struct {
	Path   string
	Waited time.Duration
	Holder string // "PID (command line)", or "" when it did not say
}

func (e *LockTimeoutError) Error() string {
	h := e.Holder
	if h == "" {
		h = "an unknown process"
	}
	return fmt.Sprintf("lock %s: still held by %s after %v", e.Path, h, e.Waited)
}

// lock takes the host-side start lock RUN_DIR/ID.lock. Start and stop hold
// it, so ten parallel `oxios start` runs see one another's result instead
// of racing to create the container. flock is released by the kernel when
// the process dies, so a crashed CLI never leaves it held. The file is
// 0600 in our own RUN_DIR: no other user can open it, so no other user
// can hold it.
func (r *Runtime) lock() (func(), error) {
	root, err := r.openRunRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	name := r.cfg.Container.ID + ".lock"
	f, err := root.OpenFile(name, unix.O_RDWR|unix.O_CREAT, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	// A lock file of an older oxios was 0644: readable, hence lockable,
	// by everyone.
	if err := unix.Fchmod(int(f.Fd()), 0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("chmod lock %s: %w", f.Name(), err)
	}
	if err := flockWait(f, r.lockTimeout()); err != nil {
		f.Close()
		return nil, err
	}
	recordHolder(f)
	return func() { f.Close() }, nil
}

// lockTimeout outlasts what a holder does under the lock: a start waits
// up to start_timeout for readiness and may first stop an outdated task
// (up to the host grace and a SIGKILL wait); a minute more covers image
// and snapshot work. An upgrade (Hold) adds its verification window and
// a rollback's stop and start.
func (r *Runtime) lockTimeout() time.Duration {
	start := r.cfg.Container.StartTimeout.D() + r.hostGrace() + 10*time.Second
	return 2*start + r.cfg.Upgrade.VerifyFor.D() + time.Minute
}

// flockWait takes an exclusive flock on f within timeout. flock(2) has
// no timeout and no event that says it is free, so it is retried
// non-blocking, the interval growing to lockPoll.
func flockWait(f *os.File, timeout time.Duration) error {
	t0 := time.Now()
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case err != unix.EWOULDBLOCK && err != unix.EINTR:
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		case time.Since(t0) >= timeout:
			return &LockTimeoutError{Path: f.Name(), Waited: time.Since(t0).Round(time.Second), Holder: holder(f)}
		}
		time.Sleep(wait)
		wait = min(wait*2, lockPoll)
	}
}

// lockPoll is the longest interval between two tries of flockWait.
const lockPoll = 100 * time.Millisecond

// recordHolder writes "PID COMM" into the lock file, for the message of
// whoever waits for it next. The record has a fixed width, so it simply
// overwrites the last holder's: no truncate (a journal commit on some
// filesystems) on the start path.
func recordHolder(f *os.File) {
	s := fmt.Sprintf("%d %s", os.Getpid(), filepath.Base(os.Args[0]))
	f.WriteAt([]byte(fmt.Sprintf("%-*.*s\n", holderWidth-1, holderWidth-1, s)), 0)
}

// holderWidth is the size of the record recordHolder writes.
const holderWidth = 64

// holder reads the holder's record and describes it with its command
// line (/proc/PID/cmdline; the record alone when the PID is not visible).
func holder(f *os.File) string {
	b := make([]byte, holderWidth)
	n, _ := f.ReadAt(b, 0)
	pidS, comm, _ := strings.Cut(strings.TrimSpace(string(b[:n])), " ")
	comm = strings.TrimSpace(comm)
	pid, err := strconv.Atoi(pidS)
	if err != nil || pid <= 0 {
		return ""
	}
	cmd := comm
	if cl, err := os.ReadFile(filepath.Join("/proc", pidS, "cmdline")); err == nil && len(cl) > 0 {
		cl = bytes.TrimRight(cl, "\x00")
		if len(cl) > 200 {
			cl = append(cl[:200], "..."...)
		}
		cmd = string(bytes.ReplaceAll(cl, []byte{0}, []byte{' '}))
	}
	return fmt.Sprintf("PID %d (%s)", pid, cmd)
}
