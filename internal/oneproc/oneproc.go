// Package oneproc gives the program that imports it a single P
// (GOMAXPROCS=1) from its first package initialisers on, unless
// GOMAXPROCS is set in the environment. oxios-init imports it for that
// side effect: PID 1 mostly waits, and every P costs memory for as long
// as the container lives (its own cache of spans, one per size class in
// use, its own GC worker, and threads woken to run it).
//
// Why an initialiser and not a call in main: before the first package
// initialiser runs, the runtime may already have moved the main goroutine
// to a second P, whose span cache then fills as initialisers and main
// allocate. Dropping that P hands its cached spans back to the central
// lists, and the first span of each size class to arrive there makes the
// runtime map a list block for it: the later the P goes, the more that
// costs. This package imports only runtime and syscall, so it is
// initialised among the first.
package oneproc

import (
	"runtime"
	"syscall"
)

func init() { Apply(syscall.Getenv) }

// Apply sets one P unless lookup finds GOMAXPROCS set.
func Apply(lookup func(string) (string, bool)) {
	if _, set := lookup("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
}
