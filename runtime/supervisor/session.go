package supervisor

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Session is where the child is placed among sessions and process groups,
// and what oxios-init does after a job-control signal. The zero value is
// tini's: the child leads its own process group, in the terminal's
// foreground when stdin is one.
type Session struct {
	// Setsid makes the child lead a new session (dumb-init's default). It
	// takes over stdin's terminal when oxios-init led the session that the
	// terminal belonged to, as dumb-init's child does.
	Setsid bool
	// SharedGroup leaves the child in oxios-init's own process group
	// (dumb-init -c): a terminal's job control sees one job, both.
	SharedGroup bool
	// SuspendSelf stops oxios-init itself after it forwarded SIGTSTP,
	// SIGTTIN or SIGTTOU, whatever they were rewritten to (dumb-init), so
	// that the shell that sent them sees the job stop; the shell's SIGCONT
	// resumes oxios-init, which forwards it.
	SuspendSelf bool

	// Set and read by Run's goroutine only (start, then supervise).
	released bool // stdin's terminal was given up for the child
	echoHUP  bool // the next SIGHUP is the kernel's answer to that
	echoCONT bool // the next SIGCONT too
}

// placeChild adjusts start's tini defaults (own group, foreground) to the
// configured Session.
func (s *Supervisor) placeChild(sys *syscall.SysProcAttr) {
	switch {
	case s.cfg.Session.Setsid:
		sys.Setpgid, sys.Foreground = false, false
		sys.Setsid = true
		if s.releaseTerminal() {
			sys.Setctty, sys.Ctty = true, 0
		}
	case s.cfg.Session.SharedGroup:
		sys.Setpgid, sys.Foreground = false, false
	}
}

// dropTerminal clears the terminal settings that fail in the child when
// stdin is not the terminal we took it for; it reports whether there was
// one to clear (and a retry is worth it).
func dropTerminal(sys *syscall.SysProcAttr) bool {
	had := sys.Foreground || sys.Setctty
	sys.Foreground, sys.Setctty = false, false
	return had
}

// releaseTerminal gives up stdin's terminal when oxios-init leads the
// session it controls (dumb-init's TIOCNOTTY), so that the child's new
// session can take it: a terminal is the controlling terminal of one
// session at most. The kernel answers TIOCNOTTY from a session leader with
// SIGHUP and SIGCONT to the terminal's foreground group: when that is
// oxios-init's own, the next HUP and CONT are those echoes and are not
// forwarded, or the HUP would end the child. That is dumb-init's rule.
// Switching the two signals to SIG_IGN across the call instead races the
// Go runtime when a HUP that came before its handlers is still being
// handled: in the start-up stress test oxios-init then died of SIGSEGV
// about once in 10,000 starts.
func (s *Supervisor) releaseTerminal() bool {
	if s.cfg.Session.released {
		return true
	}
	me := os.Getpid()
	if sid, err := unix.Getsid(0); err != nil || sid != me || !isTerminal(0) {
		return false
	}
	// TIOCGSID answers only for our own controlling terminal.
	if sid, err := unix.IoctlGetInt(0, unix.TIOCGSID); err != nil || sid != me {
		return false
	}
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err := unix.IoctlSetInt(0, unix.TIOCNOTTY, 0); err != nil {
		s.log.Debugf("give up stdin's terminal for the child's session (TIOCNOTTY): %v", err)
		return false
	}
	s.cfg.Session.released = true
	if err == nil && fg == unix.Getpgrp() {
		// One kept ignored from start is not caught: no echo arrives.
		s.cfg.Session.echoHUP = !signal.Ignored(syscall.SIGHUP)
		s.cfg.Session.echoCONT = !signal.Ignored(syscall.SIGCONT)
	}
	return true
}

// forward sends to (the rewritten sig; 0 drops it) to the child, except
// an echo of releaseTerminal, and suspends oxios-init after it when
// Session.SuspendSelf says so.
func (s *Supervisor) forward(pid int, sig, to syscall.Signal) {
	echo := map[syscall.Signal]*bool{syscall.SIGHUP: &s.cfg.Session.echoHUP, syscall.SIGCONT: &s.cfg.Session.echoCONT}[sig]
	if echo != nil && *echo {
		*echo = false
		s.log.Debugf("not forwarding %s: the kernel's answer to giving up the terminal", SignalName(sig))
		return
	}
	if to != 0 {
		s.send(pid, to)
	}
	s.suspendAfter(sig)
}

// suspendAfter stops oxios-init after it forwarded a job-control signal,
// when Session.SuspendSelf says so. As PID 1 it does nothing: the kernel
// does not let a namespace's init stop itself, for dumb-init either.
func (s *Supervisor) suspendAfter(sig syscall.Signal) {
	if !s.cfg.Session.SuspendSelf {
		return
	}
	switch sig {
	case syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
		s.log.Debugf("received %s: suspending oxios-init too (dumb-init's job control)", SignalName(sig))
		syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	}
}

// TerminalWriter returns w unchanged unless it is a terminal. Then its
// writes go through one OS thread that has SIGTTOU blocked. Once the child
// has the terminal's foreground (tini's placement), oxios-init is a
// background job, and with `stty tostop` the kernel answers its writes
// with SIGTTOU; with a handler for it (oxios-init catches SIGTTOU to
// forward it) the write restarts, and again, for ever: oxios-init spun at
// full CPU instead of logging a line. tini and dumb-init block every
// signal, which the kernel takes as leave to write; a SIGTTOU blocked on
// the writing thread is the same leave.
func TerminalWriter(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(int(f.Fd())) {
		return w
	}
	t := &ttyWriter{f: f, req: make(chan []byte), res: make(chan ttyResult)}
	started := make(chan error)
	go t.serve(started)
	if err := <-started; err != nil {
		return w
	}
	return t
}

type ttyWriter struct {
	mu  sync.Mutex
	f   *os.File
	req chan []byte
	res chan ttyResult
}

type ttyResult struct {
	n   int
	err error
}

// serve owns the writing thread. It is never unlocked and never returns,
// so the thread and its mask last as long as oxios-init.
func (t *ttyWriter) serve(started chan<- error) {
	runtime.LockOSThread()
	var set unix.Sigset_t
	n := uint(syscall.SIGTTOU) - 1
	set.Val[n/64] |= 1 << (n % 64)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		started <- fmt.Errorf("block SIGTTOU on the terminal writer's thread: %w", err)
		return
	}
	started <- nil
	for p := range t.req {
		n, err := t.f.Write(p)
		t.res <- ttyResult{n, err}
	}
}

func (t *ttyWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.req <- p
	r := <-t.res
	return r.n, r.err
}
