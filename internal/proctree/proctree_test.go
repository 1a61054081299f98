package proctree

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
)

// Both ways of finding the tree agree, and see a grandchild.
func TestOfAndByStatAgree(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 100 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var grandchild int
	buf := make([]byte, 32)
	n, _ := out.Read(buf) // the shell prints the PID once sleep exists
	for _, c := range buf[:n] {
		if c >= '0' && c <= '9' {
			grandchild = grandchild*10 + int(c-'0')
		}
	}
	defer syscall.Kill(grandchild, syscall.SIGKILL)
	me := os.Getpid()
	for name, tree := range map[string][]int{"Of": Of(me), "byStat": byStat(me)} {
		if tree[0] != me || !slices.Contains(tree, cmd.Process.Pid) || !slices.Contains(tree, grandchild) {
			t.Errorf("%s(%d) = %v: want it first, the shell %d and its child %d", name, me, tree, cmd.Process.Pid, grandchild)
		}
	}
	if p, ok := Parent(grandchild); !ok || p != cmd.Process.Pid {
		t.Errorf("Parent(%d) = %d, %v; want %d", grandchild, p, ok, cmd.Process.Pid)
	}
	if d := Descendants(me); slices.Contains(d, me) {
		t.Errorf("Descendants(%d) includes the root: %v", me, d)
	}
}
