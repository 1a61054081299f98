// Package proctree finds a process's descendants in /proc: oxios-init's
// supervisor (to stop what the daemon left) and its probes (to tell the
// daemon's sockets from others') ask the same question, answered once.
package proctree

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

const procRoot = "/proc"

// Of returns root and its descendants, read from
// /proc/PID/task/TID/children (every thread's children: a child forked by
// a non-main thread is listed under that thread only). Kernels built
// without CONFIG_PROC_CHILDREN lack that file; then every process's parent
// is read from /proc/*/stat instead.
func Of(root int) []int {
	var w Walker
	return w.Of(root)
}

// Walker walks process trees with buffers it keeps from one walk to the
// next: PID 1 looks for its daemon's sockets on every probe and endpoint
// request, and garbage from each of those is what makes the Go runtime
// collect, and grow, in a process that should stay the same size for
// the container's life. A Walker is not safe for concurrent use.
type Walker struct {
	pids  []int
	seen  map[int]struct{}
	path  []byte // a NUL-terminated path relative to an open directory
	dents []byte // a directory's entries
	buf   []byte // a file's contents, or a link's target
}

// Of is the package's Of; the slice is the Walker's, valid until its next
// walk.
func (w *Walker) Of(root int) []int {
	w.Walk(root, func(int) bool { return false })
	return w.pids
}

// Walk calls visit with root and then with each descendant, parents
// before their children, until visit returns true. visit may use the
// Walker's other methods (FdLinks), but not walk again.
func (w *Walker) Walk(root int, visit func(pid int) (stop bool)) {
	w.pids = append(w.pids[:0], root)
	if w.seen == nil {
		w.seen = map[int]struct{}{}
	}
	clear(w.seen) // keeps its buckets: no allocation once warm
	w.seen[root] = struct{}{}
	for i := 0; i < len(w.pids); i++ {
		if visit(w.pids[i]) {
			return
		}
		if !w.addChildren(w.pids[i]) {
			w.byStat(root, i+1, visit)
			return
		}
	}
}

// addChildren appends pid's children not yet seen to w.pids. It returns
// false when the kernel has no children files.
func (w *Walker) addChildren(pid int) bool {
	w.path = append(strconv.AppendInt(append(w.path[:0], procRoot+"/"...), int64(pid), 10), "/task\x00"...)
	tasks, err := openDir(atCWD, w.path)
	if err != nil {
		return true // it exited meanwhile, or is not ours to read
	}
	defer closeFD(tasks)
	if w.dents, err = readDir(tasks, w.dents); err != nil {
		return true
	}
	for d := w.dents; len(d) > 0; {
		var tid []byte
		if tid, d = nextDirent(d); tid == nil {
			continue
		}
		w.path = append(append(w.path[:0], tid[:len(tid)-1]...), "/children\x00"...)
		if w.buf, err = readFile(tasks, w.path, w.buf); err != nil {
			if err == unix.ENOENT && dirExists(tasks, tid) {
				return false
			}
			continue
		}
		w.addPIDs(w.buf)
	}
	return true
}

// addPIDs appends the PIDs of a space-separated list not yet seen.
func (w *Walker) addPIDs(list []byte) {
	for len(list) > 0 {
		var f []byte
		f, list, _ = bytes.Cut(bytes.TrimLeft(list, " \n"), []byte(" "))
		if c, ok := atoi(bytes.TrimRight(f, "\n")); ok {
			if _, dup := w.seen[c]; !dup {
				w.seen[c] = struct{}{}
				w.pids = append(w.pids, c)
			}
		}
	}
}

// byStat goes on with the walk from every process's parent PID: it
// rebuilds the tree and visits what Walk had not reached, from from.
func (w *Walker) byStat(root, from int, visit func(int) bool) {
	tree := byStat(root)
	for _, pid := range tree {
		if _, dup := w.seen[pid]; !dup {
			w.seen[pid] = struct{}{}
			w.pids = append(w.pids, pid)
		}
	}
	for _, pid := range w.pids[from:] {
		if visit(pid) {
			return
		}
	}
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

// FdLinks calls fn with the target of each of pid's file descriptors
// (/proc/PID/fd/N: "socket:[INODE]", a path, ...), in a buffer valid
// until fn returns, until fn returns true. err is the fd directory's
// (ENOENT: the process exited; EACCES: another user's); denied reports
// that some descriptor's target could not be read for lack of
// permission.
func (w *Walker) FdLinks(pid int, fn func(target []byte) (stop bool)) (denied bool, err error) {
	w.path = append(strconv.AppendInt(append(w.path[:0], procRoot+"/"...), int64(pid), 10), "/fd\x00"...)
	dir, err := openDir(atCWD, w.path)
	if err != nil {
		return false, err
	}
	defer closeFD(dir)
	if w.dents, err = readDir(dir, w.dents); err != nil {
		return false, err
	}
	if cap(w.buf) < linkMax {
		w.buf = make([]byte, linkMax)
	}
	for d := w.dents; len(d) > 0; {
		var fd []byte
		if fd, d = nextDirent(d); fd == nil {
			continue
		}
		target, err := readLink(dir, fd, w.buf[:linkMax])
		if err != nil {
			denied = denied || err == unix.EACCES || err == unix.EPERM
			continue
		}
		if fn(target) {
			return denied, nil
		}
	}
	return denied, nil
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

// atoi parses a decimal PID without making a string of it.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
