package supervisor

import (
	"os"
	"os/signal"
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

	released bool // stdin's terminal was given up for the child (start's goroutine only)
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
// SIGHUP and SIGCONT to the terminal's foreground group, which is
// oxios-init's own: they are ignored across the call, or the HUP would be
// forwarded and end the child (dumb-init skips the first of each instead).
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
	var caught []os.Signal
	for _, sig := range []os.Signal{syscall.SIGHUP, syscall.SIGCONT} {
		if !signal.Ignored(sig) { // kept ignored from start: leave it so
			caught = append(caught, sig)
		}
	}
	if len(caught) > 0 { // Ignore() with no argument ignores everything
		signal.Ignore(caught...)
	}
	err := unix.IoctlSetInt(0, unix.TIOCNOTTY, 0)
	if len(caught) > 0 {
		signal.Notify(s.sigs, caught...)
	}
	if err != nil {
		s.log.Debugf("give up stdin's terminal for the child's session (TIOCNOTTY): %v", err)
		return false
	}
	s.cfg.Session.released = true
	return true
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
