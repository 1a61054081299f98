//go:build !linux

package task

import (
	"errors"
	"net"
)

// errNotLinux: the run dir's tmpfs and the notify socket's credentials are
// Linux's. A CLI on another OS reaches containerd (in a Linux VM) but
// cannot verify who sends readiness, so it never accepts it.
var errNotLinux = errors.New("needs Linux (SO_PASSCRED, mount)")

const credSpace = 0

func senderPID([]byte) (int32, bool)  { return 0, false }
func passCred(*net.UnixConn) error    { return errNotLinux }
func mountTmpfs(string, string) error { return errNotLinux }
func detach(string) error             { return errNotLinux }

// monotonicUsec: systemd, which reads it, is Linux's.
func monotonicUsec() int64 { return 0 }
