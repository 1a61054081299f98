package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Snapshot is the supervisor's state, for the health endpoint.
type Snapshot struct {
	PID      int
	State    string // starting, running, backoff, stopping, exited
	Restarts int
	Backoff  time.Duration
}

// Supervisor runs one daemon; create it with New as early as possible,
// because New installs the signal handlers.
type Supervisor struct {
	cfg Config
	log *logrus.Logger

	sigs       chan os.Signal // every forwarded signal
	chld       chan os.Signal // SIGCHLD, for the reaper only
	mainExit   chan syscall.WaitStatus
	noChildren chan struct{}
	restartReq chan string

	mu      sync.Mutex // held while forking the daemon and while reaping
	routeMu sync.Mutex // guards mainPID between reapAll's two threads
	mainPID int

	reaped atomic.Int64

	stateMu sync.Mutex
	snap    Snapshot
}

// New checks cfg and installs the signal handlers at once, so that a
// signal that arrives while the caller prepares (lock, health endpoint)
// is queued and forwarded once the daemon runs. ignored lists the signals
// kept ignored (see KeepIgnored): they are not caught.
func New(cfg Config, ignored []syscall.Signal, log *logrus.Logger) (*Supervisor, error) {
	if len(cfg.Command) == 0 {
		return nil, errors.New("no command to run: usage is oxios-init [options] -- CMD [ARGS...]")
	}
	cfg.Defaults()
	if cfg.BackoffMax < cfg.BackoffInitial {
		return nil, fmt.Errorf("backoff max %s is below backoff initial %s", cfg.BackoffMax, cfg.BackoffInitial)
	}
	s := &Supervisor{
		cfg: cfg,
		log: log,
		// Large enough that a burst of distinct signals during start-up
		// is not dropped (os/signal drops when the channel is full).
		sigs:       make(chan os.Signal, 256),
		chld:       make(chan os.Signal, 1),
		mainExit:   make(chan syscall.WaitStatus, 1),
		noChildren: make(chan struct{}, 1),
		restartReq: make(chan string, 1),
	}
	skip := map[syscall.Signal]bool{}
	for _, sig := range ignored {
		skip[sig] = true
	}
	var catch []os.Signal
	for _, sig := range Forwardable(true) {
		if !skip[sig] {
			catch = append(catch, sig)
		}
	}
	notify(s.chld, syscall.SIGCHLD)
	notify(s.sigs, catch...)
	s.setState(func(p *Snapshot) { p.State = "starting" })
	return s, nil
}

// State returns a copy of the current state.
func (s *Supervisor) State() Snapshot {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.snap
}

func (s *Supervisor) setState(f func(*Snapshot)) {
	s.stateMu.Lock()
	f(&s.snap)
	s.stateMu.Unlock()
}

// Reaped counts the zombies reaped that were not the daemon.
func (s *Supervisor) Reaped() int64 { return s.reaped.Load() }

// Restart asks for the daemon to be stopped (rewritten TERM, grace, KILL)
// and started again under the restart policy; the run counts as a
// failure. It never blocks; a request while one is pending is merged.
func (s *Supervisor) Restart(reason string) {
	select {
	case s.restartReq <- reason:
	default:
	}
}

// Run starts the daemon and supervises it until oxios-init must exit, and
// returns the exit code for oxios-init.
func (s *Supervisor) Run() int {
	go s.reapLoop()
	bo := backoff{initial: s.cfg.BackoffInitial, max: s.cfg.BackoffMax, reset: s.cfg.BackoffReset}
	for {
		// A restart asked for the previous run (a probe's verdict that
		// arrived after it ended) must not stop this one.
		s.drainRestart()
		started := time.Now()
		pid, code, err := s.start()
		if err != nil {
			s.log.Error(err)
			s.setState(func(p *Snapshot) { p.State = "exited"; p.PID = 0 })
			return code // 126/127: a broken command is not restarted
		}
		if s.cfg.OnStart != nil {
			s.cfg.OnStart(pid)
		}
		r := s.supervise(pid)
		if s.cfg.OnExit != nil {
			s.cfg.OnExit(ExitCode(r.status))
		}
		code = s.remap(ExitCode(r.status))
		s.log.Warnf("child %d exited (%s), exit code %d", pid, describe(r.status), code)
		if s.cleanup(pid, r.deadline) {
			r.stopping = true
		}
		if r.stopping || !s.shouldRestart(code, r.healthRestart) {
			s.setState(func(p *Snapshot) { p.State = "exited"; p.PID = 0 })
			return code
		}
		delay := bo.next(time.Since(started))
		s.setState(func(p *Snapshot) { p.State = "backoff"; p.PID = 0; p.Backoff = delay; p.Restarts++ })
		s.log.Warnf("restarting %s in %s (policy %s)", s.cfg.Command[0], delay, s.cfg.Restart)
		if !s.wait(delay) {
			s.setState(func(p *Snapshot) { p.State = "exited"; p.Backoff = 0 })
			return code
		}
		s.setState(func(p *Snapshot) { p.State = "starting"; p.Backoff = 0 })
	}
}

func (s *Supervisor) drainRestart() {
	select {
	case <-s.restartReq:
	default:
	}
}

func (s *Supervisor) remap(code int) int {
	if s.cfg.Remap[code] {
		return 0
	}
	return code
}

func (s *Supervisor) shouldRestart(code int, healthRestart bool) bool {
	switch s.cfg.Restart {
	case Always:
		return true
	case OnFailure:
		return code != 0 || healthRestart
	}
	return false
}

// start forks and execs the daemon in its own process group. It returns
// 127 or 126 with an error when the command cannot be run.
func (s *Supervisor) start() (int, int, error) {
	env := s.cfg.Env
	if env == nil {
		env = os.Environ()
	}
	path, code, err := lookPath(s.cfg.Command[0], env)
	if err != nil {
		return 0, s.remap(code), err
	}
	attr := &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			// Own group: -g and the final KILL reach it whole, and a
			// terminal's job control sees one job, as with tini.
			Setpgid: true,
		},
	}
	// Descriptors above 2 that oxios-init inherited without
	// close-on-exec (socket activation, a runtime's extra files) stay open
	// in the child: they were meant for the daemon. Everything oxios-init
	// and the Go standard library open is close-on-exec and stays behind.
	if isTerminal(0) {
		attr.Sys.Foreground = true
		attr.Sys.Ctty = 0
	}
	pid, err := s.forkExec(path, attr)
	if err != nil && attr.Sys.Foreground {
		// Not our terminal after all (no controlling tty): run in the
		// background rather than not at all.
		attr.Sys.Foreground = false
		pid, err = s.forkExec(path, attr)
	}
	if err != nil {
		code := 126
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
		return 0, s.remap(code), fmt.Errorf("exec %s: %w", path, err)
	}
	s.setState(func(p *Snapshot) { p.PID = pid; p.State = "running" })
	s.log.Debugf("started %s as pid %d", path, pid)
	return pid, 0, nil
}

// forkExec starts the daemon under s.mu, which the reaper holds while it
// drains: the daemon's PID is recorded before its exit can be reaped, so
// even an at-once exit is handed to supervise, not counted as a zombie.
func (s *Supervisor) forkExec(path string, attr *syscall.ProcAttr) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pid, err := syscall.ForkExec(path, s.cfg.Command, attr)
	if err == nil {
		s.routeMu.Lock()
		s.mainPID = pid
		s.routeMu.Unlock()
	}
	return pid, err
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// lookPath resolves cmd like execvp: a name with a slash is used as is;
// otherwise the first executable regular file in PATH. A match that is
// not executable gives 126, none at all 127.
func lookPath(cmd string, env []string) (string, int, error) {
	if strings.Contains(cmd, "/") {
		return cmd, 0, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	denied := ""
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, cmd)
		st, err := os.Stat(p)
		if err != nil || st.IsDir() {
			continue
		}
		if unix.Access(p, unix.X_OK) == nil {
			return p, 0, nil
		}
		if denied == "" {
			denied = p
		}
	}
	if denied != "" {
		return "", 126, fmt.Errorf("exec %s: permission denied", denied)
	}
	return "", 127, fmt.Errorf("exec %s: not found in PATH (%s)", cmd, pathEnv)
}
