package task

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lock takes the host-side start lock RUN_DIR/ID.lock. Start and stop hold
// it, so ten parallel `oxios start` runs see one another's result instead
// of racing to create the container. flock is released by the kernel when
// the process dies, so a crashed CLI never leaves it held.
func (r *Runtime) lock() (func(), error) {
	dir := r.cfg.Container.RunDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run dir %s: %w", dir, err)
	}
	p := filepath.Join(dir, r.cfg.Container.ID+".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", p, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}
