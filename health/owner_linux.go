package health

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// procRoot is /proc; a variable so tests can point it elsewhere if needed.
var procRoot = "/proc"

// processTree returns root and its descendants, read from
// /proc/PID/task/TID/children (every thread's children: a child forked by
// a non-main thread is listed under that thread only).
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
