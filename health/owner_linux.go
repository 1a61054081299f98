package health

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

const procRoot = "/proc"

// processTree returns root and its descendants, read from
// /proc/PID/task/TID/children (every thread's children: a child forked by
// a non-main thread is listed under that thread only). Kernels built
// without CONFIG_PROC_CHILDREN lack that file; then every process's parent
// is read from /proc/*/stat instead.
func processTree(root int) []int {
	pids := []int{root}
	seen := map[int]bool{root: true}
	for i := 0; i < len(pids); i++ {
		taskDir := procRoot + "/" + strconv.Itoa(pids[i]) + "/task"
		tids, err := readDirNames(taskDir)
		if err != nil {
			continue
		}
		for _, tid := range tids {
			b, err := os.ReadFile(taskDir + "/" + tid + "/children")
			if errors.Is(err, fs.ErrNotExist) {
				if _, serr := os.Stat(taskDir + "/" + tid); serr == nil {
					return processTreeByStat(root)
				}
			}
			if err != nil {
				continue
			}
			for _, w := range bytes.Fields(b) {
				if c, err := strconv.Atoi(string(w)); err == nil && !seen[c] {
					seen[c] = true
					pids = append(pids, c)
				}
			}
		}
	}
	return pids
}

// processTreeByStat builds the tree from every process's parent PID.
func processTreeByStat(root int) []int {
	names, _ := readDirNames(procRoot)
	kids := map[int][]int{}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); ok {
			kids[ppid] = append(kids[ppid], pid)
		}
	}
	pids := []int{root}
	for i := 0; i < len(pids); i++ {
		pids = append(pids, kids[pids[i]]...)
	}
	return pids
}

// parentOf reads the 4th field of /proc/PID/stat; the command name before
// it is in parentheses and may itself hold spaces and parentheses.
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(f[1]))
	return ppid, err == nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// ownerOf looks for a process in root's tree holding one of the socket
// inodes. It returns the matching inode, or 0 with canTell=false when some
// process's fd table could not be read (another user's process: we then
// cannot prove the listener is foreign).
func ownerOf(root int, inodes []uint32) (match uint32, canTell bool) {
	canTell = true
	for _, pid := range processTree(root) {
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
	fds, err := readDirNames(fdDir)
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
	names, _ := readDirNames(procRoot)
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			if m, _ := heldBy(pid, inodes); m != 0 {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("listener on port %d: owner not visible", port)
}
