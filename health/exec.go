package health

import (
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Spawner starts the processes of exec probes. In oxios-init it is the
// supervisor: PID 1 has one owner of processes and one reaper, and health
// never forks on its own.
type Spawner interface {
	// Exec runs argv in a process group of its own with stdout and
	// stderr written to out, and returns its wait status. When ctx ends
	// first, it kills the group and still waits for the exit. An error
	// means argv could not be started.
	Exec(ctx context.Context, argv []string, out io.Writer) (syscall.WaitStatus, error)
}

// execProber runs a command through a Spawner: exit 0 is success, any
// other exit a failure. At the deadline the command's whole process group
// is SIGKILLed (a probe that ignores SIGTERM must not outlive its timeout)
// and counted a failure.
type execProber struct {
	argv    []string
	spawner Spawner
}

func newExecProber(argv []string, sp Spawner) *execProber {
	return &execProber{argv: argv, spawner: sp}
}

// execOutputMax bounds how much of a probe's output ends up in its detail.
const execOutputMax = 1 << 10

func (p *execProber) Probe(ctx context.Context, deadline time.Time) Result {
	if p.spawner == nil {
		return Result{Unknown, "exec " + p.argv[0] + ": no process spawner (Hooks.Spawner) to run it"}
	}
	pctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	out := &limitedBuffer{max: execOutputMax}
	ws, err := p.spawner.Exec(pctx, p.argv, out)
	switch {
	case err != nil:
		return Result{Unknown, err.Error()}
	case ctx.Err() != nil:
		return Result{Unknown, "cancelled"}
	case pctx.Err() != nil:
		return Result{Failure, "exec " + p.argv[0] + ": timed out, killed"}
	}
	return execResult(ws, out.String())
}

func execResult(ws syscall.WaitStatus, out string) Result {
	out = strings.TrimSpace(out)
	if ws.Exited() && ws.ExitStatus() == 0 {
		return Result{Success, out}
	}
	d := "exit " + strconv.Itoa(ws.ExitStatus())
	if ws.Signaled() {
		d = "killed by " + unix.SignalName(ws.Signal())
	}
	if out != "" {
		d += ": " + out
	}
	return Result{Failure, d}
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
