// Package supervisor is the PID-1 side of oxios: it starts the daemon,
// owns wait4(-1) (one reaper goroutine), forwards and rewrites signals,
// stops the process tree (TERM, grace, KILL), and restarts the daemon
// under a restart policy with exponential backoff. cmd/oxios-init turns
// flags and environment into a Config; this package never exits the
// process and never prints anything but logs.
package supervisor

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Policy says when the daemon is started again after it exits.
type Policy int

const (
	// Never exits with the daemon's code (tini's behaviour).
	Never Policy = iota
	// OnFailure restarts when the exit code, after -e remapping, is not 0,
	// and always after a health-requested restart.
	OnFailure
	// Always restarts whatever the exit code.
	Always
)

// ParsePolicy reads never|on-failure|always.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "never", "no":
		return Never, nil
	case "on-failure":
		return OnFailure, nil
	case "always":
		return Always, nil
	}
	return Never, fmt.Errorf("restart policy %q: want never, on-failure or always", s)
}

func (p Policy) String() string {
	return [...]string{"never", "on-failure", "always"}[p]
}

// Config is everything the supervisor needs; zero values are tini's
// defaults except where noted.
type Config struct {
	Command []string // CMD and its arguments; CMD is looked up in PATH
	Env     []string // nil = the supervisor's own environment

	KillGroup bool         // -g: forward to the child's process group
	Remap     map[int]bool // -e: exit codes reported as 0
	// Grace is the time from a forwarded TERM or INT to the SIGKILL of the
	// tree. Zero means none configured: forward and wait, as tini and
	// dumb-init do, since the runtime (docker stop, the kubelet) enforces
	// its own timeout. Restarts asked by a probe, and what the daemon leaves
	// behind, get DefaultGrace then.
	Grace time.Duration
	// Rewrite maps a received signal to the one forwarded; a value of 0
	// drops the signal (dumb-init's -r FROM:TO).
	Rewrite map[syscall.Signal]syscall.Signal

	Restart        Policy
	BackoffInitial time.Duration // default 1s
	BackoffMax     time.Duration // default 60s
	BackoffReset   time.Duration // default 10m: a run this long resets the backoff

	WarnOnReap bool // -w: warn for every reaped zombie that is not the daemon

	// LinkedGODEBUG is the GODEBUG default linked into this binary beside
	// the runtime's (the Makefile's INIT_GODEBUG): with asyncpreemptoff=1
	// the runtime never sends itself SIGURG, so a SIGURG that arrives came
	// from outside and is forwarded.
	LinkedGODEBUG string

	Session Session // dumb-init's setsid mode, -c and job control (session.go)
}

// DefaultGrace bounds the stops that no signal asked for: a restart after
// a failed probe, and the processes a daemon left behind, when Grace is
// not configured.
const DefaultGrace = 10 * time.Second

// Defaults fills the zero durations with the documented defaults. Grace
// stays zero: none configured is a behaviour of its own.
func (c *Config) Defaults() {
	if c.BackoffInitial == 0 {
		c.BackoffInitial = time.Second
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 60 * time.Second
	}
	if c.BackoffReset == 0 {
		c.BackoffReset = 10 * time.Minute
	}
}

// ParseSignal reads a signal as a number ("15"), a name ("TERM",
// "SIGTERM"), or "RTMIN+N"/"RTMAX-N". Zero is accepted only when allowZero.
func ParseSignal(s string, allowZero bool) (syscall.Signal, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(u); err == nil {
		if n == 0 && allowZero {
			return 0, nil
		}
		if n < 1 || n > SigRTMax {
			return 0, fmt.Errorf("signal %q: out of range 1..%d", s, SigRTMax)
		}
		return syscall.Signal(n), nil
	}
	u = strings.TrimPrefix(u, "SIG")
	switch {
	case u == "RTMIN":
		return SigRTMin, nil
	case u == "RTMAX":
		return SigRTMax, nil
	case strings.HasPrefix(u, "RTMIN+"):
		if n, ok := rtOffset(u[6:]); ok {
			return syscall.Signal(SigRTMin + n), nil
		}
	case strings.HasPrefix(u, "RTMAX-"):
		if n, ok := rtOffset(u[6:]); ok {
			return syscall.Signal(SigRTMax - n), nil
		}
	default:
		for n := 1; n < 32; n++ {
			if strings.EqualFold(unixName(syscall.Signal(n)), u) {
				return syscall.Signal(n), nil
			}
		}
		if u == "IOT" {
			return syscall.SIGABRT, nil
		}
		if u == "POLL" {
			return syscall.SIGIO, nil
		}
	}
	return 0, fmt.Errorf("signal %q: unknown (use a number, a name like TERM, or RTMIN+N)", s)
}

// rtOffset reads the N of RTMIN+N or RTMAX-N: unsigned decimal digits
// that stay within the real-time range ("RTMAX--1" is not RTMAX+1).
func rtOffset(s string) (int, bool) {
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n > SigRTMax-SigRTMin {
		return 0, false
	}
	return int(n), true
}

// ParseRewrite reads one FROM:TO pair of -r.
func ParseRewrite(s string) (from, to syscall.Signal, err error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("rewrite %q: want FROM:TO", s)
	}
	if from, err = ParseSignal(a, false); err != nil {
		return 0, 0, fmt.Errorf("rewrite %q: %w", s, err)
	}
	if to, err = ParseSignal(b, true); err != nil {
		return 0, 0, fmt.Errorf("rewrite %q: %w", s, err)
	}
	return from, to, nil
}
