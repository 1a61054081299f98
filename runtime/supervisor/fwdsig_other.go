//go:build !oxios_fwdsig

package supervisor

import "syscall"

// runtimeIgnored needs the oxios_fwdsig build tag; without it only
// /proc/self/status is read (see StartupIgnored).
func runtimeIgnored() []syscall.Signal { return nil }
