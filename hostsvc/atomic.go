package hostsvc

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// writeAtomic replaces path with data so that a reader (systemd's
// daemon-reload, launchd) sees the old file or the new one, never a torn
// one: a temp file in the same directory, fsynced, then renamed over path,
// then the directory fsynced so the rename survives a crash.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return &PathError{Op: "create directory", Path: dir, Err: err}
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return &PathError{Op: "write", Path: path, Err: unwrapPathErr(err)}
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return &PathError{Op: "write", Path: tmp, Err: err}
	}
	// CreateTemp makes the file 0600; service files are world-readable.
	if err := f.Chmod(mode); err != nil {
		return &PathError{Op: "write", Path: tmp, Err: err}
	}
	if err := f.Sync(); err != nil {
		return &PathError{Op: "write", Path: tmp, Err: err}
	}
	if err := f.Close(); err != nil {
		return &PathError{Op: "write", Path: tmp, Err: err}
	}
	if err := os.Rename(tmp, path); err != nil {
		return &PathError{Op: "write", Path: path, Err: unwrapPathErr(err)}
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
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
