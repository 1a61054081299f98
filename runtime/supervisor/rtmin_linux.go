//go:build linux && (amd64 || arm64)

package supervisor

import (
	"os"
	"syscall"
	"unsafe"
)

// rtminGuard keeps signal 34 (SIGRTMIN) from ending oxios-init. Its default
// action is to terminate, and os/signal cannot catch it (see SigRTMin);
// signal.Ignore leaves it alone too, so it is set to SIG_IGN with the
// system call itself. The Go runtime installs nothing for 34 and never
// looks at it again. A child must not inherit that SIG_IGN (tini's and
// dumb-init's children get the default action), so 34 is back at its
// default while a child is forked, under Supervisor.mu: a SIGRTMIN that
// arrives during a fork still ends oxios-init.
//
// As PID 1 nothing is needed: the kernel drops every signal whose action
// is the default one that is sent to a PID namespace's init, except
// SIGKILL and SIGSTOP from an ancestor namespace.
type rtminGuard struct{ on bool }

// kernelSigaction is the kernel's struct sigaction on amd64 and arm64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	sigDFL = 0
	sigIGN = 1
)

// ignoreRTMin ignores 34 unless oxios-init is PID 1 or 34 was ignored when
// it started (then the child inherits that, as it should).
func ignoreRTMin(ignored []syscall.Signal) rtminGuard {
	if os.Getpid() == 1 {
		return rtminGuard{}
	}
	for _, s := range ignored {
		if s == SigRTMin {
			return rtminGuard{}
		}
	}
	return rtminGuard{on: setRTMin(sigIGN) == nil}
}

func (g rtminGuard) beforeFork() {
	if g.on {
		setRTMin(sigDFL)
	}
}

func (g rtminGuard) afterFork() {
	if g.on {
		setRTMin(sigIGN)
	}
}

func setRTMin(handler uintptr) error {
	sa := kernelSigaction{handler: handler}
	// The last argument is the size of the kernel's sigset_t, 8 bytes.
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, SigRTMin, uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
