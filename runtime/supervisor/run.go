package supervisor

import (
	"os"
	"syscall"
	"time"

	"github.com/a7garden/oxios/internal/proctree"
)

// runResult is how one run of the daemon ended.
type runResult struct {
	status        syscall.WaitStatus
	stopping      bool      // oxios-init was told to stop: do not restart
	healthRestart bool      // stopped because Restart was called
	deadline      time.Time // end of the grace period already running, or zero
}

// supervise forwards signals to the daemon until it exits.
func (s *Supervisor) supervise(pid int) runResult {
	var r runResult
	var kill <-chan time.Time // the grace period's end, once a stop began
	stopBegun := false
	// beginStop sends sig (0: none) and, with a grace period, arms the
	// SIGKILL that ends it. Only the first stop of a run does.
	beginStop := func(sig syscall.Signal, grace time.Duration) {
		if stopBegun {
			return
		}
		stopBegun = true
		s.setState(func(p *Snapshot) { p.State = "stopping" })
		if grace > 0 {
			r.deadline = time.Now().Add(grace)
			kill = time.After(grace)
		}
		if sig != 0 {
			s.send(pid, sig)
		}
	}
	for {
		select {
		case ws := <-s.mainExit:
			r.status = ws
			return r
		case sig := <-s.sigs:
			ss := sig.(syscall.Signal)
			if ss == syscall.SIGURG && !s.forwardURG {
				s.log.Debugf("not forwarding SIGURG: this build cannot tell it from the Go runtime's own preemption signal")
				continue
			}
			if ss == syscall.SIGPIPE {
				// Go delivers the SIGPIPE of oxios-init's own write to a
				// closed socket or pipe (a probe, an endpoint client, the
				// log reader hanging up) to os/signal like one sent with
				// kill(2): forwarding it would kill a daemon that never
				// wrote to a broken pipe.
				s.log.Debugf("not forwarding SIGPIPE: oxios-init cannot tell one sent to it from its own writes' broken pipes")
				continue
			}
			to := s.rewrite(ss)
			if ss != syscall.SIGTERM && ss != syscall.SIGINT {
				s.forward(pid, ss, to) // session.go
				continue
			}
			r.stopping = true
			if stopBegun {
				if to != 0 {
					s.send(pid, to) // a second TERM is forwarded too
				}
				continue
			}
			s.logStop(ss, pid, to)
			beginStop(to, s.cfg.Grace)
		case reason := <-s.restartReq:
			if !stopBegun {
				s.log.Warnf("restarting %d: %s", pid, reason)
				r.healthRestart = true
				beginStop(s.rewrite(syscall.SIGTERM), s.grace())
			}
		case <-kill:
			kill = nil
			s.log.Warnf("grace period %s over: killing process group %d and every descendant", s.cfg.Grace, pid)
			s.killTree(pid, syscall.SIGKILL)
		}
	}
}

// logStop says how a stop signal is handled: with a grace period, or,
// with none configured, forwarded and waited for without a SIGKILL, as
// tini and dumb-init do.
func (s *Supervisor) logStop(sig syscall.Signal, pid int, to syscall.Signal) {
	if s.cfg.Grace > 0 {
		s.log.Infof("received %s: stopping %d (sending %s, grace %s)", SignalName(sig), pid, sigOrNone(to), s.cfg.Grace)
		return
	}
	s.log.Infof("received %s: stopping %d (sending %s; no grace period configured, so no SIGKILL: waiting for it to exit)", SignalName(sig), pid, sigOrNone(to))
}

// grace bounds a stop that no signal asked for.
func (s *Supervisor) grace() time.Duration {
	if s.cfg.Grace > 0 {
		return s.cfg.Grace
	}
	return DefaultGrace
}

func sigOrNone(s syscall.Signal) string {
	if s == 0 {
		return "nothing (dropped by -r)"
	}
	return SignalName(s)
}

func (s *Supervisor) rewrite(sig syscall.Signal) syscall.Signal {
	if to, ok := s.cfg.Rewrite[sig]; ok {
		return to
	}
	return sig
}

// send forwards sig to the daemon, or to its process group with -g.
func (s *Supervisor) send(pid int, sig syscall.Signal) {
	target := pid
	if s.cfg.KillGroup {
		target = -pid
	}
	if err := syscall.Kill(target, sig); err != nil && err != syscall.ESRCH {
		s.log.Warnf("forward %s to %d: %v", SignalName(sig), target, err)
	}
	s.log.Debugf("forwarded %s to %d", SignalName(sig), target)
}

// killTree sends sig to the daemon's process group and to every remaining
// descendant of oxios-init. As PID 1 that is kill(-1): every other process
// of the PID namespace.
func (s *Supervisor) killTree(pid int, sig syscall.Signal) {
	if pid > 0 {
		syscall.Kill(-pid, sig)
	}
	if os.Getpid() == 1 {
		syscall.Kill(-1, sig)
		return
	}
	// New processes can be forked while we scan: scan until a pass finds
	// nothing new (bounded, a fork bomb must not keep us here).
	seen := map[int]bool{}
	for i := 0; i < 5; i++ {
		fresh := 0
		for _, d := range proctree.Descendants(os.Getpid()) {
			if seen[d] && sig != syscall.SIGKILL {
				continue
			}
			if !seen[d] {
				fresh++
			}
			seen[d] = true
			syscall.Kill(d, sig)
		}
		if fresh == 0 {
			return
		}
	}
}

// cleanup clears what the daemon left behind: the rewritten TERM to the
// remaining processes, then until the deadline (a stop's grace period
// already running, or a new one) for them to exit, then KILL. It returns
// true when a stop signal arrived meanwhile.
func (s *Supervisor) cleanup(pid int, deadline time.Time) (stopped bool) {
	// Fast path (every clean exit): no child left at all.
	s.drainNoChildren()
	if !s.childrenLeft() {
		return false
	}
	if deadline.IsZero() {
		deadline = time.Now().Add(s.grace())
	}
	if to := s.rewrite(syscall.SIGTERM); to != 0 && time.Now().Before(deadline) {
		s.log.Infof("child %d left processes behind: sending %s, grace until %s", pid, SignalName(to), time.Until(deadline).Round(time.Millisecond))
		s.killTree(pid, to)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	killed := false
	for {
		if !s.childrenLeft() {
			return stopped
		}
		select {
		case <-s.noChildren:
		case sig := <-s.sigs:
			ss := sig.(syscall.Signal)
			if ss == syscall.SIGTERM || ss == syscall.SIGINT {
				stopped = true
			}
		case <-timer.C:
			if !killed {
				s.log.Warnf("grace period over: killing every remaining descendant")
			}
			killed = true
			s.killTree(pid, syscall.SIGKILL)
			// Processes in uninterruptible sleep die later; look again.
			timer.Reset(100 * time.Millisecond)
		}
	}
}

func (s *Supervisor) drainNoChildren() {
	select {
	case <-s.noChildren:
	default:
	}
}

// wait sleeps for the backoff delay; a stop signal ends it at once and
// makes it return false.
func (s *Supervisor) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case sig := <-s.sigs:
			ss := sig.(syscall.Signal)
			if ss == syscall.SIGTERM || ss == syscall.SIGINT {
				s.log.Infof("received %s during backoff: exiting", SignalName(ss))
				return false
			}
			s.log.Debugf("no child to forward %s to (backoff)", SignalName(ss))
		case <-s.restartReq:
		}
	}
}

// backoff doubles the delay from initial up to max, and starts over when
// the last run lasted at least reset.
type backoff struct {
	initial, max, reset time.Duration
	cur                 time.Duration
}

func (b *backoff) next(ran time.Duration) time.Duration {
	if b.cur == 0 || ran >= b.reset {
		b.cur = b.initial
	} else {
		b.cur *= 2
		if b.cur > b.max {
			b.cur = b.max
		}
	}
	return b.cur
}
