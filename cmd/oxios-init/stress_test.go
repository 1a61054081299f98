package main

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/initstress"
	"github.com/a7garden/oxios/internal/testenv"
)

// TestStartupStress is the short run of the start-up stress test (the
// gauntlet's initstress runs 10,000 of each): oxios-init started eight at
// a time with /bin/true and with a child that handles signals, with -s and
// as PID 1 (and, fewer, as dumb-init on a terminal, which hands the
// terminal to the child), and signalled at random moments of its start-up.
// No start may take longer than 2 s, lose a signal sent once its child was
// ready, or leave a process behind. OXIOS_INITSTRESS_STARTS and _SEED
// reproduce a failure.
func TestStartupStress(t *testing.T) {
	testenv.RequireRoot(t) // a new PID namespace for the PID-1 runs
	starts, seed := 50, time.Now().UnixNano()
	if v, err := strconv.Atoi(os.Getenv("OXIOS_INITSTRESS_STARTS")); err == nil {
		starts = v
	}
	if v, err := strconv.ParseInt(os.Getenv("OXIOS_INITSTRESS_SEED"), 10, 64); err == nil {
		seed = v
	}
	bin := testenv.Bin(t, "oxios-init")
	cfg := initstress.Config{
		Init:   bin,
		Child:  initstress.BuildChild(t),
		Starts: starts,
		Modes:  append(append([]initstress.Mode(nil), initstress.Plain...), initstress.DumbInitOnTerminal(t, bin)),
		Seed:   seed,
	}
	t.Logf("seed %d", seed)
	for _, r := range initstress.Run(cfg) {
		t.Log(r)
		for _, f := range r.Failures {
			t.Errorf("%s: %s", r, f)
		}
	}
}
