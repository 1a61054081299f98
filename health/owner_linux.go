package health

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/a7garden/oxios/internal/proctree"
)

const procRoot = "/proc"

// owners is the one Walker of owner lookups, which keeps its buffers
// from one lookup to the next: probes of a listener's owner run on every
// on-demand ask, for the container's life. The runner's prober and the
// on-demand one may look at once; a lookup takes microseconds.
var owners struct {
	sync.Mutex
	w proctree.Walker
}

// ownerOf looks for a process in root's tree holding one of the socket
// inodes. It returns the matching inode, or 0 with canTell=false when some
// process's fd table could not be read (another user's process: we then
// cannot prove the listener is foreign). The daemon itself usually holds
// its listener, so its descriptors are read before its children are
// listed.
func ownerOf(root int, inodes []uint32) (match uint32, canTell bool) {
	owners.Lock()
	defer owners.Unlock()
	canTell = true
	owners.w.Walk(root, func(pid int) bool {
		m, readable := heldBy(&owners.w, pid, inodes)
		canTell = canTell && readable
		match = m
		return m != 0
	})
	if match != 0 {
		return match, true
	}
	return 0, canTell
}

// heldBy returns which of the socket inodes pid holds (0: none), and
// whether its fd table could be read (another user's process: not
// always).
func heldBy(w *proctree.Walker, pid int, inodes []uint32) (match uint32, readable bool) {
	denied, err := w.FdLinks(pid, func(target []byte) bool {
		ino, ok := socketInode(target)
		if ok && slices.Contains(inodes, ino) {
			match = ino
		}
		return match != 0
	})
	if err != nil {
		return 0, !errors.Is(err, fs.ErrPermission) // ENOENT: it exited meanwhile
	}
	return match, match != 0 || !denied
}

// socketInode parses a descriptor's link target "socket:[INODE]".
func socketInode(target []byte) (uint32, bool) {
	rest, ok := bytes.CutPrefix(target, []byte("socket:["))
	if !ok || len(rest) < 2 || rest[len(rest)-1] != ']' {
		return 0, false
	}
	var ino uint64
	for _, c := range rest[:len(rest)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ino = ino*10 + uint64(c-'0'); ino > math.MaxUint32 {
			return 0, false
		}
	}
	return uint32(ino), true
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
	var w proctree.Walker
	names, _ := proctree.DirNames(procRoot)
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			if m, _ := heldBy(&w, pid, inodes); m != 0 {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("listener on port %d: owner not visible", port)
}
