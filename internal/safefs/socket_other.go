//go:build !linux

package safefs

import (
	"errors"
	"os"
)

// errUnsupported: O_PATH and SO_PEERCRED are Linux's; a host CLI elsewhere
// (macOS, with containerd in a Linux VM) cannot reach the container's
// sockets safely and does not try.
var errUnsupported = errors.New("safe socket access needs Linux (O_PATH, SO_PEERCRED)")

// DialUnix is not available on this OS.
func (d *Dir) DialUnix(name string) (*os.File, error) { return nil, errUnsupported }

// PeerPID is not available on this OS.
func PeerPID(fd int) (int, error) { return 0, errUnsupported }
