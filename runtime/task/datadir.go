package task

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ErrDataDirAccess: the data directory exists and the daemon's user cannot
// write it. oxios-init would fail at its instance lock, and every restart
// again: the CLI exits with a code the systemd unit does not restart on.
var ErrDataDirAccess = errors.New("the daemon's user cannot write the data directory")

// DataDirError names what the operator needs to fix it.
type DataDirError struct {
	Path     string
	Owner    uint32
	Group    uint32
	Mode     fs.FileMode
	UID, GID int // the daemon's
}

func (e *DataDirError) Error() string {
	return fmt.Sprintf("data dir %s (owner %d:%d, mode %04o) is not writable by the daemon's user %d:%d: fix it with `chown -R %d:%d %s`, or set container.user",
		e.Path, e.Owner, e.Group, e.Mode.Perm(), e.UID, e.GID, e.UID, e.GID, e.Path)
}

func (e *DataDirError) Unwrap() error { return ErrDataDirAccess }

func mkdirOwned(dir string, uid, gid int) error {
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if os.IsNotExist(statErr) && uid >= 0 && os.Geteuid() == 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			return fmt.Errorf("chown %s to %d:%d: %w", dir, uid, gid, err)
		}
	}
	return nil
}

// checkDataDir: can uid:gid create entries in dir? The mode bits decide,
// read as the kernel reads them for an unprivileged process (the daemon
// has no capabilities): the owner's bits when it owns dir, else the
// group's when gid is dir's group, else the others'. ACLs are not read;
// an ACL that grants access is missed and refused, one that denies it is
// missed and found by oxios-init.
func checkDataDir(dir string, uid, gid int) error {
	if uid < 0 || uid == 0 {
		return nil // root (or unknown): no mode bit stops it
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if canWrite(fi.Mode(), st.Uid, st.Gid, uid, gid) {
		return nil
	}
	return &DataDirError{Path: dir, Owner: st.Uid, Group: st.Gid, Mode: fi.Mode(), UID: uid, GID: gid}
}

// canWrite: write and search permission on a directory with mode m.
func canWrite(m fs.FileMode, owner, group uint32, uid, gid int) bool {
	const wx = 0o3
	shift := 0
	switch {
	case owner == uint32(uid):
		shift = 6
	case group == uint32(gid):
		shift = 3
	}
	return uint32(m.Perm())>>shift&wx == wx
}
