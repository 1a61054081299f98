//go:build !oxios_fwdsig

package supervisor

import "syscall"

// runtimeIgnored needs the oxios_fwdsig build tag; without it only
// /proc/self/status is read (see StartupIgnored).
func runtimeIgnored() []syscall.Signal { return nil }

// linkedGODEBUG needs the oxios_fwdsig build tag; without it the
// executable is searched instead (see AsyncPreemptOff).
func linkedGODEBUG() (def string, ok bool) { return "", false }
