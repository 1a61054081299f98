// Package proctree finds a process's descendants in /proc: oxios-init's
// supervisor (to stop what the daemon left) and its probes (to tell the
// daemon's sockets from others') ask the same question, answered once.
package proctree

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
)

const procRoot = "/proc"

// Of returns root and its descendants, read from
// /proc/PID/task/TID/children (every thread's children: a child forked by
// a non-main thread is listed under that thread only). Kernels built
// without CONFIG_PROC_CHILDREN lack that file; then every process's parent
// is read from /proc/*/stat instead.
func Of(root int) []int {
	pids := []int{root}
	seen := map[int]bool{root: true}
	for i := 0; i < len(pids); i++ {
		taskDir := procRoot + "/" + strconv.Itoa(pids[i]) + "/task"
		tids, err := DirNames(taskDir)
		if err != nil {
			continue
		}
		for _, tid := range tids {
			b, err := os.ReadFile(taskDir + "/" + tid + "/children")
			if errors.Is(err, fs.ErrNotExist) {
				if _, serr := os.Stat(taskDir + "/" + tid); serr == nil {
					return byStat(root)
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

// byStat builds the tree from every process's parent PID.
func byStat(root int) []int {
	names, _ := DirNames(procRoot)
	kids := map[int][]int{}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if ppid, ok := Parent(pid); ok {
			kids[ppid] = append(kids[ppid], pid)
		}
	}
	pids := []int{root}
	for i := 0; i < len(pids); i++ {
		pids = append(pids, kids[pids[i]]...)
	}
	return pids
}

// Parent reads the 4th field of /proc/PID/stat; the command name before
// it is in parentheses and may itself hold spaces and parentheses.
func Parent(pid int) (int, bool) {
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

// DirNames lists dir's entries by name only: no lstat of each, which
// /proc's directories of processes, threads and descriptors would cost.
func DirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// Descendants is Of without root itself.
func Descendants(root int) []int { return Of(root)[1:] }
