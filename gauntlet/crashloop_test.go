package gauntlet

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// Scenario 3: the daemon exits at once (before it listens), 50 times. The
// delays between runs follow the configured schedule (initial, doubling,
// capped), oxios-init does not peg the CPU, and `status` shows the
// restarts and the current backoff.
func TestCrashLoop(t *testing.T) {
	rw := scenario(t, "3", "crash loop x50")
	const (
		restarts = 50
		initial  = 10 * time.Millisecond
		maxDelay = 160 * time.Millisecond
		// tolerance on the median delay: timer slack, the fork+exec of
		// the next run, scheduling on a shared 2-core VM.
		tolerance = 50 * time.Millisecond
		lateCap   = 500 * time.Millisecond
		cpuLimit  = 0.10 // of one core, oxios-init's own CPU
	)
	e := newEnv(t, setup{
		restart:      "on-failure",
		startTimeout: "10m", // the start below never sees ready: it only launches the loop
		demoEnv:      []string{"OXIOS_DEMO_EXIT_AFTER=0s", "OXIOS_DEMO_EXIT_CODE=1"},
		extra: map[string]string{
			"backoff_initial": initial.String(),
			"backoff_max":     maxDelay.String(),
			"verbosity":       "3", // "started ... as pid N" lines time each run
		},
	})
	// `oxios start` waits for a readiness that never comes; it runs in the
	// background and is killed once the loop is measured.
	ctx, cancel := context.WithCancel(context.Background())
	launcher := e.command(ctx, "start")
	var lout testenv.Buffer
	launcher.Stdout, launcher.Stderr = &lout, &lout
	if err := launcher.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); launcher.Wait() })

	var rep supReport
	if !eventually(60*time.Second, 5*time.Millisecond, func() bool {
		var err error
		rep, err = e.supervisor()
		return err == nil
	}) {
		rw.fail(t, "oxios-init's health socket %s never answered; start: %s", e.healthSocket(), lout.String())
	}
	st, sr := e.status()
	initPID := int(st.PID)
	if initPID == 0 {
		rw.fail(t, "no task PID: %s", sr)
	}
	st0, _ := testenv.ProcStat(initPID)
	cpu0 := st0.UTime + st0.STime
	t0 := time.Now()
	// The loop takes ~7.5 s of backoff; sample every 20 ms (state read
	// from oxios-init itself, no exec).
	var sawBackoff float64
	if !eventually(2*time.Minute, 20*time.Millisecond, func() bool {
		r, err := e.supervisor()
		if err == nil {
			rep = r
			if r.Child.State == "backoff" && r.Child.Backoff > sawBackoff {
				sawBackoff = r.Child.Backoff
			}
		}
		// One more than counted: the 50th delay is over once run 51 started.
		return err == nil && r.Child.Restarts > restarts
	}) {
		rw.fail(t, "only %d restarts after 2 minutes: %+v", rep.Child.Restarts, rep)
	}
	wall := time.Since(t0)
	st1, err := testenv.ProcStat(initPID)
	if err != nil {
		rw.fail(t, "oxios-init (PID %d) gone: %v", initPID, err)
	}
	cpu1 := st1.UTime + st1.STime
	used := float64(cpu1-cpu0) * float64(clockTick) / float64(wall)
	rw.note("oxios-init CPU %.1f%% of a core over %v", used*100, wall.Round(time.Millisecond))
	if used > cpuLimit {
		rw.errorf(t, "oxios-init used %.1f%% of a core during the loop, limit %.0f%%", used*100, cpuLimit*100)
	}
	if sawBackoff != maxDelay.Seconds() {
		rw.errorf(t, "oxios-init /status backoff peaked at %vs, want the cap %v", sawBackoff, maxDelay)
	}

	// status: the restarts and the current backoff. The loop is in its
	// 160 ms backoff nearly all the time; a few reads catch it there.
	var inBackoff bool
	for i := 0; i < 10 && !inBackoff; i++ {
		st, sr = e.status()
		if st.Restarts < restarts {
			rw.errorf(t, "status shows %d restarts, want >= %d: %s", st.Restarts, restarts, sr)
			break
		}
		b, ok := st.raw["backoff_seconds"].(float64)
		inBackoff = ok && b == maxDelay.Seconds() && st.raw["child_state"] == "backoff"
	}
	if !inBackoff {
		rw.errorf(t, "status --json never showed the current backoff (child_state \"backoff\", backoff_seconds %v) in 10 reads; last: %s",
			maxDelay.Seconds(), strings.TrimSpace(sr.stdout))
	} else {
		rw.note("status: %q", strings.TrimSpace(e.oxios(30*time.Second, "status").stdout))
	}

	// The schedule, from oxios-init's own timestamps in the task log.
	cancel()
	launcher.Wait()
	delays, err := runGaps(e.logPath())
	if err != nil {
		rw.fail(t, "%v", err)
	}
	if len(delays) < restarts {
		rw.fail(t, "only %d restart gaps in %s", len(delays), e.logPath())
	}
	// Never early; the median lateness at most `tolerance` and any at most
	// `lateCap`: a loaded 2-core machine (make test runs packages in
	// parallel) stalls some fork+execs, but not the schedule's shape.
	var late []time.Duration
	for i, g := range delays[:restarts] {
		want := initial << i
		if i >= 5 || want > maxDelay {
			want = maxDelay
		}
		if g.stated != want {
			rw.errorf(t, "restart %d: stated delay %v, schedule says %v", i+1, g.stated, want)
			break
		}
		off := g.actual - want
		if off < -2*time.Millisecond || off > lateCap {
			rw.errorf(t, "restart %d: waited %v, schedule %v", i+1, g.actual, want)
			break
		}
		late = append(late, off)
	}
	slices.Sort(late)
	if len(late) == restarts {
		p50, p90, worst := late[restarts/2], late[restarts*9/10], late[restarts-1]
		rw.note("schedule %v doubling to %v held for %d restarts: lateness p50 %v, p90 %v, max %v", initial, maxDelay, restarts,
			p50.Round(time.Millisecond), p90.Round(time.Millisecond), worst.Round(time.Millisecond))
		if p50 > tolerance {
			rw.errorf(t, "median lateness of the restart delays %v > %v", p50, tolerance)
		}
	}
	rw.lost("nothing (the daemon never ran long enough to own state)")
}

type gap struct{ stated, actual time.Duration }

var (
	reTime      = regexp.MustCompile(`time="([^"]+)"`)
	reRestart   = regexp.MustCompile(`msg="restarting \S+ in (\S+) \(policy`)
	reStartedAs = regexp.MustCompile(`msg="started \S+ as pid \d+"`)
)

// runGaps pairs each "restarting X in D" line of oxios-init with the next
// "started X as pid N" line: the stated delay D and the time it really
// waited, both from oxios-init's own clock.
func runGaps(logPath string) ([]gap, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []gap
	var pending *gap
	var pendingAt time.Time
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		tm := reTime.FindStringSubmatch(line)
		if tm == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, tm[1])
		if err != nil {
			continue
		}
		if m := reRestart.FindStringSubmatch(line); m != nil {
			d, err := time.ParseDuration(m[1])
			if err != nil {
				return nil, fmt.Errorf("bad delay in %q", line)
			}
			pending, pendingAt = &gap{stated: d}, at
			continue
		}
		if pending != nil && reStartedAs.MatchString(line) {
			pending.actual = at.Sub(pendingAt)
			out = append(out, *pending)
			pending = nil
		}
	}
	return out, sc.Err()
}
