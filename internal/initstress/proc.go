package initstress

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// openPTY opens a new pseudo-terminal pair; neither end becomes our
// controlling terminal.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	fd := int(master.Fd())
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0)
	}
	if err == nil {
		slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	}
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("pseudo-terminal /dev/pts/%d: %w", n, err)
	}
	return master, slave, nil
}

// diagnose describes a hung start for its report: the state and kernel
// wait channel of every thread of oxios-init and of its children, and the
// kernel stack of each thread that is not running (readable by root).
func diagnose(pid int) string {
	var b strings.Builder
	for _, p := range append([]int{pid}, children(pid)...) {
		fmt.Fprintf(&b, "[pid %d %s]", p, cmdline(p))
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", p))
		for _, t := range tasks {
			st := field(t+"/stat", 2)
			wchan, _ := os.ReadFile(t + "/wchan")
			fmt.Fprintf(&b, " tid %s %s wchan=%s", filepath.Base(t), st, wchan)
			if st != "R" {
				if stack, err := os.ReadFile(t + "/stack"); err == nil {
					fmt.Fprintf(&b, " stack=%q", firstLines(string(stack), 4))
				}
			}
			if sig, err := os.ReadFile(t + "/status"); err == nil {
				for _, l := range strings.Split(string(sig), "\n") {
					if strings.HasPrefix(l, "SigPnd") || strings.HasPrefix(l, "SigBlk") {
						b.WriteString(" " + strings.Join(strings.Fields(l), "="))
					}
				}
			}
		}
		b.WriteString("; ")
	}
	return b.String()
}

// children lists pid's descendants.
func children(pid int) []int {
	var out []int
	for q := []int{pid}; len(q) > 0; q = q[1:] {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", q[0]))
		for _, t := range tasks {
			b, _ := os.ReadFile(t)
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
					q = append(q, c)
				}
			}
		}
	}
	return out
}

// killTree kills a hung start: its descendants first, since they are out
// of sight once reparented.
func killTree(pid int) {
	for _, c := range children(pid) {
		syscall.Kill(c, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// leftovers lists every process whose environment carries marker: those
// of a start that are still alive once every start has ended.
func leftovers(marker string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err == nil && strings.Contains(string(b), marker) {
			out = append(out, fmt.Sprintf("%d %s (%s)", pid, cmdline(pid), field("/proc/"+e.Name()+"/stat", 2)))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return out
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// field returns field n (0-based, as in proc(5): 2 is the state) of a stat
// file; the command name before it may hold spaces and parentheses.
func field(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if n-2 < 0 || n-2 >= len(f) {
		return "?"
	}
	return f[n-2]
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, " | ")
}
