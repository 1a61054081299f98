package health

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// execProber runs a command: exit 0 is success, any other exit a failure.
// At the deadline the command's whole process group is SIGKILLed (a probe
// that ignores SIGTERM must not outlive its timeout) and counted a failure;
// the process is always reaped.
type execProber struct {
	argv []string
}

func newExecProber(argv []string) *execProber { return &execProber{argv: argv} }

// execOutputMax bounds how much of a probe's output ends up in its detail.
const execOutputMax = 1 << 10

func (p *execProber) Probe(ctx context.Context, deadline time.Time) Result {
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	// Its own process group, so that a timeout kills whatever it forked too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &limitedBuffer{max: execOutputMax}
	cmd.Stdout, cmd.Stderr = out, out
	// A grandchild holding the output pipe must not keep Wait waiting.
	cmd.WaitDelay = 100 * time.Millisecond
	if err := cmd.Start(); err != nil {
		return Result{Unknown, "exec " + p.argv[0] + ": " + err.Error()}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case err := <-done:
		return execResult(err, out.String())
	case <-timer.C:
		killGroup(cmd)
		<-done
		return Result{Failure, "exec " + p.argv[0] + ": timed out, killed"}
	case <-ctx.Done():
		killGroup(cmd)
		<-done
		return Result{Unknown, "cancelled"}
	}
}

func killGroup(cmd *exec.Cmd) {
	// The group is still ours: its leader is not reaped until Wait returns.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

func execResult(err error, out string) Result {
	out = strings.TrimSpace(out)
	if err == nil {
		return Result{Success, out}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		d := "exit " + strconv.Itoa(ee.ExitCode())
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			d = "killed by " + ws.Signal().String()
		}
		if out != "" {
			d += ": " + out
		}
		return Result{Failure, d}
	}
	// ECHILD: someone else (a PID-1 reaper calling wait4(-1)) reaped it and
	// took its status with it; we cannot tell, so it is not counted.
	return Result{Unknown, "exec: " + err.Error()}
}

// limitedBuffer keeps the first max bytes written and discards the rest
// without failing the writer (a failing write would kill the probe's pipe).
type limitedBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - len(l.b); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		l.b = append(l.b, p[:room]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
