package gauntlet

import (
	"testing"
	"time"
)

// Scenario 4: the daemon stops answering (the socket stays open, HTTP is
// never answered). Liveness must restart it within
// failureThreshold x period + grace (plus one probe timeout and the first
// backoff, which the formula leaves out; both are stated in the row).
func TestHungDaemon(t *testing.T) {
	rw := scenario(t, "4", "hung daemon")
	const (
		period    = 200 * time.Millisecond
		timeout   = 100 * time.Millisecond
		threshold = 3
		grace     = time.Second
		backoff   = 20 * time.Millisecond
		// slack: scheduling on a shared 2-core VM, the exec of the new
		// daemon and our 10 ms sampling.
		slack = 300 * time.Millisecond
	)
	e := newEnv(t, setup{
		restart:     "on-failure",
		stopTimeout: grace.String(),
		extra: map[string]string{
			"liveness_period":            period.String(),
			"liveness_timeout":           timeout.String(),
			"liveness_failure_threshold": "3",
			"backoff_initial":            backoff.String(),
		},
	})
	e.mustStart(rw)
	before, err := e.supervisor()
	if err != nil || before.Child.PID == 0 {
		rw.fail(t, "oxios-init /status: %+v %v", before, err)
	}

	if code, err := e.post("/debug/hang"); err != nil || code != 200 {
		rw.fail(t, "POST /debug/hang: %d %v", code, err)
	}
	t0 := time.Now()
	// The hang is real: a request now is never answered.
	if _, err := e.get("/health", 300*time.Millisecond); err == nil {
		rw.fail(t, "the daemon still answers after /debug/hang")
	}

	var restartedAt time.Duration
	var after supReport
	ok := eventually(30*time.Second, 10*time.Millisecond, func() bool {
		rep, err := e.supervisor()
		if err == nil && rep.Child.Restarts > before.Child.Restarts && restartedAt == 0 {
			restartedAt = time.Since(t0)
		}
		after = rep
		return err == nil && rep.Child.Restarts > before.Child.Restarts && rep.Child.PID != 0 && rep.Ready
	})
	if !ok {
		rw.fail(t, "not restarted and ready 30s after the hang: %+v", after)
	}
	readyAt := time.Since(t0)
	if code, err := e.get("/health", time.Second); err != nil || code != 200 {
		rw.fail(t, "the restarted daemon does not answer /health: %d %v", code, err)
	}
	rw.recovered(readyAt)
	bound := threshold*period + grace
	limit := bound + timeout + backoff + slack
	rw.note("killed+restart decided at %v, ready at %v; bound F*P+grace = %v (+timeout %v +backoff %v +slack %v = %v)",
		restartedAt.Round(time.Millisecond), readyAt.Round(time.Millisecond), bound, timeout, backoff, slack, limit)
	if restartedAt > limit {
		rw.errorf(t, "liveness restart after %v, over %v", restartedAt, limit)
	}
	if after.Child.PID == before.Child.PID {
		rw.errorf(t, "same child PID %d after the restart", after.Child.PID)
	}
	if st, sr := e.status(); sr.code != 0 || st.Restarts < 1 {
		rw.errorf(t, "status after the restart does not count it: %s", sr)
	}
	rw.lost("requests sent during the hang (by design; nothing on disk)")
}
