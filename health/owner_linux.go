package health

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/a7garden/oxios/internal/proctree"
)

const procRoot = "/proc"

// ownerOf looks for a process in root's tree holding one of the socket
// inodes. It returns the matching inode, or 0 with canTell=false when some
// process's fd table could not be read (another user's process: we then
// cannot prove the listener is foreign).
func ownerOf(root int, inodes []uint32) (match uint32, canTell bool) {
	canTell = true
	for _, pid := range proctree.Of(root) {
		m, readable := heldBy(pid, inodes)
		if m != 0 {
			return m, true
		}
		canTell = canTell && readable
	}
	return 0, canTell
}

// heldBy returns which of the socket inodes pid holds (0: none), and
// whether its fd table could be read (another user's process: not
// always).
func heldBy(pid int, inodes []uint32) (match uint32, readable bool) {
	fdDir := procRoot + "/" + strconv.Itoa(pid) + "/fd"
	fds, err := proctree.DirNames(fdDir)
	if err != nil {
		return 0, !errors.Is(err, fs.ErrPermission) // ENOENT: it exited meanwhile
	}
	readable = true
	for _, fd := range fds {
		link, err := os.Readlink(fdDir + "/" + fd)
		if err != nil {
			readable = readable && !errors.Is(err, fs.ErrPermission)
			continue
		}
		if !strings.HasPrefix(link, "socket:[") || !strings.HasSuffix(link, "]") {
			continue
		}
		ino, err := strconv.ParseUint(link[len("socket:["):len(link)-1], 10, 32)
		if err != nil {
			continue
		}
		for _, want := range inodes {
			if uint32(ino) == want {
				return want, true
			}
		}
	}
	return 0, readable
}

// PortOwner returns the PID of a process holding a LISTEN socket on TCP
// port in this network namespace, whoever it is (ownerOf asks the
// narrower question for the supervised tree). The host's port guard names
// a foreign listener with it. Sockets come from /proc/net/tcp and tcp6,
// owners from /proc/*/fd.
func PortOwner(port int) (int, error) {
	var buf []byte
	var ls []listener
	for _, f := range []string{procRoot + "/net/tcp", procRoot + "/net/tcp6"} {
		ls, _ = procNetListeners(f, &buf, ls)
	}
	var inodes []uint32
	for _, l := range ls {
		if int(l.port) == port {
			inodes = append(inodes, l.inode)
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no listener on port %d in /proc/net/tcp", port)
	}
	names, _ := proctree.DirNames(procRoot)
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			if m, _ := heldBy(pid, inodes); m != 0 {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("listener on port %d: owner not visible", port)
}
