package supervisor

import (
	"bytes"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Real-time signals. The kernel numbers them 32..64; glibc reserves 32
// and 33 (thread cancellation, setxid broadcast) and calls 34 SIGRTMIN,
// musl reserves 32..34. The Go runtime never installs a handler for 32,
// 33 or 34 (runtime/sigtab_linux_generic.go, Go issue 39343), so
// os/signal cannot catch them and a Go PID 1 cannot forward them.
// oxios-init therefore forwards 35 (SIGRTMIN+1) to 64 (SIGRTMAX); 34 keeps
// its default action. Names follow glibc: RTMIN is 34.
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

// StartupIgnored returns the signals whose disposition was SIG_IGN when
// this process was executed. It must run before any signal.Notify.
//
// The Go runtime installs its own handler over an inherited SIG_IGN for
// most signals at start-up and remembers the original only in
// runtime.fwdSig; builds with the oxios_fwdsig tag read it (see
// fwdsig_linkname.go). Every build also reads SigIgn from
// /proc/self/status, which still shows the signals the runtime leaves
// alone until Notify (SIGHUP and SIGINT when ignored, SIGCONT, SIGTSTP,
// SIGTTIN, SIGTTOU).
func StartupIgnored() []syscall.Signal {
	ign := procSigIgn()
	for _, s := range runtimeIgnored() {
		ign[s] = true
	}
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

// AsyncPreemptOff reports whether the Go runtime of this binary never
// sends itself SIGURG: GODEBUG says so, or the build linked
// asyncpreemptoff=1 in as the runtime's GODEBUG default (Makefile
// INIT_LDFLAGS: -X runtime.godebugDefault=asyncpreemptoff=1). Builds with
// the oxios_fwdsig tag read that default directly. Without the tag it
// cannot be read (a -trimpath build does not record its -ldflags), so the
// executable is searched for the linked string; that costs a read of the
// binary, so it is done once, when the first SIGURG arrives.
func AsyncPreemptOff() bool {
	preemptOnce.Do(func() { preemptOff = asyncPreemptOff() })
	return preemptOff
}

var (
	preemptOnce sync.Once
	preemptOff  bool
)

func asyncPreemptOff() bool {
	// The environment overrides the linked default, as in the runtime.
	if off, set := godebugAsyncPreemptOff(os.Getenv("GODEBUG")); set {
		return off
	}
	if def, ok := linkedGODEBUG(); ok {
		off, _ := godebugAsyncPreemptOff(def)
		return off
	}
	exe, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return false
	}
	// Spelled backwards here so that this literal is not what matches.
	r := []byte("1=ffotpmeerpcnysa")
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return bytes.Contains(exe, r)
}

// godebugAsyncPreemptOff reads asyncpreemptoff from a GODEBUG list (the
// last setting wins, as in the runtime); set is false when the list does
// not mention it. Key and value are compared apart: the joined string
// must not appear in the binary, or the executable search above would
// always find it.
func godebugAsyncPreemptOff(list string) (off, set bool) {
	for _, kv := range strings.Split(list, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k == "asyncpreemptoff" && (v == "0" || v == "1") {
			off, set = v == "1", true
		}
	}
	return off, set
}
