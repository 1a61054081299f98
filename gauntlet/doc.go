// Package gauntlet is oxios' reliability gauntlet (issue 7): faults, load
// and hostile input against a real private containerd, the real image and
// the real binaries, each scenario reporting one table row (pass or fail,
// time to recover, what was lost). The package holds only tests; the fast
// scenarios run in `make test`, the long ones (GAUNTLET_LONG=1) and the
// fuzzing in `make gauntlet` (scripts/gauntlet.sh).
package gauntlet
