package gauntlet

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/initstress"
	"github.com/a7garden/oxios/internal/testenv"
)

// Scenario 10 (long only): oxios-init's start-up under load. 15,000 starts
// of oxios-init -- /bin/true and 15,000 with a child that handles signals,
// a third each with -s, as PID 1 of a new PID namespace, and as dumb-init
// and PID 1 on a terminal, eight at a time, each signalled at random
// moments of its first 4 ms. No start may take over 2 s, lose a signal
// sent once its child was ready, or leave a process behind. `make test`
// runs 300 starts (cmd/oxios-init TestStartupStress).
// GAUNTLET_INITSTRESS_STARTS sets the starts per kind and mode (5000).
func TestInitStartupStress(t *testing.T) {
	rw := scenario(t, "10", "oxios-init start-up stress")
	rw.skipLong(t, "30,000 starts")
	testenvRoot(t)
	starts := 5000
	if v, err := strconv.Atoi(os.Getenv("GAUNTLET_INITSTRESS_STARTS")); err == nil && v > 0 {
		starts = v
	}
	seed := time.Now().UnixNano()
	bin := testenv.Bin(t, "oxios-init")
	cfg := initstress.Config{
		Init:   bin,
		Child:  initstress.BuildChild(t),
		Starts: starts,
		Modes:  append(append([]initstress.Mode(nil), initstress.Plain...), initstress.DumbInitOnTerminal(t, bin)),
		Seed:   seed,
	}
	t0 := time.Now()
	results := initstress.Run(cfg)
	failed := 0
	var slowest time.Duration
	for _, r := range results {
		t.Log(r)
		failed += len(r.Failures)
		slowest = max(slowest, r.Slowest)
		for i, f := range r.Failures {
			if i < 5 {
				rw.errorf(t, "%s: %s", r, f)
			}
		}
	}
	rw.note("%d starts in %s (seed %d), %d failed, slowest %s", starts*len(results), time.Since(t0).Round(time.Second), seed, failed, slowest.Round(time.Millisecond))
	if failed == 0 {
		rw.lost("nothing")
	}
}
