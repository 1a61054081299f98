package gauntlet

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Scenario 7: start/stop storms. Each round runs 10 `oxios start` and
// `oxios stop` calls at once (5 of each, in random order); every call must
// end with a clear result, and at no point may there be more than one
// container or task. Afterwards, with a final stop, nothing may be left:
// no container, task, active snapshot, shim process or mount, counted from
// containerd and /proc.
//
// `make test` runs a short storm (3 rounds); GAUNTLET_LONG=1 runs the 50
// rounds of the issue (GAUNTLET_STORM_ROUNDS overrides both).
func TestStartStopStorm(t *testing.T) {
	rounds, name := 3, "start/stop storm x3"
	if os.Getenv("GAUNTLET_LONG") == "1" {
		rounds, name = 50, "start/stop storm x50"
	}
	if v, err := strconv.Atoi(os.Getenv("GAUNTLET_STORM_ROUNDS")); err == nil && v > 0 {
		rounds, name = v, fmt.Sprintf("start/stop storm x%d", v)
	}
	rw := scenario(t, "7", name)
	e := newEnv(t, setup{stopTimeout: "2s"})
	cl, ctx := e.client()

	// The counters see a running daemon, so zero later means zero.
	e.mustStart(rw)
	if l, err := e.countLeaks(cl, ctx); err != nil || l.Containers != 1 || l.Tasks != 1 || l.Snapshots != 1 || l.Shims != 1 || l.Mounts < 1 {
		rw.fail(t, "counting a running daemon: %v %v", l, err)
	}

	var mu sync.Mutex
	bad := map[string]int{} // unclear or failed results, by kind
	calls, starts, stops := 0, 0, 0
	did := map[string]int{} // what the calls said they did
	t0 := time.Now()
	for round := 0; round < rounds; round++ {
		ops := []string{"start", "start", "start", "start", "start", "stop", "stop", "stop", "stop", "stop"}
		rand.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		var wg sync.WaitGroup
		for _, op := range ops {
			wg.Add(1)
			go func(op string) {
				defer wg.Done()
				r := e.oxios(2*time.Minute, op)
				mu.Lock()
				defer mu.Unlock()
				calls++
				if op == "start" {
					starts++
				} else {
					stops++
				}
				if f := strings.Fields(r.stdout); len(f) >= 3 {
					did[strings.Join(f[1:3], " ")]++
				}
				if r.code != 0 || !clearResult(op, r.stdout) {
					bad[fmt.Sprintf("%s exit %d", op, r.code)]++
					t.Logf("round %d: %s", round, r)
				}
			}(op)
		}
		wg.Wait()
		l, err := e.countLeaks(cl, ctx)
		if err != nil {
			rw.fail(t, "round %d: %v", round, err)
		}
		if l.Containers > 1 || l.Tasks > 1 {
			rw.errorf(t, "round %d: duplicates: %v", round, l)
		}
	}
	storm := time.Since(t0)
	if r := e.oxios(time.Minute, "stop"); r.code != 0 {
		rw.errorf(t, "final stop: %s", r)
	}
	// A shim exits shortly after its last task is deleted: give it time,
	// counting every 50 ms until everything is gone or 10 s passed.
	t1 := time.Now()
	var l leaks
	var err error
	eventually(10*time.Second, 50*time.Millisecond, func() bool {
		l, err = e.countLeaks(cl, ctx)
		return err == nil && l.zero()
	})
	rw.recovered(time.Since(t1))
	if err != nil || !l.zero() {
		rw.errorf(t, "leaked after the storm: %v %v (shims %v, mounts %v)", l, err, shimPIDs(e.ctrd.Address, e.ns), mountsUnder(e.ctrd.Root))
		rw.lost(l.String())
	} else {
		rw.lost("nothing (0 containers, tasks, snapshots, shims, mounts)")
	}
	if len(bad) > 0 {
		rw.errorf(t, "unclear or failed calls: %v", bad)
	}
	rw.note("%d calls (%d start, %d stop) in %v, %v per round; %d created, %d adopted, %d stopped, %d found nothing to stop",
		calls, starts, stops, storm.Round(time.Millisecond), (storm / time.Duration(rounds)).Round(time.Millisecond),
		did["started (PID"], did["is already"], did["stopped (exit"], did["is not"])
}

// clearResult: every call says what it did on stdout.
func clearResult(op, stdout string) bool {
	if op == "start" {
		return strings.HasPrefix(stdout, "oxios started") || strings.HasPrefix(stdout, "oxios is already running")
	}
	return strings.HasPrefix(stdout, "oxios stopped") || strings.HasPrefix(stdout, "oxios is not running")
}
