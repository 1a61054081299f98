package supervisor

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/sirupsen/logrus"
)

// reapLoop is the only caller of wait4(-1) in the process. It runs for the
// supervisor's whole life. A SIGCHLD only says "at least one child changed
// state" (the kernel and the Go runtime both coalesce them), so every wake
// drains all zombies until wait4 answers 0 (children alive) or ECHILD.
// s.mu is held while draining and while a child is forked, so the daemon's
// PID is always known before its exit can be reaped.
func (s *Supervisor) reapLoop() {
	for range s.chld {
		s.reapAll()
	}
}

func (s *Supervisor) reapAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.SharedChildren {
		s.reapShared()
		return
	}
	var helper chan struct{}
	for n := 1; s.reapOne(-1); n++ {
		if n == massReap {
			// A subtree's orphans were reparented at once. A second
			// thread roughly halved the drain of 10,000 of them on two
			// CPUs (make bench-init, bench/init/RESULTS.md).
			helper = make(chan struct{})
			go func() {
				defer close(helper)
				for s.reapOne(-1) {
				}
			}()
		}
	}
	if helper != nil {
		<-helper
	}
}

// massReap is the number of zombies one pass reaps before a second
// thread joins; a daemon's ordinary exits never get there.
const massReap = 64

// reapShared drains like reapAll, but leaves alone the children that an
// exec probe's os/exec Wait (a pidfd of this process) owns: it peeks at
// each zombie first.
func (s *Supervisor) reapShared() {
	var foreign map[int]bool // pids an in-process pidfd waits for, read lazily
	for {
		p, err := peekZombie()
		if err == syscall.ECHILD {
			s.signalNoChildren()
			return
		}
		if err != nil || p == 0 {
			return
		}
		if !s.isMain(p) {
			if foreign == nil {
				foreign = pidfdTargets()
			}
			if foreign[p] {
				// Its Wait reaps it within moments; nothing to do until
				// the next SIGCHLD, except not to spin on it.
				s.retryReap()
				return
			}
		}
		if !s.reapOne(p) {
			return
		}
	}
}

// reapOne reaps pid (-1: any child) if it has exited and routes its
// status; false means nothing more to reap now.
func (s *Supervisor) reapOne(pid int) bool {
	for {
		var ws syscall.WaitStatus
		got, err := wait4NoHang(pid, &ws)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.ECHILD:
			s.signalNoChildren()
			return false
		case err != nil || got <= 0:
			return false
		}
		s.route(got, ws)
		return true
	}
}

// route hands the daemon's status to supervise and counts any other.
// Two threads may route at once (reapAll), hence routeMu.
func (s *Supervisor) route(pid int, ws syscall.WaitStatus) {
	s.routeMu.Lock()
	main := pid == s.mainPID && pid != 0
	if main {
		s.mainPID = 0
	}
	s.routeMu.Unlock()
	if main {
		s.mainExit <- ws // buffered 1; one main child at a time
		return
	}
	s.reaped.Add(1)
	s.logReaped(pid, ws)
}

func (s *Supervisor) isMain(pid int) bool {
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	return pid == s.mainPID
}

// logReaped formats only when the line is written: a PID 1 that reaps
// thousands of orphans at once must not build a string for each.
func (s *Supervisor) logReaped(pid int, ws syscall.WaitStatus) {
	switch {
	case s.cfg.WarnOnReap:
		s.log.Warnf("reaped zombie process %d (%s)", pid, describe(ws))
	case s.log.IsLevelEnabled(logrus.DebugLevel):
		s.log.Debugf("reaped zombie process %d (%s)", pid, describe(ws))
	}
}

// wait4NoHang is wait4(pid, WNOHANG) as a raw system call: it never
// blocks, so it need not tell the Go scheduler it is entering a system
// call, which costs a hand-off of the thread's P when the sysmon thread
// sees a run of them while thousands of orphans are reaped.
func wait4NoHang(pid int, ws *syscall.WaitStatus) (int, error) {
	var status int32
	r, _, e := syscall.RawSyscall6(syscall.SYS_WAIT4, uintptr(pid), uintptr(unsafe.Pointer(&status)), syscall.WNOHANG, 0, 0, 0)
	*ws = syscall.WaitStatus(status)
	if e != 0 {
		return int(r), e
	}
	return int(r), nil
}

// retryReap asks for another pass in a millisecond, for a zombie another
// goroutine of this process is about to reap: os/exec's Wait runs as soon
// as the same SIGCHLD wakes it, so the wait is short, and no SIGCHLD will
// come for a zombie that is already there.
func (s *Supervisor) retryReap() {
	go func() {
		time.Sleep(time.Millisecond)
		select {
		case s.chld <- syscall.SIGCHLD:
		default:
		}
	}()
}

func (s *Supervisor) signalNoChildren() {
	select {
	case s.noChildren <- struct{}{}:
	default:
	}
}

// peekZombie returns the PID of a zombie child without reaping it (0 when
// every child is alive): waitid(P_ALL, WEXITED|WNOHANG|WNOWAIT). The
// syscall package has no waitid, hence the raw call.
func peekZombie() (int, error) {
	// siginfo_t is 128 bytes; for SIGCHLD si_pid is the int32 at offset 16.
	var info [128]byte
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_WAITID, 0 /* P_ALL */, 0,
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOHANG|0x01000000 /* WNOWAIT */, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(*(*int32)(unsafe.Pointer(&info[16]))), nil
	}
}

// pidfdTargets lists the PIDs that pidfds open in this process refer to:
// os.StartProcess keeps one for each child it will Wait for.
func pidfdTargets() map[int]bool {
	out := map[int]bool{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return out
	}
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || l != "anon_inode:[pidfd]" {
			continue
		}
		b, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Pid:"); ok {
				if p, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					out[p] = true
				}
			}
		}
	}
	return out
}

// childrenLeft reports whether any child, alive or zombie, exists. It
// reaps nothing, so it never races the reaper for a status, and it asks
// after any drain in progress: a child that a reaper thread has just
// reaped but not yet counted and logged must not let oxios-init exit
// first.
func (s *Supervisor) childrenLeft() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := peekZombie()
	return err != syscall.ECHILD
}

func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + SignalName(ws.Signal())
	}
	return "exit " + strconv.Itoa(ws.ExitStatus())
}

// ExitCode is the shell's view of a wait status: the exit status, or
// 128+N after signal N.
func ExitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// descendants returns every process whose parent chain leads to root,
// from one scan of /proc.
func descendants(root int) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	children := map[int][]int{}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + n + "/stat")
		if err != nil {
			continue
		}
		// comm may hold spaces and parentheses: the fields after the
		// last ')' are "state ppid ...".
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}
