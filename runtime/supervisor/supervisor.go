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

// Supervisor runs one daemon, and every other process oxios-init starts
// (exec probes: Exec). Create it with New, from the handlers Catch
// installed first thing.
type Supervisor struct {
	cfg Config
	log *logrus.Logger

	sigs       chan os.Signal // every forwarded signal
	chld       chan os.Signal // SIGCHLD, for the reaper only
	installed  chan struct{}  // closed once every signal handler is in place
	rtmin      rtminGuard
	mainExit   chan syscall.WaitStatus
	noChildren chan struct{}
	restartReq chan string

	forwardURG bool // this runtime never sends itself SIGURG

	mu      sync.Mutex // held while forking and while reaping
	routeMu sync.Mutex // guards exits between reapAll's two threads
	// exits holds, for every child oxios-init started and has not yet
	// reaped (the daemon, exec probes), where its wait status goes.
	exits map[int]chan<- syscall.WaitStatus

	reaped atomic.Int64

	stateMu sync.Mutex
	snap    Snapshot
}

// Observer hears of each run of the daemon (the health monitor).
type Observer interface {
	ChildStarted(pid int)
	ChildExited(status int) // the exit code, 128+N after signal N
}

// New checks cfg and starts the reaper; sigs are the handlers Catch
// installed.
func New(cfg Config, sigs *Signals, log *logrus.Logger) (*Supervisor, error) {
	if len(cfg.Command) == 0 {
		return nil, errors.New("no command to run: usage is oxios-init [options] -- CMD [ARGS...]")
	}
	cfg.Defaults()
	if cfg.BackoffMax < cfg.BackoffInitial {
		return nil, fmt.Errorf("backoff max %s is below backoff initial %s", cfg.BackoffMax, cfg.BackoffInitial)
	}
	s := &Supervisor{
		cfg:        cfg,
		log:        log,
		sigs:       sigs.sigs,
		chld:       sigs.chld,
		installed:  sigs.installed,
		rtmin:      sigs.rtmin,
		mainExit:   make(chan syscall.WaitStatus, 1),
		noChildren: make(chan struct{}, 1),
		restartReq: make(chan string, 1),
		forwardURG: asyncPreemptOff(os.Getenv("GODEBUG"), cfg.LinkedGODEBUG),
		exits:      map[int]chan<- syscall.WaitStatus{},
	}
	go s.reapLoop()
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
// returns the exit code for oxios-init. obs (may be nil) hears of every
// run.
func (s *Supervisor) Run(obs Observer) int {
	if obs == nil {
		obs = noObserver{}
	}
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
		obs.ChildStarted(pid)
		r := s.supervise(pid)
		obs.ChildExited(ExitCode(r.status))
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

type noObserver struct{}

func (noObserver) ChildStarted(int) {}
func (noObserver) ChildExited(int)  {}

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
	env := s.env()
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
	s.placeChild(attr.Sys) // session.go: dumb-init's setsid and -c
	pid, err := s.forkExec(path, s.cfg.Command, attr, s.mainExit)
	if err != nil && dropTerminal(attr.Sys) {
		// Not our terminal after all (no controlling tty): run in the
		// background rather than not at all.
		pid, err = s.forkExec(path, s.cfg.Command, attr, s.mainExit)
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

// env is the environment of every child: Config.Env, or oxios-init's own.
func (s *Supervisor) env() []string {
	if s.cfg.Env != nil {
		return s.cfg.Env
	}
	return os.Environ()
}

// forkExec starts a child once every signal handler is installed, under
// s.mu, which the reaper holds while it drains: the child's PID is in
// s.exits before its exit can be reaped, so even an at-once exit goes to
// exit and is not counted as an orphan's.
func (s *Supervisor) forkExec(path string, argv []string, attr *syscall.ProcAttr, exit chan<- syscall.WaitStatus) (int, error) {
	<-s.installed
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rtmin.beforeFork()
	pid, err := syscall.ForkExec(path, argv, attr)
	s.rtmin.afterFork()
	if err == nil {
		s.routeMu.Lock()
		s.exits[pid] = exit
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
