package upgrade

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// The data dir copy (upgrade.snapshot_data). Both the copy and its
// restore run while no task runs (after the old daemon's stop, before
// the new one's start; after the failed one's stop): nothing in the
// container can swap a file for a link under them. cp -a copies links as
// links and keeps owners, modes and times; --reflink=auto shares the
// blocks where the filesystem can (btrfs, XFS) and copies them elsewhere.

// dataDir is container.data_dir with links resolved: the copy and the
// restore act on the directory, not on a link to it.
func (u *upgrader) dataDir() (string, error) {
	d, err := filepath.EvalSymlinks(u.o.Config.Container.DataDir)
	if err != nil {
		return "", fmt.Errorf("data dir %s (container.data_dir): %w", u.o.Config.Container.DataDir, err)
	}
	return d, nil
}

// ErrNestedMount: upgrade.snapshot_data with a mount inside the data dir.
var ErrNestedMount = errors.New("upgrade.snapshot_data: a file system is mounted inside the data dir")

// checkSnapshotData refuses upgrade.snapshot_data for a data dir with a
// file system mounted inside it, before anything is stopped: the copy
// would take the mount's files as the data dir's, and the restore can
// neither remove a mount point nor move the mount back (a rename moves
// it away with the failed data). The data dir being a mount point itself
// is fine: the restore then works in place.
func (u *upgrader) checkSnapshotData() error {
	if !u.o.Config.Upgrade.SnapshotData {
		return nil
	}
	data, err := u.dataDir()
	if err != nil {
		return err
	}
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(data))
	if err != nil {
		return fmt.Errorf("read the mounts under the data dir %s: %w", data, err)
	}
	var nested []string
	for _, m := range ms {
		if m.Mountpoint != data {
			nested = append(nested, m.Mountpoint)
		}
	}
	if len(nested) > 0 {
		return fmt.Errorf("%w %s: %s", ErrNestedMount, data, strings.Join(nested, ", "))
	}
	return nil
}

// snapshot copies the data dir to the state dir; Record.Snapshot is set
// only once the copy is complete.
func (u *upgrader) snapshot() error {
	data, err := u.dataDir()
	if err != nil {
		return err
	}
	dst := u.s.snapshotPath()
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("remove the old copy %s: %w", dst, err)
	}
	u.progress("copying %s to %s (upgrade.snapshot_data)", data, dst)
	if err := cp(data, dst); err != nil {
		os.RemoveAll(dst)
		return err
	}
	u.rec.Snapshot = dst
	return nil
}

// restoreData puts the copy in place of the data dir. The failed
// daemon's data is kept next to the copy (STATE_DIR/ID.data-failed) when
// a rename can move it, that is when the data dir is not a mount point
// and shares the state dir's filesystem; else it is replaced in place.
//
// It may run again after an interruption (a recovery repeats the
// rollback): a copy that is gone was moved in by a rename already, and
// the in-place path keeps the copy until the outcome is recorded, so
// that a second run copies again from a complete copy.
func (u *upgrader) restoreData() error {
	snap := u.rec.Snapshot
	if _, err := os.Lstat(snap); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	data, err := u.dataDir()
	if errors.Is(err, os.ErrNotExist) {
		// Interrupted between the two renames below.
		return os.Rename(snap, u.o.Config.Container.DataDir)
	}
	if err != nil {
		return err
	}
	if moved, err := u.swapIn(data, snap); moved || err != nil {
		return err
	}
	if err := clearDir(data); err != nil {
		return err
	}
	return cp(snap+"/.", data)
}

// swapIn moves the data dir aside to STATE_DIR/ID.data-failed and the
// copy into its place; moved is false when the data dir cannot be
// renamed (a mount point, another filesystem), with nothing changed.
func (u *upgrader) swapIn(data, snap string) (moved bool, err error) {
	failed := u.s.failedPath()
	os.RemoveAll(failed)
	if os.Rename(data, failed) != nil {
		return false, nil
	}
	if err := os.Rename(snap, data); err != nil {
		os.Rename(failed, data)
		return true, err
	}
	return true, nil
}

// dropSnapshot removes the copy and forgets it (an incomplete copy, or
// an upgrade that never went past the old daemon).
func (u *upgrader) dropSnapshot() {
	u.removeSnapshot()
	u.rec.Snapshot = ""
}

// removeSnapshot removes the copy once no record needs it.
func (u *upgrader) removeSnapshot() {
	p := u.s.snapshotPath()
	if err := os.RemoveAll(p); err != nil {
		u.progress("remove the data copy %s: %v", p, err)
	}
}

func cp(src, dst string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("cp", "-a", "--reflink=auto", "--", src, dst)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cp -a %s %s: %w: %s", src, dst, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// clearDir removes what dir holds, not dir itself.
func clearDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
