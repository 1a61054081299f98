package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// outputDelay is how long Exec still reads a command's output after the
// command exited: a process it left in the background may hold the pipe
// open for its whole life, and must not keep the caller waiting.
const outputDelay = 100 * time.Millisecond

// Exec runs argv (an exec probe's command) with oxios-init's environment,
// stdin on /dev/null and stdout and stderr written to out, in a process
// group of its own, and returns its wait status once the reaper has routed
// its exit. When ctx ends first the whole group is SIGKILLed (a probe that
// ignores SIGTERM must not outlive its timeout) and the exit is still
// awaited, so the process is always reaped, and by the reaper: oxios-init
// has one owner of processes. An error means argv could not be started.
func (s *Supervisor) Exec(ctx context.Context, argv []string, out io.Writer) (syscall.WaitStatus, error) {
	env := s.env()
	path, _, err := lookPath(argv[0], env)
	if err != nil {
		return 0, err
	}
	null, err := devNull()
	if err != nil {
		return 0, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("exec %s: output pipe: %w", path, err)
	}
	defer r.Close()
	attr := &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{uintptr(null), w.Fd(), w.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	exit := make(chan syscall.WaitStatus, 1)
	pid, err := s.forkExec(path, argv, attr, exit)
	w.Close()
	if err != nil {
		return 0, fmt.Errorf("exec %s: %w", path, err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(out, r)
	}()
	var ws syscall.WaitStatus
	select {
	case ws = <-exit:
	case <-ctx.Done():
		s.killGroup(pid)
		ws = <-exit
	}
	r.SetReadDeadline(time.Now().Add(outputDelay))
	<-copied
	return ws, nil
}

// killGroup SIGKILLs the process group of pid, a child started by
// forkExec, unless pid has been reaped already. Under s.mu no reap is in
// progress, and a group leader that is not yet reaped (alive or a zombie)
// keeps its group ID from being reused by an unrelated process.
func (s *Supervisor) killGroup(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routeMu.Lock()
	_, waiting := s.exits[pid]
	s.routeMu.Unlock()
	if waiting {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}

var (
	nullOnce sync.Once
	nullFD   int
	nullErr  error
)

// devNull is a descriptor of /dev/null, opened once for every exec
// probe's stdin, as os/exec gives a command without one.
func devNull() (int, error) {
	nullOnce.Do(func() {
		nullFD, nullErr = syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if nullErr != nil {
			nullErr = fmt.Errorf("open %s for exec probes' stdin: %w", os.DevNull, nullErr)
		}
	})
	return nullFD, nullErr
}
