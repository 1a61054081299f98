package health

import (
	"bytes"
	"errors"
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
		fdDir := procRoot + "/" + strconv.Itoa(pid) + "/fd"
		fds, err := readDirNames(fdDir)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				canTell = false
			}
			continue // ENOENT: it exited meanwhile
		}
		for _, fd := range fds {
			link, err := os.Readlink(fdDir + "/" + fd)
			if err != nil {
				if errors.Is(err, fs.ErrPermission) {
					canTell = false
				}
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
	}
	return 0, canTell
}
