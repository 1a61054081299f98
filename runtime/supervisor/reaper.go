package supervisor

import (
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// reapLoop is the only caller of wait4 in the process: oxios-init starts
// every child through forkExec, and no other code forks. It runs for the
// supervisor's whole life. A SIGCHLD only says "at least one child changed
// state" (the kernel and the Go runtime both coalesce them), so every wake
// drains all zombies until wait4 answers 0 (children alive) or ECHILD.
// s.mu is held while draining and while a child is forked, so a child's
// PID is always in s.exits before its exit can be reaped.
func (s *Supervisor) reapLoop() {
	for range s.chld {
		s.reapAll()
	}
}

func (s *Supervisor) reapAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var helper chan struct{}
	for n := 1; s.reapOne(-1); n++ {
		if n == massReap {
			// A subtree's orphans were reparented at once: a second
			// thread shortens the drain (make bench-init; the figures
			// are in bench/init/RESULTS.md). oxios-init runs on one P
			// (internal/oneproc), on which the helper could only take
			// turns with this loop: it gets a P of its own until the
			// drain ends.
			if procs := runtime.GOMAXPROCS(0); procs < 2 {
				runtime.GOMAXPROCS(2)
				defer runtime.GOMAXPROCS(procs)
			}
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

// route hands the status of a child oxios-init started to whoever waits
// for it (supervise, Exec) and counts any other: an orphan reparented to
// oxios-init. Two threads may route at once (reapAll), hence routeMu.
func (s *Supervisor) route(pid int, ws syscall.WaitStatus) {
	s.routeMu.Lock()
	exit, ours := s.exits[pid]
	delete(s.exits, pid)
	s.routeMu.Unlock()
	if ours {
		exit <- ws // buffered 1: one exit per child
		return
	}
	s.reaped.Add(1)
	s.logReaped(pid, ws)
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

func (s *Supervisor) signalNoChildren() {
	select {
	case s.noChildren <- struct{}{}:
	default:
	}
}

// childrenLeft reports whether any child, alive or zombie, exists. It
// reaps nothing, so it never races the reaper for a status, and it asks
// after any drain in progress: a child that a reaper thread has just
// reaped but not yet counted and logged must not let oxios-init exit
// first.
func (s *Supervisor) childrenLeft() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return err != unix.ECHILD
		}
	}
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
