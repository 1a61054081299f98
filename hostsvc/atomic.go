package hostsvc

import (
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"
)

// writeAtomic replaces path with data so that a reader (systemd's
// daemon-reload, launchd) sees the old file or the new one, never a torn
// one, and the rename survives a crash: renameio writes a temp file in the
// same directory, fsyncs it, renames it over path and fsyncs the directory.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return &PathError{Op: "create directory", Path: dir, Err: err}
	}
	// WithStaticPermissions: service files are world-readable whatever
	// the umask.
	if err := renameio.WriteFile(path, data, mode, renameio.WithStaticPermissions(mode)); err != nil {
		return &PathError{Op: "write", Path: path, Err: unwrapPathErr(err)}
	}
	return nil
}

// unwrapPathErr drops the *fs.PathError naming the temp file: the error we
// return names the real path instead.
func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	if le, ok := err.(*os.LinkError); ok {
		return le.Err
	}
	return err
}

// checkWritableDir reports whether this process may create and remove
// entries in dir (access(2) with the effective IDs, which is what root's
// CAP_DAC_OVERRIDE and a read-only mount both go through).
func checkWritableDir(dir string) error {
	return unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS)
}
