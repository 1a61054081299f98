package task

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/safefs"
)

// PortError names the port and, when it can be found, its owner.
type PortError struct {
	Port  int
	Owner Process // zero when unknown
}

// Process is a host process (PID and command name).
type Process struct {
	PID  int
	Comm string
}

func (e *PortError) Error() string {
	if e.Owner.PID > 0 {
		return fmt.Sprintf("port %d is already in use by %s (PID %d)", e.Port, e.Owner.Comm, e.Owner.PID)
	}
	return fmt.Sprintf("port %d is already in use", e.Port)
}
func (e *PortError) Unwrap() error { return ErrPortInUse }

// guardPort refuses a port someone else listens on, before anything is
// created: otherwise the readiness check would connect to the foreign
// listener and report our daemon ready (the old layer's defect). It binds
// like the daemon would, so a listener on 0.0.0.0 counts too.
func (r *Runtime) guardPort() error {
	port := r.cfg.Container.Port
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err == nil {
		l.Close()
		return nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("check port %d: %w", port, err)
	}
	owner, _ := PortOwner(port)
	if owner.Comm == "oxios" {
		return &LegacyError{What: fmt.Sprintf("an oxios process (PID %d) listens on port %d", owner.PID, port), PID: owner.PID}
	}
	return &PortError{Port: port, Owner: owner}
}

// LegacyError: the old PID-file daemon still runs. oxios never kills it.
type LegacyError struct {
	What string
	PID  int
}

func (e *LegacyError) Error() string {
	s := "the old oxios daemon is still running: " + e.What
	if e.PID > 0 {
		s += fmt.Sprintf("; stop it with the old `oxios stop` or `kill -INT %d`, then retry", e.PID)
	}
	return s
}
func (e *LegacyError) Unwrap() error { return ErrLegacyRunning }

// checkLegacy refuses when a live process holds oxios.lock, the real
// daemon's flock, in the data dir or in ~/.oxios. Our own task is adopted
// before this runs, so a holder here is not ours.
func (r *Runtime) checkLegacy() error {
	paths := []string{filepath.Join(r.cfg.Container.DataDir, "oxios.lock")}
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".oxios", "oxios.lock"))
	}
	for _, p := range paths {
		if held, pid := lockHeld(p); held {
			return &LegacyError{What: p + " is locked by a live process", PID: pid}
		}
	}
	return nil
}

// lockHeld tries a shared, non-blocking flock; the file is never created
// and, like the real daemon's, never removed. The data dir is the
// container's to write, so the file is opened by safefs: no link
// followed, no FIFO waited on, a regular file only, 32 bytes read.
func lockHeld(path string) (bool, int) {
	// The directory itself is named by the host (config, home), so a
	// link there is the user's and is resolved.
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return false, 0
	}
	d, err := safefs.OpenDir(dir)
	if err != nil {
		return false, 0
	}
	defer d.Close()
	f, err := d.OpenFile(filepath.Base(path), unix.O_RDONLY, 0)
	if err != nil {
		return false, 0
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return false, 0
	}
	b := make([]byte, 32)
	n, _ := f.Read(b)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	return true, pid
}
