package task

import (
	"net"

	"golang.org/x/sys/unix"
)

// The Linux calls behind the run dir and the notify socket; other hosts
// (macOS, with containerd in a Linux VM) get sys_other.go.

// credSpace is the control-message room for one SCM_CREDENTIALS.
var credSpace = unix.CmsgSpace(unix.SizeofUcred)

// senderPID reads the one SCM_CREDENTIALS message the kernel attaches to
// a datagram on a SO_PASSCRED socket: the sender's PID as seen from here,
// 0 when it lives in a PID namespace this process cannot see.
func senderPID(oob []byte) (int32, bool) {
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(cmsgs) != 1 {
		return 0, false
	}
	cred, err := unix.ParseUnixCredentials(&cmsgs[0])
	if err != nil {
		return 0, false
	}
	return cred.Pid, true
}

// passCred asks the kernel to attach every sender's credentials.
func passCred(c *net.UnixConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return serr
}

// mountTmpfs mounts a tmpfs on p with opts; nothing on it is executable.
func mountTmpfs(p, opts string) error {
	return unix.Mount("tmpfs", p, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts)
}

// detach lazily unmounts p, never following a link there.
func detach(p string) error { return unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW) }

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1 (MONOTONIC_USEC=) to order the reload.
func monotonicUsec() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}
