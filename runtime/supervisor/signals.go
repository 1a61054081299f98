package supervisor

import (
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Real-time signals. The kernel numbers them 32..64; glibc reserves 32
// and 33 (thread cancellation, setxid broadcast) and calls 34 SIGRTMIN,
// musl reserves 32..34. The Go runtime keeps 32, 33 and 34 out of
// os/signal's reach (runtime/sigtab_linux_generic.go, Go issue 39343; it
// uses 33 itself), so a Go PID 1 cannot forward them.
// oxios-init therefore forwards 35 (SIGRTMIN+1) to 64 (SIGRTMAX); 34 is
// ignored when oxios-init is not PID 1 (rtmin_linux.go). Names follow
// glibc: RTMIN is 34.
const (
	SigRTMin = 34
	SigRTMax = 64

	// firstForwardedRT is the lowest real-time signal Go lets us catch.
	firstForwardedRT = 35
)

// unixName is the name without "SIG" of a standard signal, from x/sys.
func unixName(s syscall.Signal) string {
	return strings.TrimPrefix(unix.SignalName(s), "SIG")
}

// SignalName is a printable name: "SIGTERM", "SIGRTMIN+3".
func SignalName(s syscall.Signal) string {
	if s >= SigRTMin && s <= SigRTMax {
		return "SIGRTMIN+" + strconv.Itoa(int(s)-SigRTMin)
	}
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return "signal " + strconv.Itoa(int(s))
}

// Forwardable lists every signal oxios-init catches and forwards when it
// starts with all dispositions at default: 1..31 except those that
// cannot be caught (KILL, STOP), SIGCHLD (it belongs to the reaper) and
// SIGURG unless forwardURG, then 35..64 (see firstForwardedRT).
//
// SIGPIPE is caught (an EPIPE on oxios-init's stdout must not end PID 1)
// but never forwarded: the one its own writes raise looks the same (run.go).
//
// SIGPROF is listed but never arrives: the Go runtime keeps SIGPROF for
// its profiler and does not deliver it to os/signal (runtime.sighandler).
func Forwardable(forwardURG bool) []syscall.Signal {
	var out []syscall.Signal
	for n := 1; n <= SigRTMax; n++ {
		s := syscall.Signal(n)
		switch {
		case s == syscall.SIGKILL, s == syscall.SIGSTOP, s == syscall.SIGCHLD:
			continue
		case s == syscall.SIGURG && !forwardURG:
			continue
		case n >= 32 && n < firstForwardedRT:
			continue
		}
		out = append(out, s)
	}
	return out
}

// goFatal reports whether sig, not yet caught with signal.Notify, would end
// a Go program at once: the runtime exits on SIGHUP, SIGINT and SIGTERM and
// crashes on the synchronous signals and SIGQUIT, SIGABRT, SIGSYS. It drops
// every other signal that is not caught (runtime.sighandler).
func goFatal(sig os.Signal) bool {
	switch sig {
	case syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGABRT, syscall.SIGSYS,
		syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSTKFLT:
		return true
	}
	return false
}

// StartupIgnored returns the signals whose disposition was SIG_IGN when
// this process was executed, as far as they can still be seen: it must
// run before any signal.Notify.
//
// Before main runs, the Go runtime installs its own handler over an
// inherited SIG_IGN for every signal it handles, and keeps the original
// only in its private state. What is left to read is the kernel's view,
// SigIgn in /proc/self/status, which still shows the signals the runtime
// leaves alone until Notify: SIGHUP and SIGINT (also what signal.Ignored
// reports), the job-control signals SIGCONT, SIGTSTP, SIGTTIN and SIGTTOU,
// and 32 and 34 (33 the runtime takes for its all-threads system calls).
// An inherited SIG_IGN of any other signal is not seen, and the child gets
// that signal at its default action (docs/pid1.md).
func StartupIgnored() []syscall.Signal {
	ign := procSigIgn()
	var out []syscall.Signal
	for n := 1; n <= SigRTMax; n++ {
		if ign[syscall.Signal(n)] {
			out = append(out, syscall.Signal(n))
		}
	}
	return out
}

func procSigIgn() map[syscall.Signal]bool {
	out := map[syscall.Signal]bool{}
	// Raw open and read: os.Open would set up the runtime's network poller
	// just for this, which costs start-up time.
	fd, err := unix.Open("/proc/self/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return out
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if m <= 0 || err != nil {
			break
		}
		n += m
	}
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		v, ok := strings.CutPrefix(line, "SigIgn:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return out
		}
		for n := 1; n <= 64; n++ {
			if mask&(1<<(n-1)) != 0 {
				out[syscall.Signal(n)] = true
			}
		}
	}
	return out
}

// Signals are oxios-init's signal handlers: Catch installs them, New hands
// them to the supervisor.
type Signals struct {
	sigs      chan os.Signal // every forwarded signal
	chld      chan os.Signal // SIGCHLD, for the reaper only
	installed chan struct{}  // closed once every handler is in place
	kept      []syscall.Signal
	rtmin     rtminGuard
}

// Catch keeps the signals in ignored (StartupIgnored) ignored, for the
// child too (KeepIgnored), and catches every other forwardable signal, so
// that a signal that arrives while oxios-init starts is queued and
// forwarded once the daemon runs. Call it first, as tini's main does.
//
// The signals whose default action in a Go program would end oxios-init
// are caught before Catch returns; the rest beside oxios-init's own
// start-up (options, lock, health endpoint): signal.Notify of a new signal
// waits for the runtime's signal-mask thread, two thread wake-ups per
// signal, and the rest are most of the 60 or so (bench/init/RESULTS.md).
// Until then the runtime drops those, as it does before main runs. The
// supervisor forks nothing before every handler is in place, so no signal
// sent once a child exists is lost.
func Catch(ignored []syscall.Signal) *Signals {
	c := &Signals{
		// Large enough that a burst of distinct signals during start-up
		// is not dropped (os/signal drops when the channel is full).
		sigs:      make(chan os.Signal, 256),
		chld:      make(chan os.Signal, 1),
		installed: make(chan struct{}),
		kept:      KeepIgnored(ignored),
		rtmin:     ignoreRTMin(ignored),
	}
	skip := map[syscall.Signal]bool{}
	for _, sig := range c.kept {
		skip[sig] = true
	}
	var fatal, rest []os.Signal
	for _, sig := range Forwardable(true) {
		switch {
		case skip[sig]:
		case goFatal(sig):
			fatal = append(fatal, sig)
		default:
			rest = append(rest, sig)
		}
	}
	signal.Notify(c.sigs, fatal...)
	go func() {
		signal.Notify(c.chld, syscall.SIGCHLD)
		signal.Notify(c.sigs, rest...)
		close(c.installed)
	}()
	return c
}

// Kept lists the signals ignored at start that stay ignored.
func (c *Signals) Kept() []syscall.Signal { return c.kept }

// KeepIgnored makes oxios-init itself ignore sigs, so that the child
// inherits SIG_IGN through fork and exec at no cost: Go resets only the
// signals it handles to SIG_DFL in the child, and signal.Ignore takes a
// signal out of that set. SIGCHLD is never ignored: an ignored SIGCHLD
// makes the kernel discard exit statuses. It returns what it kept.
func KeepIgnored(sigs []syscall.Signal) []syscall.Signal {
	var kept []syscall.Signal
	for _, s := range sigs {
		if s == syscall.SIGCHLD || s == syscall.SIGKILL || s == syscall.SIGSTOP || s == syscall.SIGPROF {
			continue
		}
		signal.Ignore(s)
		kept = append(kept, s)
	}
	return kept
}

// asyncPreemptOff reports whether the Go runtime of this binary never
// sends itself SIGURG, so that every SIGURG that arrives came from outside:
// GODEBUG says so, or linked, the GODEBUG default the build linked in
// beside the runtime's (Makefile INIT_GODEBUG), does. The environment
// overrides the linked default, as in the runtime.
func asyncPreemptOff(env, linked string) bool {
	if off, set := godebugAsyncPreemptOff(env); set {
		return off
	}
	off, _ := godebugAsyncPreemptOff(linked)
	return off
}

// godebugAsyncPreemptOff reads asyncpreemptoff from a GODEBUG list (the
// last setting wins, as in the runtime); set is false when the list does
// not mention it.
func godebugAsyncPreemptOff(list string) (off, set bool) {
	for _, kv := range strings.Split(list, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k == "asyncpreemptoff" && (v == "0" || v == "1") {
			off, set = v == "1", true
		}
	}
	return off, set
}
