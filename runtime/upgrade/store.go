package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/task"
)

// store is the state file STATE_DIR/ID.json and its lock STATE_DIR/ID.lock,
// in a directory only oxios's user can write: the record decides which
// image root runs next.
type store struct {
	dir, id string
}

func newStore(cfg *config.Config) *store {
	return &store{dir: cfg.Upgrade.StateDir, id: cfg.Container.ID}
}

func (s *store) path() string         { return filepath.Join(s.dir, s.id+".json") }
func (s *store) lockPath() string     { return filepath.Join(s.dir, s.id+".lock") }
func (s *store) snapshotPath() string { return filepath.Join(s.dir, s.id+".data-snapshot") }

// open creates the directory (0700) and checks it is ours and writable
// by nobody else.
func (s *store) open() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("state dir %s (upgrade.state_dir): %w", s.dir, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.dir, &st); err != nil {
		return fmt.Errorf("state dir %s (upgrade.state_dir): %w", s.dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		return fmt.Errorf("state dir %s (upgrade.state_dir) is owned by uid %d with mode %#o: want a directory of uid %d, not writable by group or others", s.dir, st.Uid, st.Mode&0o7777, os.Geteuid())
	}
	return nil
}

// load reads the state; a missing file is the empty state.
func (s *store) load() (*State, error) {
	b, err := os.ReadFile(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("upgrade state %s: %w", s.path(), err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadState, s.path(), err)
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadState, s.path(), err)
	}
	return &st, nil
}

// ErrBadState: the state file cannot be read as a record (truncated,
// edited by hand, written by something else). Nothing acts on it, and
// nothing replaces it: it may be the only account of an interrupted
// upgrade, so a human decides.
var ErrBadState = errors.New("the upgrade record is unreadable")

// check refuses a record that recover could misread: an upgrade in
// progress must say where it was and which version it left.
func (st *State) check() error {
	r := st.InProgress
	if r == nil {
		return nil
	}
	if _, ok := stepOrder[r.Step]; !ok || r.Step == StepDone {
		return fmt.Errorf("the upgrade in progress is at an unknown step %q", r.Step)
	}
	if r.From.Digest == "" {
		return errors.New("the upgrade in progress names no version to go back to")
	}
	return nil
}

// save replaces the state file atomically and durably: a new file,
// fsynced, renamed over the old one, the directory fsynced. A crash
// leaves the old state or the new one, never half of one.
func (s *store) save(st *State) error {
	if n := len(st.History); n > MaxHistory {
		st.History = st.History[n-MaxHistory:]
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path() + ".tmp"
	if err := writeSync(tmp, b); err != nil {
		os.Remove(tmp) // a full disk: what it got is no use, and takes space
		return fmt.Errorf("upgrade state %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.path()); err != nil {
		return fmt.Errorf("upgrade state %s: %w", s.path(), err)
	}
	return syncDir(s.dir)
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ErrBusy: another oxios process is upgrading or rolling back this
// container now.
var ErrBusy = errors.New("an upgrade or rollback is in progress")

// lock takes the upgrade lock without waiting: one upgrade, rollback or
// recovery at a time. flock is released by the kernel when the holder
// dies, so a held lock means a live upgrade and a free one with an
// in-progress record means an interrupted one.
func (s *store) lock() (func(), error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.lockPath(), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("upgrade lock %s: %w", s.lockPath(), err)
	}
	if err := flockSoon(f); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s holds %s", ErrBusy, holderOr(task.LockHolder(f)), s.lockPath())
		}
		return nil, fmt.Errorf("upgrade lock %s: %w", s.lockPath(), err)
	}
	task.RecordLockHolder(f)
	return func() { f.Close() }, nil
}

// holderOr names the lock's holder for ErrBusy; an older oxios wrote no
// record into the lock file.
func holderOr(h string) string {
	if h == "" {
		return "another process"
	}
	return h
}

// busy reports whether a live process holds the upgrade lock.
func (s *store) busy() bool {
	f, err := os.OpenFile(s.lockPath(), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil {
		return true
	}
	return false
}

// failedPath is where a restore keeps the failed daemon's data dir.
func (s *store) failedPath() string { return filepath.Join(s.dir, s.id+".data-failed") }

// flockSoon takes the lock, retrying for a moment: InProgress's probe
// (busy) holds it shared for microseconds, and must not make an upgrade
// fail. A real holder keeps it for the whole upgrade.
func flockSoon(f *os.File) error {
	var err error
	for wait := time.Millisecond; wait < 128*time.Millisecond; wait *= 2 {
		if err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		time.Sleep(wait)
	}
	return err
}
