//go:build oxios_fwdsig

package supervisor

import (
	"os"
	"os/signal"
	"syscall"
	_ "unsafe" // go:linkname
)

// fwdSig is the Go runtime's record of every signal disposition found at
// start-up, before the runtime installed its handlers (runtime/signal_unix.go).
// Reading it needs -ldflags=-checklinkname=0, hence the build tag.
//
//go:linkname fwdSig runtime.fwdSig
var fwdSig [65]uintptr

const sigIgn = 1 // _SIG_IGN

// godebugDefault is the GODEBUG default the linker set into this binary
// (Makefile INIT_LDFLAGS: -X runtime.godebugDefault=asyncpreemptoff=1).
//
//go:linkname godebugDefault runtime.godebugDefault
var godebugDefault string

// linkedGODEBUG returns the linked GODEBUG default; ok says it is known.
func linkedGODEBUG() (def string, ok bool) { return godebugDefault, true }

func runtimeIgnored() []syscall.Signal {
	var out []syscall.Signal
	for n := 1; n < len(fwdSig); n++ {
		if fwdSig[n] == sigIgn {
			out = append(out, syscall.Signal(n))
		}
	}
	return out
}

// The runtime's handshake with the thread that keeps a signal mask for
// os/signal (runtime.ensureSigM): every signal.Notify of a new signal
// sends on enableSigChan and waits on maskUpdatedChan, two thread wake-ups
// each. For the ~60 signals oxios-init catches that was 1.6 ms of a 4 ms
// start. Every Go thread already has these signals unblocked (they carry
// the mask oxios-init was started with), so that extra thread adds
// nothing here.
//
//go:linkname enableSigChan runtime.enableSigChan
var enableSigChan chan uint32

//go:linkname maskUpdatedChan runtime.maskUpdatedChan
var maskUpdatedChan chan struct{}

// notify is signal.Notify without the per-signal handshake: before that
// thread exists, the two channels are made buffered and pre-answered, and
// set back to nil afterwards, so a later Notify starts the thread as
// usual. Must not run concurrently with another os/signal call; New runs
// it before any goroutine of oxios-init touches signals.
func notify(c chan<- os.Signal, sigs ...os.Signal) {
	if maskUpdatedChan != nil { // the thread runs already: the usual path
		signal.Notify(c, sigs...)
		return
	}
	enableSigChan = make(chan uint32, len(sigs))
	maskUpdatedChan = make(chan struct{}, len(sigs))
	for range sigs {
		maskUpdatedChan <- struct{}{}
	}
	signal.Notify(c, sigs...)
	enableSigChan, maskUpdatedChan = nil, nil
}
