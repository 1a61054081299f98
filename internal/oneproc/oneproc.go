// Package oneproc gives the program that imports it a single P
// (GOMAXPROCS=1) from its first package initialisers on. oxios-init
// imports it for that side effect: PID 1 mostly waits, and every P costs
// memory for as long as the container lives (its own cache of spans, one
// per size class in use, its own GC worker, and threads woken to run it),
// and with more than one P every wake-up of a waiting goroutine (a probe's
// timer while the daemon starts) also wakes another thread to look for
// work: most of what oxios-init costs while it waits.
//
// Why an initialiser and not a call in main: before the first package
// initialiser runs, the runtime may already have moved the main goroutine
// to a second P, whose span cache then fills as initialisers and main
// allocate. Dropping that P hands its cached spans back to the central
// lists, and the first span of each size class to arrive there makes the
// runtime map a list block for it: the later the P goes, the more that
// costs. This package imports nothing but runtime, so that it is
// initialised among the very first; it cannot read the environment that
// early (os and syscall come later), so a program that honours GOMAXPROCS
// gives it back itself, with FromEnv.
package oneproc

import "runtime"

func init() { runtime.GOMAXPROCS(1) }

// FromEnv sets the Ps that GOMAXPROCS asks for, as the runtime does at
// start: when lookup finds it set to a positive number.
func FromEnv(lookup func(string) (string, bool)) {
	v, ok := lookup("GOMAXPROCS")
	if !ok {
		return
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' || n > 1<<20 {
			return
		}
		n = n*10 + int(c-'0')
	}
	if n > 0 {
		runtime.GOMAXPROCS(n)
	}
}
