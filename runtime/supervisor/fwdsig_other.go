//go:build !oxios_fwdsig

package supervisor

import (
	"os"
	"os/signal"
	"syscall"
)

// runtimeIgnored needs the oxios_fwdsig build tag; without it only
// /proc/self/status is read (see StartupIgnored).
func runtimeIgnored() []syscall.Signal { return nil }

// linkedGODEBUG needs the oxios_fwdsig build tag; without it the
// executable is searched instead (see AsyncPreemptOff).
func linkedGODEBUG() (def string, ok bool) { return "", false }

// notify is signal.Notify; builds with the oxios_fwdsig tag skip the
// runtime's per-signal thread handshake (see fwdsig_linkname.go).
func notify(c chan<- os.Signal, sigs ...os.Signal) { signal.Notify(c, sigs...) }
