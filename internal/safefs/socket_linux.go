package safefs

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// DialUnix connects a new stream socket to the socket name and returns
// it (net.FileConn makes a net.Conn of it). The socket is opened with
// O_PATH|O_NOFOLLOW and checked to be a socket before the connect, which
// goes through /proc/self/fd/N of that very inode: a symbolic link or a
// swap of the name after the check leads nowhere else. The connect does
// not block: a unix socket whose listener's backlog is full refuses
// (EAGAIN) instead of making the caller wait.
func (d *Dir) DialUnix(name string) (*os.File, error) {
	p, err := d.name(name)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(d.Fd(), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, pathErr("stat", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, typeErr(p, st.Mode, ErrNotSocket)
	}
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", p, err)
	}
	if err := unix.Connect(s, &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(fd)}); err != nil {
		unix.Close(s)
		return nil, &os.PathError{Op: "connect", Path: p, Err: err}
	}
	return os.NewFile(uintptr(s), p), nil
}

// PeerPID is the PID of the process that bound the socket fd is
// connected to (SO_PEERCRED), as seen from this process's PID namespace:
// 0 when that process is not visible from here.
func PeerPID(fd int) (int, error) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	return int(cred.Pid), nil
}
