package proctree

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
)

// Both ways of finding the tree agree, and see a grandchild.
func TestOfAndByStatAgree(t *testing.T) {
	shell, grandchild := startTree(t)
	me := os.Getpid()
	for name, tree := range map[string][]int{"Of": Of(me), "byStat": byStat(me)} {
		if tree[0] != me || !slices.Contains(tree, shell) || !slices.Contains(tree, grandchild) {
			t.Errorf("%s(%d) = %v: want it first, the shell %d and its child %d", name, me, tree, shell, grandchild)
		}
	}
	if p, ok := Parent(grandchild); !ok || p != shell {
		t.Errorf("Parent(%d) = %d, %v; want %d", grandchild, p, ok, shell)
	}
	if d := Descendants(me); slices.Contains(d, me) {
		t.Errorf("Descendants(%d) includes the root: %v", me, d)
	}
}

// startTree starts sh with a sleeping child; it returns both PIDs.
func startTree(t *testing.T) (shell, grandchild int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "sleep 100 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 32)
	n, _ := out.Read(buf) // the shell prints the PID once sleep exists
	for _, c := range buf[:n] {
		if c >= '0' && c <= '9' {
			grandchild = grandchild*10 + int(c-'0')
		}
	}
	t.Cleanup(func() { syscall.Kill(grandchild, syscall.SIGKILL) })
	return cmd.Process.Pid, grandchild
}

// A warm Walker allocates nothing: PID 1 walks its daemon's tree on every
// probe of a listener's owner, for the container's whole life.
func TestWalkerAllocatesNothing(t *testing.T) {
	shell, grandchild := startTree(t)
	me := os.Getpid()
	var w Walker
	tree := w.Of(me)
	if tree[0] != me || !slices.Contains(tree, shell) || !slices.Contains(tree, grandchild) {
		t.Fatalf("Walker.Of(%d) = %v: want it first, the shell %d and its child %d", me, tree, shell, grandchild)
	}
	if a := testing.AllocsPerRun(50, func() { w.Of(me) }); a != 0 {
		t.Errorf("Walker.Of: %v allocations per walk; want 0", a)
	}
	if a := testing.AllocsPerRun(50, func() { w.FdLinks(me, func([]byte) bool { return false }) }); a != 0 {
		t.Errorf("Walker.FdLinks: %v allocations per listing; want 0", a)
	}
}

// Walk visits parents before their children and stops when told; a
// visit that stops at the root reads no children at all.
func TestWalkOrderAndStop(t *testing.T) {
	shell, grandchild := startTree(t)
	var w Walker
	var seen []int
	w.Walk(shell, func(pid int) bool { seen = append(seen, pid); return false })
	if !slices.Equal(seen, []int{shell, grandchild}) {
		t.Errorf("Walk(%d) visited %v; want [%d %d]", shell, seen, shell, grandchild)
	}
	seen = seen[:0]
	w.Walk(shell, func(pid int) bool { seen = append(seen, pid); return true })
	if !slices.Equal(seen, []int{shell}) || len(w.pids) != 1 {
		t.Errorf("Walk stopped at the root visited %v and listed %v; want [%d] and nothing more", seen, w.pids, shell)
	}
}

// FdLinks sees this process's listening socket as socket:[INODE], and
// says why it cannot list a process that is gone.
func TestFdLinks(t *testing.T) {
	ino := testenv.ListenerInode(t)
	want := "socket:[" + strconv.FormatUint(ino, 10) + "]"
	var w Walker
	found := false
	if _, err := w.FdLinks(os.Getpid(), func(target []byte) bool {
		found = string(target) == want
		return found
	}); err != nil || !found {
		t.Errorf("FdLinks(self): found %s: %v, err %v", want, found, err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	_, err := w.FdLinks(gone.Process.Pid, func([]byte) bool { return false })
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FdLinks of a process that exited: err %v; want ENOENT", err)
	}
}
