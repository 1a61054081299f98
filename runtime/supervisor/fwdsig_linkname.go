//go:build oxios_fwdsig

package supervisor

import (
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
