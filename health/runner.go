package health

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// probeKind is startup, readiness or liveness.
type probeKind uint8

const (
	kindStartup probeKind = iota
	kindReadiness
	kindLiveness
	numKinds
)

var kindNames = [numKinds]string{"startup", "readiness", "liveness"}

func (k probeKind) String() string { return kindNames[k] }

// firstRetry is where the accelerating pre-success schedule starts: a daemon
// that is up within a millisecond is seen within a millisecond.
const firstRetry = time.Millisecond

// A connecting probe (tcp://, http://) holds its accelerating schedule at
// earlyRetry for the first earlyWindow of its life instead of doubling:
// most daemons listen within tens of milliseconds (the demo within about
// 6), and doubling from 1 ms would see one that starts just after a probe
// up to as late again. That costs at most 25 probes, almost all of them a
// refused connect; after the window the doubling resumes.
const (
	earlyRetry  = 2 * time.Millisecond
	earlyWindow = 50 * time.Millisecond
)

// An Unknown result ("could not probe") is retried up to maxUnknownRetries
// times, unknownRetry apart, before the next tick (the kubelet retries a
// probe error three times in all).
const (
	maxUnknownRetries = 2
	unknownRetry      = 100 * time.Millisecond
)

// quickRetrier is implemented by probers whose attempts before the daemon
// is up are cheap enough to repeat faster than plain doubling: hold is how
// long they retry every earlyRetry (a refused connect: tcp://, http://),
// limit where their doubling stops instead of the period (listen:// via
// sock_diag: one netlink lookup the daemon never sees). exec: forks a
// process each time and implements neither.
type quickRetrier interface {
	quickRetry() (hold, limit time.Duration)
}

// pacer is implemented by probers that know better than any fixed
// schedule when to try again before their first success: a gated tcp://
// or http:// probe knows whether the port listens yet, notify:// knows
// that nothing changes until a datagram arrives. pace returns the wait
// before the next attempt and a channel that ends it early; d == 0 with a
// channel waits for the channel alone (or the startup budget's end), and
// d == 0 without one leaves the schedule to quickRetry and doubling.
// d == tickPaced with a channel is a poll paced by a ticker (see
// pollTicker): before the budget's end the channel alone, as for d == 0;
// after it, the period grid, since its ticks are not events.
type pacer interface {
	pace() (d time.Duration, wake <-chan struct{})
}

// tickPaced is pace's d for a ticker's channel.
const tickPaced = time.Duration(-1)

// verdict is what a runner decided after a probe; the monitor acts on it.
type verdict uint8

const (
	vNone     verdict = iota
	vStarted          // startup succeeded
	vReady            // readiness reached successThreshold
	vNotReady         // readiness reached failureThreshold
	vRestart          // liveness or startup failed: restart the daemon
)

// runner applies the kubelet's rules to one probe of one child.
type runner struct {
	kind   probeKind
	cfg    ProbeConfig
	prober Prober

	// clock is time.Now; the hot path calls it a few times per probe.
	now func() time.Time

	// Exposed state, read by /status and /metrics.
	mu        sync.Mutex
	last      Result
	lastAt    time.Time
	lastDur   time.Duration
	successes int // consecutive
	failures  int // consecutive
	everOK    bool
	counts    [3]atomic.Uint64 // by Status
	skipped   atomic.Uint64    // ticks dropped because a probe overran
}

func newRunner(kind probeKind, cfg ProbeConfig, p Prober) *runner {
	return &runner{kind: kind, cfg: cfg, prober: p, now: time.Now}
}

// reset forgets the previous child's results (counters stay: they are
// totals for /metrics).
func (r *runner) reset() {
	r.mu.Lock()
	r.last, r.lastAt, r.lastDur = Result{}, time.Time{}, 0
	r.successes, r.failures, r.everOK = 0, 0, false
	r.mu.Unlock()
}

// snapshot is a copy of the exposed state.
type snapshot struct {
	Last                Result
	At                  time.Time
	Dur                 time.Duration
	Successes, Failures int
	Counts              [3]uint64
	Skipped             uint64
}

func (r *runner) snapshot() snapshot {
	r.mu.Lock()
	s := snapshot{Last: r.last, At: r.lastAt, Dur: r.lastDur, Successes: r.successes, Failures: r.failures}
	r.mu.Unlock()
	for i := range s.Counts {
		s.Counts[i] = r.counts[i].Load()
	}
	s.Skipped = r.skipped.Load()
	return s
}

// run probes until ctx ends or a final verdict (started, restart) is
// reached. start is when the probe may first run (child start plus
// initialDelay, or the startup probe's success if that is later). decide
// receives every verdict other than vNone; it must not block.
//
// Schedule: before the first success, startup and readiness are retried
// from firstRetry (connecting probers: every earlyRetry during
// earlyWindow), then doubling up to the period or a quickRetrier's limit;
// the startup probe's budget is failureThreshold x period from its first
// run.
// After that, probes run on the period grid; a probe that overruns skips
// the ticks it missed instead of running them back to back.
func (r *runner) run(ctx context.Context, start time.Time, decide func(verdict, Result)) {
	timer := time.NewTimer(time.Until(start))
	defer timer.Stop()

	period := r.cfg.Period
	accelerate := r.kind != kindLiveness
	interval := firstRetry
	maxInterval := period
	var hold time.Duration
	if q, ok := r.prober.(quickRetrier); ok && accelerate {
		var c time.Duration
		hold, c = q.quickRetry()
		if c > 0 && c < maxInterval {
			maxInterval = c
		}
	}
	budget := time.Duration(r.cfg.FailureThreshold) * period
	var deadline time.Time // startup budget end, set at the first run
	next := start
	retries := 0 // quick retries of an Unknown result in this tick
	var wake <-chan struct{}

	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-wake:
		}
		wake = nil
		t0 := r.now()
		if deadline.IsZero() {
			deadline = t0.Add(budget)
		}
		res := r.prober.Probe(ctx, t0.Add(r.cfg.Timeout))
		t1 := r.now()
		if ctx.Err() != nil {
			return
		}
		v := r.record(res, t0, t1, deadline)
		if v != vNone {
			decide(v, res)
			if v == vStarted || v == vRestart {
				return
			}
		}
		r.mu.Lock()
		fast := accelerate && !r.everOK
		r.mu.Unlock()
		if fast && t1.Before(deadline) {
			// Accelerating retry: never past the budget's end, so the
			// final verdict comes on time.
			step, w := r.pace(interval)
			next, wake = t1.Add(step), w
			interval = nextRetry(interval, t1.Sub(start) < hold, maxInterval)
			if next.After(deadline) {
				next = deadline
			}
		} else if res.Status == Unknown && retries < maxUnknownRetries {
			// "Could not probe" is retried soon within the tick, as the
			// kubelet retries a probe error, without moving the grid.
			retries++
			timer.Reset(min(unknownRetry, period))
			continue
		} else {
			retries = 0
			if fast || next.Before(start) {
				next = t1 // leave the fast phase: the grid starts here
			}
			next = next.Add(period)
			// Drop the ticks a slow probe overran.
			for !next.After(t1) {
				next = next.Add(period)
				r.skipped.Add(1)
			}
			if fast {
				// Past the budget, an event still ends the wait early.
				wake = r.eventWake()
			}
		}
		timer.Reset(next.Sub(r.now()))
	}
}

// pace is the wait before the next pre-success attempt: the prober's own
// (see pacer), else interval.
func (r *runner) pace(interval time.Duration) (time.Duration, <-chan struct{}) {
	p, ok := r.prober.(pacer)
	if !ok {
		return interval, nil
	}
	d, wake := p.pace()
	switch {
	case d > 0:
		return d, wake
	case wake != nil:
		return time.Duration(1<<63 - 1), wake // capped at the budget's end
	}
	return interval, nil
}

// eventWake is what ends a wait on the period grid early, past the
// startup budget: a prober's event, not a poll's ticks (see pacer).
func (r *runner) eventWake() <-chan struct{} {
	p, ok := r.prober.(pacer)
	if !ok {
		return nil
	}
	if d, wake := p.pace(); d != tickPaced {
		return wake
	}
	return nil
}

// nextRetry is the pre-success retry interval that follows interval:
// held at earlyRetry while the probe is young (see quickRetrier), else
// doubled up to maxInterval.
func nextRetry(interval time.Duration, young bool, maxInterval time.Duration) time.Duration {
	if interval >= earlyRetry && young {
		return interval
	}
	return min(interval*2, maxInterval)
}

// record counts one result and returns the verdict it causes.
func (r *runner) record(res Result, t0, t1, deadline time.Time) verdict {
	r.counts[res.Status].Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last, r.lastAt, r.lastDur = res, t1, t1.Sub(t0)
	switch res.Status {
	case Unknown:
		// "Could not probe": retried on the schedule, never counted.
		if r.kind == kindStartup && !t1.Before(deadline) && r.failures > 0 {
			return vRestart
		}
		return vNone
	case Success:
		r.successes++
		r.failures = 0
	case Failure:
		r.failures++
		r.successes = 0
	}
	switch r.kind {
	case kindStartup:
		if r.successes >= r.cfg.SuccessThreshold {
			r.everOK = true
			return vStarted
		}
		// The budget, not the count, ends an accelerated startup: a
		// millisecond-spaced retry must not use up failureThreshold.
		if res.Status == Failure && !t1.Before(deadline) {
			return vRestart
		}
	case kindReadiness:
		if res.Status == Success && r.successes == r.cfg.SuccessThreshold {
			r.everOK = true
			return vReady
		}
		if res.Status == Failure && r.failures == r.cfg.FailureThreshold && r.everOK {
			return vNotReady
		}
	case kindLiveness:
		if res.Status == Failure && r.failures >= r.cfg.FailureThreshold {
			return vRestart
		}
	}
	return vNone
}
