package task

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PortOwner finds the process listening on TCP port (host network) from
// /proc/net/tcp{,6} (state 0A = LISTEN) and the socket inode in /proc/*/fd.
func PortOwner(port int) (Process, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		listenInodes(f, port, inodes)
	}
	if len(inodes) == 0 {
		return Process{}, fmt.Errorf("no listener on port %d in /proc/net/tcp", port)
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if ownsInode(pid, inodes) {
			comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
			return Process{PID: pid, Comm: strings.TrimSpace(string(comm))}, nil
		}
	}
	return Process{}, fmt.Errorf("listener on port %d: owner not visible", port)
}

func listenInodes(path string, port int, into map[string]bool) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	want := fmt.Sprintf(":%04X", port)
	for s.Scan() {
		fl := strings.Fields(s.Text())
		if len(fl) > 9 && fl[3] == "0A" && strings.HasSuffix(fl[1], want) {
			into["socket:["+fl[9]+"]"] = true
		}
	}
}

func ownsInode(pid int, inodes map[string]bool) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && inodes[l] {
			return true
		}
	}
	return false
}
